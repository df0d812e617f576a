"""A stand-in VNC server for the console proxy tests: sends the RFB banner, then echoes what
it receives, and counts its connections (a refused ticket must never reach it)."""

from __future__ import annotations

import socketserver
import threading

BANNER = b"RFB 003.008\n"


class FakeVnc:
    def __init__(self):
        self.connections = 0
        owner = self

        class Echo(socketserver.BaseRequestHandler):
            def handle(self):
                owner.connections += 1
                self.request.sendall(BANNER)
                while data := self.request.recv(65536):
                    self.request.sendall(data)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


