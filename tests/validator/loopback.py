"""An HTTP server on loopback that records every request: tests use it to show that a URL the
validator must not read is never contacted."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

SECRET_LINE = "internal-metadata-token,42"


class Recorder(http.server.BaseHTTPRequestHandler):
    """Serves a CSV whose first line is a secret, and records every request path."""

    requests: list[str]

    def do_GET(self) -> None:  # the name http.server calls
        self.requests.append(self.path)
        body = f"{SECRET_LINE}\n1,2\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads ``requests``."""


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 (a free port) and the list of paths it was asked for."""
    requests: list[str] = []
    handler = type("Handler", (Recorder,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()
    thread.join()
