"""``codi-eval experiments list | show | delete | export``: manage the experiments in the store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from codi_eval.cli import (
    Failed,
    StoreMissing,
    check_store_exists,
    console,
    emit_json,
    open_store,
    out,
    run_async,
)
from codi_eval.errors import InputError
from codi_eval.settings import get_settings
from codi_eval.store.engine import safe_url

FORMATS = ("csv", "jsonl", "parquet")


@click.group("experiments")
def experiments() -> None:
    """List, show, delete and export the experiments in the store.

    \b
    EXP is an experiment's name (the newest with it), its id, or a unique id prefix.
    """


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "—"


@experiments.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def list_command(as_json: bool) -> None:
    """Every experiment in the store, newest first, with its cells and run counts."""
    from codi_eval.store.experiments import list_experiments

    settings = get_settings()
    where = safe_url(settings.database_url)
    try:
        check_store_exists(settings.database_url)
    except StoreMissing:
        # Nothing has been run with this store: an empty list, and no file is created.
        if as_json:
            emit_json({"store": where, "experiments": []})
        else:
            out.print(f"no experiments: the store {where} does not exist yet")
            out.print("start with: codi-eval run experiments/quickstart.yaml")
        return
    async with open_store(settings, must_exist=True) as store:
        rows = await list_experiments(store)
    if as_json:
        emit_json({"store": where, "experiments": [r.to_dict() for r in rows]})
        return
    if not rows:
        out.print(f"no experiments in the store {where}")
        return
    table = Table(title=f"experiments in {where}")
    for col in ("name", "id", "status", "created", "cells", "runs", "ok", "failed", "pending"):
        table.add_column(
            col, justify="right" if col in ("cells", "runs", "ok", "failed", "pending") else "left"
        )
    for r in rows:
        table.add_row(
            r.name,
            str(r.id)[:13],
            r.status,
            _when(r.created_at),
            str(r.cells),
            str(r.runs),
            str(r.succeeded),
            str(r.failed),
            str(r.pending),
        )
    out.print(table)
    out.print("show one: codi-eval experiments show NAME  ·  its outputs: codi-eval show NAME")


@experiments.command("show")
@click.argument("experiment", metavar="EXP")
@click.option("--wide", is_flag=True, help="Every column with full cell keys.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--watch",
    "watch",
    is_flag=False,
    flag_value=2.0,
    default=None,
    type=click.FloatRange(0.2, 3600),
    metavar="[SECONDS]",
    help="Follow the experiment as workers run it (refresh every SECONDS, default 2) until "
    "no run is left; exit 1 if any run failed. Works from any machine on the same store.",
)
@run_async
async def show_command(experiment: str, wide: bool, as_json: bool, watch: float | None) -> None:
    """What EXP is (spec, dataset, judge, metrics, run counts) and its results per cell."""
    from codi_eval.analysis.cells import cell_results
    from codi_eval.cli.run import results_table
    from codi_eval.store.experiments import experiment_footprint, find_experiment

    if watch is not None:
        if as_json:
            raise click.UsageError("--watch shows a live table; use --json without --watch")
        await _watch(experiment, wide, watch)
        return
    async with open_store(must_exist=True) as store:
        exp = await find_experiment(store, experiment)
        cells = await cell_results(store, exp.id)
        footprint = await experiment_footprint(store, exp)
        where = safe_url(store.url)
    spec = exp.spec or {}
    info = {
        "id": str(exp.id),
        "name": exp.name,
        "status": exp.status,
        "created_at": exp.created_at.isoformat(),
        "finished_at": exp.finished_at.isoformat() if exp.finished_at else None,
        "spec_path": exp.spec_path,
        "store": where,
        "description": spec.get("description"),
        "dataset": spec.get("dataset"),
        "matrix": spec.get("matrix"),
        "repeats": spec.get("repeats"),
        "judge": spec.get("judge"),
        "metrics": spec.get("metrics"),
        "rows": footprint,
        "cells": [c.to_dict() for c in cells],
    }
    if as_json:
        emit_json(info)
        return
    out.print(f"[bold]{exp.name}[/bold]  {exp.id}  ({exp.status})")
    if info["description"]:
        out.print(str(info["description"]))
    judge = spec.get("judge") or {}
    lines = [
        ("store", where),
        ("spec", exp.spec_path or "—"),
        (
            "created",
            _when(exp.created_at)
            + (f", finished {_when(exp.finished_at)}" if exp.finished_at else ""),
        ),
        ("dataset", str(spec.get("dataset"))),
        ("matrix", ", ".join(f"{k}: {v}" for k, v in (spec.get("matrix") or {}).items())),
        ("judge", f"{judge.get('model')} with {judge.get('prompt')}"),
        ("metrics", ", ".join(spec.get("metrics") or [])),
        ("rows", ", ".join(f"{v} {k}" for k, v in footprint.items())),
    ]
    for label, value in lines:
        out.print(f"  {label:<8} {value}")
    out.print(results_table(cells, wide=wide, width=out.width))
    out.print(
        f"outputs: codi-eval show {exp.name} --cell CELL [--item ITEM]  ·  "
        f"export: codi-eval experiments export {exp.name} --format csv"
    )


async def _watch(experiment: str, wide: bool, every: float) -> None:
    """Refresh the run counts and the cells table until every run has finished."""
    import asyncio

    from rich.console import Group
    from rich.live import Live
    from rich.text import Text

    from codi_eval.analysis.cells import cell_results
    from codi_eval.cli.run import results_table
    from codi_eval.store.experiments import activity, find_experiment

    async with open_store(must_exist=True) as store:
        exp = await find_experiment(store, experiment)

        async def frame() -> tuple[Any, Text, Any]:
            now = await activity(store, exp.id)
            c = now.counts
            line = Text(
                f"{exp.name}  {now.done}/{now.total} runs done "
                f"({c.get('succeeded', 0)} succeeded, {c.get('failed', 0)} failed, "
                f"{c.get('running', 0)} running, {c.get('pending', 0)} pending)  ·  "
                f"{now.workers} worker{'s' if now.workers != 1 else ''} active  ·  "
                f"{now.finished_last_minute / 60:.1f} runs/s over the last minute"
            )
            table = results_table(await cell_results(store, exp.id), wide=wide, width=out.width)
            return now, line, table

        now, line, table = await frame()
        if out.is_terminal:
            with Live(Group(line, table), console=out, auto_refresh=False) as live:
                while now.done < now.total:
                    await asyncio.sleep(every)
                    now, line, table = await frame()
                    live.update(Group(line, table), refresh=True)
        else:  # a log, not a redrawn screen: one line per change, the table at the end
            out.print(line)
            while now.done < now.total:
                await asyncio.sleep(every)
                previous = line.plain
                now, line, table = await frame()
                if line.plain != previous:
                    out.print(line)
            out.print(table)
    if now.counts.get("failed", 0):
        raise Failed(
            f"{now.counts['failed']} of {now.total} runs of {exp.name} failed; run them again "
            f"with: codi-eval run {exp.spec_path or 'SPEC'} --retry-failed"
        )


@experiments.command("delete")
@click.argument("experiment", metavar="EXP")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (what was deleted).")
@run_async
async def delete_command(experiment: str, yes: bool, as_json: bool) -> None:
    """Delete EXP: its cells, runs, traces, spans, evaluations and Opik outbox rows, in one
    transaction (all or nothing). Datasets, prompts and the model-answer cache stay."""
    from codi_eval.store.experiments import delete_experiment, experiment_footprint, find_experiment

    async with open_store(must_exist=True) as store:
        exp = await find_experiment(store, experiment)
        where = safe_url(store.url)
        if not yes:
            footprint = await experiment_footprint(store, exp)
            what = ", ".join(f"{v} {k}" for k, v in footprint.items())
            if not sys.stdin.isatty():
                raise InputError(
                    f"deleting experiment {exp.name} ({exp.id}; {what}) needs --yes "
                    "when there is no terminal to ask",
                    field="--yes",
                )
            if not click.confirm(
                f"Delete experiment {exp.name} ({exp.id}): {what}, from {where}?", err=True
            ):
                raise Failed("not deleted")
        counts = await delete_experiment(store, exp)
    if as_json:
        emit_json({"deleted": str(exp.id), "name": exp.name, "store": where, "rows": counts})
        return
    out.print(
        f"deleted experiment {exp.name} ({exp.id}) from {where}: "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
    )


@experiments.command("export")
@click.argument("experiment", metavar="EXP")
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True,
    help="csv and jsonl are text; parquet keeps column types.",
)  # fmt: skip
@click.option(
    "--out",
    "out_path",
    default=None,
    help="File to write ('-' for standard output, csv and jsonl only) "
    "[default: EXP-<id prefix>.<format> here].",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the path and row count).")
@run_async
async def export_command(experiment: str, fmt: str, out_path: str | None, as_json: bool) -> None:
    """Write one row per run of EXP: cell, factors, item, status, summary_quality and every
    metric, tokens, cost, latency, errors, trace id, the final summary and the judge's
    reason."""
    from codi_eval.analysis.export import export_frame, jsonl_lines
    from codi_eval.analysis.frames import runs_frame
    from codi_eval.store.experiments import find_experiment

    if out_path == "-" and fmt == "parquet":
        raise InputError("parquet is binary: give --out FILE", field="--out")
    async with open_store(must_exist=True) as store:
        exp = await find_experiment(store, experiment)
        frame = export_frame(await runs_frame(store, exp))
    if out_path == "-":
        if fmt == "csv":
            frame.to_csv(sys.stdout, index=False)
        else:
            for line in jsonl_lines(frame):
                click.echo(line)
        return
    target = Path(out_path or f"{exp.name}-{str(exp.id)[:8]}.{fmt}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "csv":
            frame.to_csv(target, index=False)
        elif fmt == "jsonl":
            with target.open("w", encoding="utf-8") as f:
                f.writelines(line + "\n" for line in jsonl_lines(frame))
        else:
            frame.to_parquet(target, index=False)
    except OSError as exc:
        raise Failed(f"cannot write {target}: {exc.strerror or exc}") from None
    if as_json:
        emit_json(
            {"experiment": str(exp.id), "path": str(target), "format": fmt, "rows": len(frame)}
        )
        return
    console.print(f"wrote {len(frame)} runs of {exp.name} to {target} ({fmt})")


commands = [experiments]
