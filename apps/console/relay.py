"""What both console proxies do while bytes flow: count them, notice user input (for the idle
timeout) and say when the session is due for its access recheck. No I/O here: the channels
consumer (asyncio) and the websockify handler (a thread) each drive one `Meter`."""

from __future__ import annotations

import struct
import time
from typing import Callable

from django.conf import settings

# RFB client-to-server messages after the handshake: type → (fixed length, how to find the
# variable part). Only key and pointer events count as input; noVNC keeps asking for screen
# updates on its own, which must not keep an abandoned session alive.
_KEY_EVENT, _POINTER_EVENT, _QEMU = 4, 5, 255
_FIXED = {0: 20, 3: 10, 4: 8, 5: 6, 150: 10}


def _variable_length(kind: int, buf: bytes) -> int | None:
    """Length of a variable-size message at the start of `buf`; None until the header is in."""
    if kind == 2:  # SetEncodings: u16 count of s32
        return None if len(buf) < 4 else 4 + 4 * struct.unpack_from(">H", buf, 2)[0]
    if kind == 6:  # ClientCutText: u32 length
        return None if len(buf) < 8 else 8 + struct.unpack_from(">I", buf, 4)[0]
    if kind == 248:  # ClientFence: u8 payload length at offset 8
        return None if len(buf) < 9 else 9 + buf[8]
    if kind == 251:  # SetDesktopSize: u8 screen count at offset 6, 16 bytes each
        return None if len(buf) < 8 else 8 + 16 * buf[6]
    if kind == _QEMU:  # QEMU extended key event (subtype 0) is 12 bytes; others vary
        return None if len(buf) < 2 else (12 if buf[1] == 0 else -1)
    return -1


class InputWatcher:
    """Follows the client's RFB stream just enough to tell key and pointer events from the
    rest. If it ever meets a message it cannot frame, every later byte counts as input (the
    timeout then errs on the side of keeping the session)."""

    def __init__(self):
        self._buf = b""
        self._handshake_left: int | None = None  # bytes of the handshake still to come
        self._lost = False

    def feed(self, data: bytes) -> bool:
        """True when `data` carries user input."""
        if self._lost:
            return True
        self._buf += data
        self._skip_handshake()
        if self._handshake_left:
            return False
        found = False
        while self._buf and not self._lost:
            kind = self._buf[0]
            length = _FIXED.get(kind) or _variable_length(kind, self._buf)
            if length is None or len(self._buf) < max(length, 1):
                break
            if length < 0:
                self._lost, self._buf = True, b""
                return True
            found = found or kind in (_KEY_EVENT, _POINTER_EVENT, _QEMU)
            self._buf = self._buf[length:]
        return found

    def _skip_handshake(self) -> None:
        if self._handshake_left is None:
            if len(self._buf) < 12:
                return
            # 3.3: the server picks the security type; the client sends only ClientInit (1).
            # 3.7+: the client also picks the security type (1); VNC auth adds a 16-byte answer.
            self._handshake_left = 13 if self._buf[:12] == b"RFB 003.003\n" else 14
        while self._handshake_left and self._buf:
            if self._handshake_left == 2 and self._buf[0] == 2:  # security type 2: VNC authentication
                self._handshake_left += 16
            self._buf = self._buf[1:]
            self._handshake_left -= 1


class Meter:
    """Byte counts, input and recheck timing of one relayed session."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self.to_guest = 0
        self.to_client = 0
        self._input = InputWatcher()
        self.last_input = self.last_check = clock()

    def from_client(self, data: bytes) -> None:
        self.to_guest += len(data)
        if self._input.feed(data):
            self.last_input = self._clock()

    def from_guest(self, data: bytes) -> None:
        self.to_client += len(data)

    @property
    def idle(self) -> bool:
        timeout = settings.PORTAL_CONSOLE_IDLE_TIMEOUT  # 0: no idle timeout
        return bool(timeout) and self._clock() - self.last_input >= timeout

    def recheck_due(self) -> bool:
        now = self._clock()
        if now - self.last_check >= settings.PORTAL_CONSOLE_RECHECK:
            self.last_check = now
            return True
        return False

    def idle_message(self) -> str:
        minutes = settings.PORTAL_CONSOLE_IDLE_TIMEOUT / 60
        return f"Closed after {minutes:g} minutes without keyboard or mouse input."
