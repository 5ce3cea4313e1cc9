"""``codi-eval db``: schema migrations."""

from __future__ import annotations

import asyncio

import click

from codi_eval.cli import emit_json, out, run_async
from codi_eval.settings import get_settings
from codi_eval.store import engine


@click.group()
def db() -> None:
    """Create and upgrade the store's schema."""


@db.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@run_async
async def upgrade(revision: str) -> None:
    """Apply migrations to CODI_EVAL_DATABASE_URL (creates a new SQLite file)."""
    url = get_settings().database_url
    before = await asyncio.to_thread(engine.current_revision, url)
    await asyncio.to_thread(engine.upgrade, url, revision)
    after = await asyncio.to_thread(engine.current_revision, url)
    out.print(f"{engine.safe_url(url)}: {before or 'empty'} → {after}")


@db.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def status(as_json: bool) -> None:
    """Show the store's revision and whether it is up to date."""
    url = get_settings().database_url
    current = await asyncio.to_thread(engine.current_revision, url)
    head = engine.head_revision()
    data = {
        "url": engine.safe_url(url),
        "current": current,
        "head": head,
        "up_to_date": current == head,
    }
    if as_json:
        emit_json(data)
    else:
        state = "up to date" if current == head else "behind: run `codi-eval db upgrade`"
        out.print(f"{data['url']}: revision {current or 'empty'} (head {head}) — {state}")


commands = [db]
