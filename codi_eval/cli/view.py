"""``codi-eval view``: the local web viewer (experiments, cells, runs, traces) on 127.0.0.1."""

from __future__ import annotations

import click

from codi_eval.cli import Failed, console, open_store, run_async

HOST = "127.0.0.1"


@click.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the viewer in a web browser.")
@run_async
async def view(port: int, open_browser: bool) -> None:
    """Browse the store in a web browser: experiments, their cells, density curves and A/B
    tables, every run's code, Chain-of-Density iterations (added entities highlighted), final
    summary, judge's reason and span timeline, and the traces made outside experiments.

    Listens on 127.0.0.1 only and needs no token: a local, single-user tool (everything
    is served from this process; nothing is fetched from the internet). Ctrl-C stops it.
    """
    import asyncio

    from aiohttp import web

    from codi_eval.api import create_app, make_runner
    from codi_eval.settings import get_settings
    from codi_eval.store.engine import safe_url

    settings = get_settings()
    async with open_store(settings, must_exist=True) as store:
        runner = make_runner(create_app(store, settings, viewer=True))
        try:
            await runner.setup()
            site = web.TCPSite(runner, HOST, port)
            try:
                await site.start()
            except OSError as exc:
                raise Failed(f"cannot listen on {HOST}:{port}: {exc.strerror or exc}") from None
            bound = runner.addresses[0] if runner.addresses else (HOST, port)
            url = f"http://{bound[0]}:{bound[1]}/"
            console.print(
                f"codi-eval viewer on {url} (store {safe_url(settings.database_url)}); "
                "Ctrl-C to stop",
                soft_wrap=True,
            )
            if open_browser:
                import webbrowser

                webbrowser.open(url)
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()


commands = [view]
