"""``codi-eval prompts``: the versioned prompt registry."""

from __future__ import annotations

import click
from rich.table import Table

from codi_eval import prompts as registry
from codi_eval.cli import emit_json, open_store, out, run_async
from codi_eval.settings import get_settings


@click.group()
def prompts() -> None:
    """Seed and list versioned prompt templates (configs/prompts/*.yaml)."""


@prompts.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help="Prompt directory [default: configs/prompts].",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def seed(directory: str | None, as_json: bool) -> None:
    """Load prompt files into the store. Idempotent; a changed version is refused (exit 2)."""
    from pathlib import Path

    settings = get_settings()
    path = Path(directory) if directory else settings.prompts_dir
    async with open_store(settings) as store:
        report = await registry.seed_prompts(store, path)
    if as_json:
        emit_json({"created": report.created, "unchanged": report.unchanged})
        return
    for ref in report.created:
        out.print(f"created   {ref}")
    out.print(f"{len(report.created)} created, {len(report.unchanged)} unchanged")


@prompts.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def list_(as_json: bool) -> None:
    """List seeded prompt versions."""
    async with open_store() as store:
        rows = await registry.list_prompts(store)
    if as_json:
        emit_json(
            [
                {
                    "name": p.name,
                    "version": p.version,
                    "ref": p.ref,
                    "variables": p.variables,
                    "description": p.description,
                    "template_hash": p.template_hash,
                    "created_at": p.created_at.isoformat(),
                }
                for p in rows
            ]
        )
        return
    table = Table("prompt", "variables", "hash", "description")
    for p in rows:
        table.add_row(
            p.ref, ", ".join(p.variables), p.template_hash[:12], (p.description or "").strip()[:70]
        )
    out.print(table)
    if not rows:
        out.print("no prompts seeded yet: run `codi-eval prompts seed`")


commands = [prompts]
