"""A minimal RADIUS server on a thread: accepts every login and acknowledges all accounting.

For bringing sessions online in the BRAS simulator where only the NAS side matters (the CoA
client's tests, the CoA benchmark) and a database would be noise. Access-Request → Access-Accept
with no attributes; an accounting request whose Request Authenticator verifies → kept in
``accounting_requests`` and answered; anything else (malformed, wrong secret) is dropped
unanswered. A test that needs other answers overrides :meth:`AcceptingRadius.answer`.
"""

from __future__ import annotations

import socket
import threading

from aaa import codec
from aaa.codec import Code, RadiusPacket

__all__ = ["AcceptingRadius"]

ACCT_STATUS_TYPE, STOP = 40, 2


class AcceptingRadius:
    """Listens on 127.0.0.1 (a free port: ``port``) until ``close()``."""

    def __init__(self, secret: bytes, *, name: str = "radius-stub") -> None:
        self.secret = secret
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self.accounting_requests: list[RadiusPacket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def stops(self) -> list[RadiusPacket]:
        """The Accounting Stops received so far."""
        return [
            p for p in list(self.accounting_requests) if p.get(ACCT_STATUS_TYPE) == STOP.to_bytes(4, "big")
        ]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            try:
                req = codec.decode(data)
            except codec.MalformedPacket:
                continue
            reply = self.answer(req)
            if reply is not None:
                self.sock.sendto(reply, peer)

    def answer(self, req: RadiusPacket) -> bytes | None:
        """The reply to ``req`` (None: no reply). Runs on the server's thread."""
        if req.code == Code.ACCESS_REQUEST:
            return codec.encode_reply(req, Code.ACCESS_ACCEPT, [], self.secret)
        if codec.verify_request_authenticator(req, self.secret):
            self.accounting_requests.append(req)
            return codec.encode_reply(req, Code.ACCOUNTING_RESPONSE, [], self.secret)
        return None
