// Live updates: one websocket per page to /ws/events/ (same origin, session-authenticated).
// Every event becomes a DOM event `portal:<type>` on <body>, so htmx elements refresh with
// hx-trigger="portal:operation from:body"; a short toast says what happened.
(function () {
  "use strict";
  const statusEl = () => document.getElementById("live-status");
  let delay = 1000;

  function toast(text) {
    const box = document.getElementById("toasts");
    if (!box) return;
    const note = document.createElement("div");
    note.className = "notification is-info is-light";
    note.textContent = text;
    box.appendChild(note);
    setTimeout(() => note.remove(), 4000);
  }

  function describe(event) {
    if (event.type === "operation") return `${event.kind} ${event.id}: ${event.status} ${event.progress}%`;
    if (event.type === "tenant") return `Tenant is now ${event.status}`;
    if (event.id) return `${event.type.replace("_", " ")} ${event.id} ${event.action || event.status || ""}`;
    return null;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/events/`);
    socket.onopen = () => { delay = 1000; const s = statusEl(); if (s) { s.textContent = "●"; s.title = "Live"; } };
    socket.onmessage = (message) => {
      const event = JSON.parse(message.data);
      if (!event.type || event.type === "pong") return;
      document.body.dispatchEvent(new CustomEvent(`portal:${event.type}`, { detail: event }));
      const text = describe(event);
      if (text) toast(text);
    };
    socket.onclose = () => {
      const s = statusEl(); if (s) { s.textContent = "○"; s.title = "Reconnecting"; }
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();
