"""``codi-eval opik``: send the outbox backlog to Comet Opik and show its state."""

from __future__ import annotations

import asyncio

import click
from rich.table import Table

from codi_eval.cli import Failed, console, emit_json, open_store, out, run_async
from codi_eval.settings import Settings, get_settings
from codi_eval.store.engine import Store


async def sync_after_work(store: Store, settings: Settings, *, quiet: bool) -> None:
    """Send what a command just queued; an unreachable Opik leaves it queued, never fails it."""
    from codi_eval.opik_sync import sync_outbox

    report = await asyncio.wait_for(sync_outbox(store, settings, timeout_s=30), timeout=300)
    if not quiet:
        console.print(f"opik: {report}")


@click.group()
def opik() -> None:
    """Mirror the store to Comet Opik (OPIK_URL_OVERRIDE, OPIK_API_KEY, OPIK_WORKSPACE)."""


@opik.command()
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds to wait for Opik to confirm each batch.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def sync(timeout_s: float, as_json: bool) -> None:
    """Send everything pending or failed in the outbox; exit 1 if some of it still failed."""
    from codi_eval.opik_sync import outbox_status, sync_outbox

    settings = get_settings()
    async with open_store(settings) as store:
        total_sent: dict[str, int] = {}
        total_failed: dict[str, int] = {}
        last_error = None
        while True:
            report = await sync_outbox(store, settings, timeout_s=timeout_s)
            for kind, n in report.sent.items():
                total_sent[kind] = total_sent.get(kind, 0) + n
            total_failed = dict(report.failed)
            last_error = report.last_error or last_error
            if not report.sent or report.failed:
                break  # nothing more to send, or Opik is refusing: stop instead of spinning
        status = await outbox_status(store)
    data = {
        "sent": total_sent,
        "failed": total_failed,
        "pending": status["pending"] + status["failed"],
        "last_error": last_error if total_failed else None,
    }
    if as_json:
        emit_json(data)
    else:
        out.print(
            f"sent {sum(total_sent.values())} ({', '.join(f'{k} {v}' for k, v in total_sent.items()) or 'nothing'}); "
            f"{data['pending']} left"
        )
        if total_failed:
            out.print(f"last error: {last_error}")
    if total_failed:
        raise Failed("some exports failed; they stay queued for the next `codi-eval opik sync`")


@opik.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def status(as_json: bool) -> None:
    """Show the outbox: pending, sent and failed copies, and the last error."""
    from codi_eval.opik_sync import outbox_status

    settings = get_settings()
    async with open_store(settings) as store:
        data = await outbox_status(store)
    data["configured"] = settings.opik_configured
    if as_json:
        emit_json(data)
        return
    table = Table("kind", "pending", "sent", "failed")
    for kind, counts in sorted(data["by_kind"].items()):
        table.add_row(
            kind,
            str(counts.get("pending", 0)),
            str(counts.get("sent", 0)),
            str(counts.get("failed", 0)),
        )
    out.print(table)
    out.print(
        f"pending {data['pending']}, sent {data['sent']}, failed {data['failed']}"
        + (
            ""
            if data["configured"]
            else "  (Opik is not configured: set OPIK_URL_OVERRIDE or OPIK_API_KEY)"
        )
    )
    if data["last_error"]:
        out.print(f"last error: {data['last_error']}")


commands = [opik]
