// The console page: noVNC (vendored, ES modules) over one of the portal's websocket proxies.
// Each connection gets a fresh one-time ticket from the API; the ticket travels as a websocket
// subprotocol, never in the URL. The page opens the websocket itself so that it can read the
// close code and say why a console closed.
import RFB from "../vendor/novnc-1.7.0/core/rfb.js";
import keysyms from "../vendor/novnc-1.7.0/core/input/keysymdef.js";

const root = document.getElementById("console");
const screen = document.getElementById("console-screen");
const stateTag = document.getElementById("console-state");
const message = document.getElementById("console-message");
const controls = ["console-cad", "console-send-text"].map((id) => document.getElementById(id));
const scale = document.getElementById("console-scale");
const XK_RETURN = 0xff0d;

const idle = root.dataset.idleMinutes;
const CLOSE_REASONS = {
  4401: "The console ticket was not accepted (used, expired or not yours). Reconnect for a new one.",
  4403: "Access to this console was withdrawn (tenant frozen, membership or permission removed, or closed by an operator).",
  4404: "There is no such instance.",
  4408: `Closed after ${idle} minutes without keyboard or mouse input. Reconnect to continue.`,
  4409: "The instance is not running. Start it, then reconnect.",
  4429: "Too many console sessions are open for you or for this instance. Close one, then reconnect.",
  4502: "The instance's screen is not reachable right now. Reconnect to try again.",
  1006: "The connection to the console proxy was lost. Reconnect to try again.",
};

let rfb = null;

function setState(text, kind) {
  stateTag.textContent = text;
  stateTag.className = `tag is-medium ${kind || ""}`;
  controls.forEach((el) => { el.disabled = text !== "Connected"; });
}

function say(text, kind = "is-warning") {
  message.textContent = text;
  message.className = `notification ${kind}`;
  if (!text) message.classList.add("is-hidden");
}

async function ticket() {
  const headers = { "Accept": "application/json", "X-CSRFToken": root.querySelector("[name=csrfmiddlewaretoken]").value };
  if (root.dataset.tenant) headers["X-Tenant-ID"] = root.dataset.tenant;
  const response = await fetch(root.dataset.ticketUrl, { method: "POST", headers, credentials: "same-origin" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || `The portal answered ${response.status}.`);
  return body;
}

async function connect() {
  if (rfb) { rfb.disconnect(); rfb = null; }
  say("");
  setState("Connecting…", "is-warning");
  let grant;
  try {
    grant = await ticket();
  } catch (error) {
    setState("Not connected", "is-danger");
    say(error.message);
    return;
  }
  const url = root.dataset.proxy === "websockify" ? grant.websockify_url : grant.url;
  const socket = new WebSocket(url, grant.protocols);
  let closed = null;
  socket.addEventListener("close", (event) => { closed = event; });
  rfb = new RFB(screen, socket, { shared: true });
  rfb.scaleViewport = scale.checked;
  rfb.focusOnClick = true;
  rfb.addEventListener("connect", () => { setState("Connected", "is-success"); say(""); rfb.focus(); });
  rfb.addEventListener("desktopname", (event) => { stateTag.title = event.detail.name; });
  rfb.addEventListener("disconnect", (event) => {
    rfb = null;
    setState("Disconnected", "is-danger");
    const code = closed ? closed.code : 1006;
    const reason = (closed && closed.reason) || CLOSE_REASONS[code];
    say(reason || (event.detail.clean ? "The console closed." : CLOSE_REASONS[1006]), code === 1000 ? "is-info" : "is-warning");
  });
}

// "Send text" types like a US keyboard: QEMU turns scancodes into characters, so each character
// goes with its key code and, where the layout needs it, Shift held around it. Characters with
// no key on that layout go as bare keysyms.
const PLAIN = "`1234567890-=qwertyuiop[]\\asdfghjkl;'zxcvbnm,./ ";
const SHIFTED = "~!@#$%^&*()_+QWERTYUIOP{}|ASDFGHJKL:\"ZXCVBNM<>? ";
const PUNCTUATION = { "`": "Backquote", "-": "Minus", "=": "Equal", "[": "BracketLeft", "]": "BracketRight",
  "\\": "Backslash", ";": "Semicolon", "'": "Quote", ",": "Comma", ".": "Period", "/": "Slash", " ": "Space" };
const XK_SHIFT_L = 0xffe1;

function keyCode(char) {
  const i = PLAIN.indexOf(char) >= 0 ? PLAIN.indexOf(char) : SHIFTED.indexOf(char);
  if (i < 0) return null;
  const plain = PLAIN[i];
  if (/[a-z]/.test(plain)) return `Key${plain.toUpperCase()}`;
  if (/[0-9]/.test(plain)) return `Digit${plain}`;
  return PUNCTUATION[plain];
}

function typeText(text) {
  for (const char of text.replace(/\r\n?/g, "\n")) {
    if (char === "\n") { rfb.sendKey(XK_RETURN, "Enter"); continue; }
    const shift = PLAIN.indexOf(char) < 0 && SHIFTED.indexOf(char) >= 0;
    if (shift) rfb.sendKey(XK_SHIFT_L, "ShiftLeft", true);
    rfb.sendKey(keysyms.lookup(char.codePointAt(0)), keyCode(char));
    if (shift) rfb.sendKey(XK_SHIFT_L, "ShiftLeft", false);
  }
}

document.getElementById("console-cad").addEventListener("click", () => rfb && rfb.sendCtrlAltDel());
document.getElementById("console-fullscreen").addEventListener("click", () => screen.requestFullscreen());
document.getElementById("console-reconnect").addEventListener("click", connect);
document.getElementById("console-send-text").addEventListener("click", () => {
  const box = document.getElementById("console-text");
  if (rfb && box.value) { typeText(box.value); box.value = ""; rfb.focus(); }
});
scale.addEventListener("change", () => { if (rfb) rfb.scaleViewport = scale.checked; });

// The instance's live status (events socket): offer the console again once it runs.
document.body.addEventListener("portal:instance", (event) => {
  if (event.detail.id !== root.dataset.instance) return;
  if (event.detail.status === "running" && !rfb) say("The instance is running: Reconnect to open its console.", "is-info");
});

if (root.dataset.running) connect();
