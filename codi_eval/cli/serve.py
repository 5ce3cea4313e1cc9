"""``codi-eval serve``: the API for the CODI app, in one process or several on one port."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import click

from codi_eval.cli import Failed, console, run_async

# Time a worker gets to answer what it is serving and flush queued traces when stopped.
_STOP_S = 30.0


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes accepting on the one port (use up to one per core). Each holds "
    "its own limit counters and 1/N of CODI_EVAL_API_DB_CONNECTIONS; a worker that dies "
    "is restarted.",
)
# The pre-forked worker's side (``--workers`` > 1 starts its workers with these).
@click.option("--listen-fd", type=int, hidden=True)
@click.option("--control-fd", type=int, hidden=True)
def serve(
    host: str, port: int, workers: int, listen_fd: int | None, control_fd: int | None
) -> None:
    """Serve the API under /api/v1 (OpenAPI at /api/v1/openapi.json) until interrupted.

    \b
    Requests choose only among what the operator configured (README, "Threat model"):
      CODI_EVAL_API_MODELS                    models a request may name (default: offline)
      CODI_EVAL_API_MAX_IN_FLIGHT             requests handled at once (default 256; then 503)
      CODI_EVAL_API_USER_RPM                  requests per user per minute (default 600; 429)
      CODI_EVAL_API_USER_SUMMARIES_PER_MINUTE summaries per user per minute (default 30)
      CODI_EVAL_API_USER_CONCURRENT_SUMMARIES summaries per user at once (default 4)
      CODI_EVAL_API_SUMMARY_WORKERS           summaries at work at once (default 16; rest wait)
      CODI_EVAL_API_REQUEST_TIMEOUT_S         per-request deadline (default 120; then 504)
      CODI_EVAL_API_BODY_TIMEOUT_S            time to send a body (default 10; then 408)
      CODI_EVAL_API_DB_CONNECTIONS            database connections, all workers (default 20)
      CODI_EVAL_OPIK_WORKSPACES               workspaces allowed with the server's Opik key

    \b
    The limits hold per worker process: with --workers N a user's quota is N times the
    configured one. SIGTERM stops the server like Ctrl-C: requests in hand are answered
    and queued traces are written before it exits.
    """
    if listen_fd is not None:
        _worker(listen_fd, control_fd, workers)
    elif workers == 1:
        _one_process(host, port)
    else:
        _supervise(host, port, workers)


def _logging(*, pids: bool = False) -> None:
    import logging

    who = "%(name)s[%(process)d]" if pids else "%(name)s"
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s {who}: %(message)s")


def _announce(bound: tuple[str, int], workers: int) -> None:
    from codi_eval.settings import get_settings
    from codi_eval.store.engine import safe_url

    store = safe_url(get_settings().database_url)
    where = f"store {store}" if workers == 1 else f"store {store}, {workers} workers"
    console.print(f"codi-eval API on http://{bound[0]}:{bound[1]}/api/v1 ({where}); Ctrl-C to stop")


@run_async
async def _one_process(host: str, port: int) -> None:
    _logging()
    await _serve(host=host, port=port, workers=1, listening=lambda bound: _announce(bound, 1))


def _worker(listen_fd: int, control_fd: int | None, workers: int) -> None:
    """One pre-forked worker: serve on the inherited socket until the supervisor says stop
    (closes the control socket) or goes away; Ctrl-C is the supervisor's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _logging(pids=True)
    sock = socket.socket(fileno=listen_fd)
    control = socket.socket(fileno=control_fd) if control_fd is not None else None

    def listening(_bound: tuple[str, int]) -> None:
        if control is not None:
            control.sendall(b"ready\n")

    run_async(_serve)(sock=sock, control=control, workers=workers, listening=listening)


