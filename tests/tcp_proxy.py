"""A loopback TCP proxy that can cut or freeze a connection when the client sends a
given command: real network faults at exact protocol moments (a connection dropped
in the middle of a FETCH, a server that stops answering a MOVE), or hold a command
back while something else happens on the server (mail landing as a SEARCH runs)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

from tests.dovecot import free_port


class TcpProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.cut_on: bytes | None = None  # drop both sides when the client sends this
        self.freeze_on: bytes | None = None  # stop forwarding (both ways) from then on
        # When the client sends `hold_on`, `while_held` runs before the server reads it.
        self.hold_on: bytes | None = None
        self.while_held: Callable[[], None] = lambda: None
        # Connections past the first `accept_only` are answered `refusal` and closed, as
        # a server that limits its clients' connections answers them.
        self.accept_only: int | None = None
        self.refusal = b"421 4.7.0 Error: too many connections\r\n"
        self.refused = 0
        self.sent = bytearray()  # everything the clients sent, in order
        self.answered = bytearray()  # everything the server sent back, in order
        self.tripped = threading.Event()
        self.connections = 0
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.accept_only is not None and self.connections >= self.accept_only:
                self.refused += 1
                with contextlib.suppress(OSError):
                    client.sendall(self.refusal)
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.connections += 1
            self._sockets += [client, upstream]
            frozen = threading.Event()
            threading.Thread(target=self._pump, args=(client, upstream, frozen, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, frozen, False),
                             daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, frozen: threading.Event,
              from_client: bool) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            if from_client and self.cut_on and self.cut_on in data:
                self.cut_on = None
                self.tripped.set()
                break
            if from_client:
                self.sent += data
            else:
                self.answered += data
            if from_client and self.hold_on and self.hold_on in data:
                self.hold_on = None
                self.while_held()
                self.tripped.set()
            if from_client and self.freeze_on and self.freeze_on in data:
                self.freeze_on = None
                self.tripped.set()
                frozen.set()
            if frozen.is_set():
                continue  # swallowed: the peer waits for an answer that never comes
            try:
                target.sendall(data)
            except OSError:
                break
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def drop_all(self) -> None:
        """Every open connection ends now, as when the server side goes away."""
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
