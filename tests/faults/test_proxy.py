"""The fault proxy on its own, in front of a small echo server."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from faults.proxy import FaultProxy

QUIET_S = 0.3  # how long "nothing arrives" is watched for


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    made = FaultProxy(server.server_address[1])
    made.start()
    yield made
    made.close()
    server.shutdown()
    server.server_close()


def _connect(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=10)


def test_bytes_pass_through_plain_and_delayed(proxy: FaultProxy) -> None:
    with _connect(proxy) as s:
        s.sendall(b"ping")
        assert s.recv(4) == b"ping"
        proxy.set("delay", 0.01)
        s.sendall(b"pong")
        assert s.recv(4) == b"pong"


def test_a_blackhole_holds_the_bytes_until_the_link_heals(proxy: FaultProxy) -> None:
    with _connect(proxy) as s:
        proxy.set("blackhole")
        s.sendall(b"held")
        s.settimeout(QUIET_S)
        with pytest.raises(TimeoutError):
            s.recv(4)
        proxy.set("pass")
        s.settimeout(10)
        assert s.recv(4) == b"held"


def test_a_reset_breaks_open_connections_and_new_ones_work(proxy: FaultProxy) -> None:
    with _connect(proxy) as s:
        s.sendall(b"ping")
        assert s.recv(4) == b"ping"
        assert proxy.reset() == 1
        with pytest.raises(ConnectionResetError):
            s.sendall(b"more")
            s.recv(4)
    with _connect(proxy) as s:
        s.sendall(b"again")
        assert s.recv(5) == b"again"
