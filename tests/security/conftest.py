"""Security tests: each attack that was seen against the API, as a test that must keep failing it.

Traffic goes only to 127.0.0.1. A ``Listener`` stands in for an attacker's server: it
accepts connections and records every byte, so a test can assert that nothing (no
request, no key) ever reached it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.api_helpers import Api, ClientFactory, _api


class Listener:
    """A TCP server on 127.0.0.1 that records every connection and the bytes it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.settimeout(0.5)
            try:
                while chunk := conn.recv(65536):
                    self.received += chunk
            except OSError:
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    srv = Listener()
    yield srv
    srv.close()


@pytest.fixture
async def pg_api(pg_store_url: str, aiohttp_client: ClientFactory) -> AsyncIterator[Api]:
    async for a in _api(pg_store_url, aiohttp_client):
        yield a


async def concurrently(n: int, make: Any) -> list[Any]:
    return await asyncio.gather(*(make(i) for i in range(n)))