async def _serve(
    *,
    listening: Callable[[tuple[str, int]], None],
    workers: int,
    host: str | None = None,
    port: int | None = None,
    sock: socket.socket | None = None,
    control: socket.socket | None = None,
) -> None:
    """Open the store, start the API on ``host:port`` (or an inherited ``sock``), call
    ``listening`` with the bound address and serve until SIGTERM, a closed ``control``
    socket, or Ctrl-C; then stop gracefully."""
    import asyncio
    import gc

    from aiohttp import web

    from codi_eval.api import create_app, make_runner
    from codi_eval.settings import get_settings
    from codi_eval.store.engine import Store

    settings = get_settings()
    # Pool plus as much overflow again: each worker's share of the connections configured.
    pool = max(1, settings.api_db_connections // (2 * workers))
    store = await Store.open(settings.database_url, pool_size=pool)
    runner = make_runner(create_app(store, settings))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if control is not None:
        control.setblocking(False)
        # The supervisor never writes after "ready": readable means it closed or died.
        loop.add_reader(control.fileno(), stop.set)
    try:
        await runner.setup()
        site: web.BaseSite
        site = web.SockSite(runner, sock) if sock is not None else web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise Failed(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        bound = runner.addresses[0] if runner.addresses else (host or "", port or 0)
        # What is loaded by now (modules, the SDKs' types, the app) lives as long as the
        # process: out of the collector's reach, a full collection walks only what requests
        # made. Without this each one walked the whole heap on the loop, 105 ms, about once
        # a second under load: the stalls in /health's p99 (BENCHMARKS.md, the API under attack).
        gc.freeze()
        listening(bound)
        await stop.wait()
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        if control is not None:
            loop.remove_reader(control.fileno())
        await runner.cleanup()
        await store.close()


class _Worker:
    """A worker process and the supervisor's end of its control socket."""

    def __init__(self, listener: socket.socket, workers: int) -> None:
        ours, theirs = socket.socketpair()
        self.control = ours
        ours.setblocking(False)
        args = [sys.executable, "-m", "codi_eval", "serve", "--workers", str(workers)]
        args += ["--listen-fd", str(listener.fileno()), "--control-fd", str(theirs.fileno())]
        self.process = subprocess.Popen(args, pass_fds=(listener.fileno(), theirs.fileno()))
        theirs.close()
        self.ready = False

    def poll_ready(self) -> None:
        try:
            self.ready = self.ready or self.control.recv(16).startswith(b"ready")
        except BlockingIOError:
            pass

    def stop(self) -> None:
        self.control.close()


def _supervise(host: str, port: int, workers: int) -> None:
    """Bind once, start ``workers`` processes accepting on the socket, restart any that dies,
    and stop them all gracefully on Ctrl-C or SIGTERM."""
    import logging

    _logging(pids=True)
    log = logging.getLogger("codi_eval.serve")
    listener = run_async(_listen)(host, port)
    bound = listener.getsockname()[:2]
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    pool = [_Worker(listener, workers) for _ in range(workers)]
    announced = False
    code = 0
    try:
        while not stopping:
            for i, worker in enumerate(pool):
                worker.poll_ready()
                rc = worker.process.poll()
                if rc is None:
                    continue
                worker.poll_ready()  # "ready" may have come just before it died
                # One that never got ready is broken (bad settings, a store it cannot open):
                # the server stops with its exit code instead of restarting it forever.
                if not worker.ready:
                    log.error(
                        "worker %d (pid %d) exited with %d at start", i, worker.process.pid, rc
                    )
                    code = rc or 1
                    stopping.append(0)
                    break
                log.warning(
                    "worker %d (pid %d) exited with %d; restarting it", i, worker.process.pid, rc
                )
                worker.stop()
                pool[i] = _Worker(listener, workers)
            if not announced and all(w.ready for w in pool):
                announced = True
                _announce(bound, workers)
            time.sleep(0.1)
    finally:
        listener.close()
        for worker in pool:
            worker.stop()
        deadline = time.monotonic() + _STOP_S
        for worker in pool:
            try:
                worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
    if signal.SIGINT in stopping:
        console.print("interrupted")
        sys.exit(130)
    sys.exit(code)


async def _listen(host: str, port: int) -> socket.socket:
    """Check the settings and the store (migrations run here once, not in N workers racing
    each other), then bind the socket the workers share."""
    from codi_eval.settings import get_settings
    from codi_eval.store.engine import Store

    store = await Store.open(get_settings().database_url)
    await store.close()
    try:
        return socket.create_server((host, port), backlog=1024)
    except OSError as exc:
        raise Failed(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


commands = [serve]
