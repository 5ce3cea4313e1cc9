"""``codi-eval datasets``: build, import and list code datasets."""

from __future__ import annotations

import click
from rich.table import Table

from codi_eval.cli import console, emit_json, open_store, out, run_async


@click.group()
def datasets() -> None:
    """Build code datasets from Python source, import JSONL files, list stored versions."""


@datasets.command()
@click.option(
    "--module",
    "modules",
    multiple=True,
    required=True,
    help="A module or package to extract from (repeatable), e.g. --module json.",
)
@click.option(
    "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="JSONL file to write."
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Keep at most N functions.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --limit sampling.")
@click.option(
    "--max-lines",
    type=click.IntRange(min=3),
    default=60,
    show_default=True,
    help="Drop functions longer than this.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def build(
    modules: tuple[str, ...],
    out_path: str,
    limit: int | None,
    seed: int,
    max_lines: int,
    as_json: bool,
) -> None:
    """Extract documented functions the CodeSearchNet way: docstring's first paragraph
    becomes `reference`, the docstring leaves `code`; short, test, dunder and duplicate
    functions are dropped."""
    from codi_eval.datasets import build_from_modules, write_jsonl

    items = build_from_modules(list(modules), limit=limit, seed=seed, max_lines=max_lines)
    count = write_jsonl(items, out_path)
    if as_json:
        emit_json({"out": out_path, "items": count, "modules": list(modules)})
    else:
        out.print(f"wrote {count} functions from {', '.join(modules)} to {out_path}")


@datasets.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", default=None, help="Dataset name [default: the file name].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def import_(file: str, name: str | None, as_json: bool) -> None:
    """Validate FILE and store it as an immutable dataset version."""
    from codi_eval.store.datasets import import_file

    async with open_store() as store:
        result = await import_file(store, file, name=name)
    ds = result.dataset
    if as_json:
        emit_json(
            {
                "id": str(ds.id),
                "name": ds.name,
                "version": ds.version,
                "items": ds.item_count,
                "content_hash": ds.content_hash,
                "created": result.created,
            }
        )
    elif result.created:
        out.print(f"stored {ds.name} v{ds.version}: {ds.item_count} items ({ds.content_hash[:12]})")
    else:
        console.print(f"unchanged: {ds.name} v{ds.version} already holds this content")


@datasets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def list_(as_json: bool) -> None:
    """List stored dataset versions."""
    from codi_eval.store.datasets import list_datasets

    async with open_store() as store:
        rows = await list_datasets(store)
    if as_json:
        emit_json(
            [
                {
                    "id": str(d.id),
                    "name": d.name,
                    "version": d.version,
                    "items": d.item_count,
                    "content_hash": d.content_hash,
                    "source": d.source_path,
                    "created_at": d.created_at.isoformat(),
                }
                for d in rows
            ]
        )
        return
    table = Table("dataset", "version", "items", "hash", "source")
    for d in rows:
        table.add_row(
            d.name, str(d.version), str(d.item_count), d.content_hash[:12], d.source_path or ""
        )
    out.print(table)


commands = [datasets]
