"""``codi-eval datasets``: build, import and list code datasets."""

from __future__ import annotations

import click
from rich.table import Table

from codi_eval.cli import console, emit_json, open_store, out, run_async
from codi_eval.errors import InputError


@click.group()
def datasets() -> None:
    """Build code datasets from Python, Dart or JavaScript source, import JSONL files, list
    stored versions."""


@datasets.command()
@click.option(
    "--module",
    "modules",
    multiple=True,
    help="Python: a module or package to extract from (repeatable), e.g. --module json.",
)
@click.option(
    "--source",
    "source_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="A directory of source files to extract from (with --language), e.g. a Flutter app.",
)
@click.option(
    "--language",
    default=None,
    help="The language of --source: dart or javascript (aliases such as js work).",
)
@click.option(
    "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="JSONL file to write."
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Keep at most N items (a seeded sample).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --limit sampling.")
@click.option(
    "--max-lines",
    type=click.IntRange(min=3),
    default=60,
    show_default=True,
    help="Drop declarations longer than this (non-blank lines, doc comment removed).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with the drop counts per rule).")
@run_async
async def build(
    modules: tuple[str, ...],
    source_dir: str | None,
    language: str | None,
    out_path: str,
    limit: int | None,
    seed: int,
    max_lines: int,
    as_json: bool,
) -> None:
    """Extract documented code the CodeSearchNet way: the docstring or doc comment leaves
    `code` and its summary becomes `reference` (Python: the docstring's first paragraph; Dart
    `///` and JSDoc: the first sentence, Markdown and [name] references as plain text).
    Short, test, constructor, generated, undocumented and near-duplicate code is dropped.

    \b
    Python:      codi-eval datasets build --module json --out json.jsonl
    Dart, JS:    codi-eval datasets build --source DIR --language dart --out x.jsonl
    """
    from codi_eval.builders import SOURCE_LANGUAGES, BuildReport, build_from_source
    from codi_eval.builders.python import build_from_modules
    from codi_eval.code_facts import canonical_language
    from codi_eval.datasets import write_jsonl

    if bool(modules) == bool(source_dir):
        raise InputError(
            "give either --module (Python) or --source DIR with --language", field="--source"
        )
    report = BuildReport()
    if modules:
        if language is not None and canonical_language(language) != "python":
            raise InputError(
                f"--module reads Python modules; for {language} use --source DIR",
                field="--language",
            )
        items = build_from_modules(list(modules), limit=limit, seed=seed, max_lines=max_lines)
        what = ", ".join(modules)
    else:
        assert source_dir is not None
        canonical = canonical_language(language) if language else None
        if canonical not in SOURCE_LANGUAGES:
            known = ", ".join(SOURCE_LANGUAGES)
            given = (
                f"{language!r} is not one of {known}"
                if language
                else f"is required: one of {known}"
            )
            raise InputError(given, field="--language")
        items = build_from_source(
            source_dir, canonical, limit=limit, seed=seed, max_lines=max_lines, report=report
        )
        what = source_dir
    count = write_jsonl(items, out_path)
    if as_json:
        result: dict[str, object] = {"out": out_path, "items": count}
        if modules:
            result["modules"] = list(modules)
        else:
            result.update(source=source_dir, language=items[0].language if items else language)
            result["report"] = report.to_json()
        emit_json(result)
    else:
        out.print(f"wrote {count} items from {what} to {out_path}")
        if not modules:
            drops = ", ".join(f"{rule} {n}" for rule, n in report.ordered_drops())
            out.print(f"dropped: {drops or 'nothing'}")


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
