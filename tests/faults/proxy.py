"""A TCP proxy in front of PostgreSQL that can cut, blackhole and restore the connection.

    proxy = TcpProxy(("127.0.0.1", 5432)).start()
    url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    proxy.cut()        # every connection is closed, new ones are closed at once
    proxy.blackhole()  # connections stay open but nothing passes either way
    proxy.restore()    # forward again

The cluster itself is never touched: faults are simulated here, on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Literal

Mode = Literal["forward", "cut", "blackhole"]


class TcpProxy:
    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.host = host
        self.port = 0
        self.mode: Mode = "forward"
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._ready = threading.Event()

    # ------------------------------------------------------------------ control
    def start(self) -> TcpProxy:
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def cut(self) -> None:
        """Drop every connection now, and close new ones as they come (a server gone)."""
        self._call(self._set, "cut")

    def blackhole(self) -> None:
        """Keep connections open but pass nothing (a network that stopped answering)."""
        self._call(self._set, "blackhole")

    def restore(self) -> None:
        self._call(self._set, "forward")

    def _call(self, fn: object, *args: object) -> None:
        assert self._loop is not None
        done = threading.Event()

        def run() -> None:
            fn(*args)  # type: ignore[operator]
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(5)

    def _set(self, mode: Mode) -> None:
        self.mode = mode
        if mode == "cut":
            for a, b in list(self._pairs):
                for w in (a, b):
                    with contextlib.suppress(Exception):
                        w.transport.abort()
            self._pairs.clear()

    # ------------------------------------------------------------------ serving
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._client, self.host, 0)
            self.port = self._server.sockets[0].getsockname()[1]

        loop.run_until_complete(start())
        self._ready.set()
        loop.run_forever()
        for a, b in list(self._pairs):
            for w in (a, b):
                with contextlib.suppress(Exception):
                    w.transport.abort()
        assert self._server is not None
        self._server.close()
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.mode == "cut":
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        self._pairs.discard(pair)
        for w in pair:
            with contextlib.suppress(Exception):
                w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            while self.mode == "blackhole":
                await asyncio.sleep(0.05)  # hold the bytes: nothing passes, nothing is closed
            if self.mode == "cut":
                return
            writer.write(data)
            await writer.drain()
