"""``codi-eval serve``: the HTTP API the CODI app calls."""

from __future__ import annotations

import click

from codi_eval.cli import console, run_async


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@run_async
async def serve(host: str, port: int) -> None:
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
      CODI_EVAL_OPIK_WORKSPACES               workspaces allowed with the server's Opik key
    """
    import asyncio
    import logging

    from aiohttp import web

    from codi_eval.api import create_app, make_runner
    from codi_eval.settings import get_settings
    from codi_eval.store.engine import Store, safe_url

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = get_settings()
    store = await Store.open(settings.database_url)
    runner = make_runner(create_app(store, settings))
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            from codi_eval.cli import Failed

            raise Failed(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        bound = runner.addresses[0] if runner.addresses else (host, port)
        console.print(
            f"codi-eval API on http://{bound[0]}:{bound[1]}/api/v1 "
            f"(store {safe_url(settings.database_url)}); Ctrl-C to stop"
        )
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await store.close()


commands = [serve]
