"""A tracking server that hangs: a socket on 127.0.0.1 that accepts every connection and never
answers (what a wedged proxy or a server stuck in a long pause looks like to a client)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class HungServer:
    url: str  # http://127.0.0.1:<port>
    connections: list[socket.socket] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        """How many connections clients opened so far."""
        return len(self.connections)


@contextlib.contextmanager
def hung_server() -> Iterator[HungServer]:
    """Listen on a free loopback port; accept and hold connections, read nothing, send nothing."""
    listener = socket.create_server(("127.0.0.1", 0))
    server = HungServer(f"http://127.0.0.1:{listener.getsockname()[1]}")
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)  # to notice the stop between connections
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                server.connections.append(listener.accept()[0])

    thread = threading.Thread(target=accept, name="hung-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join()
        for connection in [*server.connections, listener]:
            connection.close()
