"""``codi-eval run``: execute an experiment spec and print a results table per cell."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time
from typing import Any

import click
from rich.console import RenderableType
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from codi_eval.analysis.cells import CellResult, cell_results
from codi_eval.cli import Failed, console, emit_json, out, run_async
from codi_eval.cli.opik import sync_after_work
from codi_eval.experiments.runner import Prepared, Runner, prepare
from codi_eval.experiments.runner import Progress as RunProgress
from codi_eval.experiments.spec import Spec, load_spec
from codi_eval.settings import get_settings
from codi_eval.store.engine import Store
from codi_eval.store.experiments import run_status
from codi_eval.store.faults import retrying


class _Stats(ProgressColumn):
    def __init__(self, state: RunProgress) -> None:
        super().__init__()
        self.state = state

    def render(self, task: Task) -> Text:
        s = self.state
        elapsed = max(time.monotonic() - s.started_at, 1e-6)
        tokens = s.stats.prompt_tokens + s.stats.completion_tokens
        # Unknown is not zero: calls to a model without a price make the cost "unknown".
        cost = f"${s.stats.cost:.4f}" + (" + unknown" if s.stats.unpriced_calls else "")
        return Text(
            f"failed {s.failed}  {s.stats.model_calls / elapsed:.1f} calls/s  "
            f"cache {s.stats.cache_hits}  tokens {tokens:,}  {cost}"
        )


def estimate(
    spec: Spec,
    prepared: Prepared,
    avg_code_tokens: int,
    remaining: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Model calls, tokens and cost a run would need (no model is called).

    Only the runs still to do are counted (``remaining``: runs per cell key not finished;
    every run of a new experiment). Prompt tokens are estimated as characters / 4 of each
    template plus the average code.
    """
    from codi_eval.models.base import Usage
    from codi_eval.models.prices import cost_for

    items = prepared.runs_total // max(1, len(prepared.cells) * spec.repeats)
    # A pairwise judge compares cells after the runs (compare --pairwise): no call per run.
    judge_calls = 0 if spec.judge.model.startswith("offline") or spec.judge.mode != "score" else 1
    cells = []
    total_calls = total_prompt = total_completion = 0
    total_cost: float | None = 0.0
    for cell in prepared.cells:
        runs = items * spec.repeats if remaining is None else remaining.get(cell.key, 0)
        calls = runs * (_new_iterations(spec, prepared, cell, remaining) + 1)
        template = len(prepared.prompts[cell.prompt].template) // 4
        prompt_tokens = calls * (template + avg_code_tokens + spec.word_budget)
        completion = calls * int(spec.word_budget * 1.6)
        cost = cost_for(cell.model, Usage(prompt_tokens, completion, prompt_tokens + completion))
        if judge_calls:
            j_prompt = runs * (
                len(prepared.prompts[spec.judge.prompt].template) // 4 + avg_code_tokens
            )
            j_completion = runs * 80
            j_cost = cost_for(
                spec.judge.model, Usage(j_prompt, j_completion, j_prompt + j_completion)
            )
            cost = None if cost is None or j_cost is None else cost + j_cost
            calls += runs
            prompt_tokens += j_prompt
            completion += j_completion
        cells.append(
            {
                "cell": cell.key,
                "runs": runs,
                "model_calls": calls,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion,
                "cost": cost,
            }
        )
        total_calls += calls
        total_prompt += prompt_tokens
        total_completion += completion
        total_cost = None if total_cost is None or cost is None else total_cost + cost
    return {
        "experiment": spec.name,
        "dataset": str(spec.dataset_path),
        "items": items,
        "cells": cells,
        "runs": sum(c["runs"] for c in cells),
        "runs_total": prepared.runs_total,
        "model_calls": total_calls,
        "prompt_tokens": total_prompt,
        "completion_tokens": total_completion,
        "estimated_cost": total_cost,
        "note": "offline calls cost nothing and are not counted as remote calls"
        if all(c.model.startswith("offline") for c in prepared.cells)
        else None,
    }


def _new_iterations(
    spec: Spec, prepared: Prepared, cell: Any, remaining: dict[str, int] | None
) -> int:
    """Iterations a run of ``cell`` pays for: with shared calls, a deeper cell reuses the
    iterations of the deepest shallower cell of its prompt and model still to run."""
    if not spec.run.share_calls:
        return int(cell.density_iterations)
    shallower = [
        c.density_iterations
        for c in prepared.cells
        if c.prompt == cell.prompt
        and c.model == cell.model
        and c.density_iterations < cell.density_iterations
        and (remaining is None or remaining.get(c.key, 0) > 0)
    ]
    return int(cell.density_iterations - max(shallower, default=0))


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _cost(value: float | None) -> str:
    # Unknown is not zero: a model without a price in configs/prices.yaml costs "unknown".
    if value is None:
        return "unknown"
    return "0" if value == 0 else f"{value:.4f}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


#: Short headers for the metrics the judges and configs/ define (the legend spells them out).
METRIC_HEADERS = {
    "entity_density": "density",
    "identifier_coverage": "id_cover",
    "compression": "compress",
    "summary_quality": "quality",
}
#: The width the default table must fit (a terminal narrower than this is fitted instead).
TABLE_WIDTH = 100


def _quality(r: CellResult) -> str:
    if r.judge_mean is None:
        return "—"
    if r.judge_ci_low is None or r.judge_ci_high is None:
        return f"{r.judge_mean:.3f}"
    return f"{r.judge_mean:.3f} ±{(r.judge_ci_high - r.judge_ci_low) / 2:.3f}"


def _failed(r: CellResult, wide: bool) -> str:
    text = str(r.failed)
    if r.pending:
        text += f" (+{r.pending} pending)"
    if wide and r.errors:
        text += " " + ", ".join(f"{k} {v}" for k, v in r.errors.items())
    return text


def _columns(results: list[CellResult], wide: bool) -> list[tuple[str, str, list[str]]]:
    """(header, justify, values) per column, in the order shown; the optional ones last."""
    from codi_eval.analysis.labels import cell_labels

    labels = cell_labels(results).labels if not wide else {r.key: r.key for r in results}
    metric_names = sorted({m for r in results for m in r.metrics})
    columns: list[tuple[str, str, list[str]]] = [
        ("cell", "left", [labels[r.key] for r in results]),
        ("n", "right", [str(r.succeeded) for r in results]),
        (
            "summary_quality (95% CI)" if wide else "quality ±95%",
            "right",
            [_quality(r) for r in results],
        ),
    ]
    for m in metric_names:
        header = m if wide else METRIC_HEADERS.get(m, m)
        columns.append((header, "right", [_fmt(r.metrics.get(m)) for r in results]))
    columns += [
        ("failed", "right", [_failed(r, wide) for r in results]),
        ("tokens", "right", [f"{r.total_tokens:,}" for r in results]),
        ("cost $", "right", [_cost(r.cost) for r in results]),
        ("p50 ms", "right", [_ms(r.latency_p50_ms) for r in results]),
        ("p95 ms", "right", [_ms(r.latency_p95_ms) for r in results]),
    ]
    return columns


# Dropped first when the table does not fit (p95, then the metrics from the last).
_OPTIONAL = ("p95 ms",)


def _build_table(columns: list[tuple[str, str, list[str]]], rows: int) -> Table:
    from rich import box

    table = Table(
        title="results per cell", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True
    )
    for header, justify, _ in columns:
        table.add_column(header, justify="left" if justify == "left" else "right", no_wrap=True)
    for i in range(rows):
        table.add_row(*(values[i] for _, _, values in columns))
    return table


def _table_width(table: Table) -> int:
    """The width the table needs to show every cell in full (measured by rich itself)."""
    from rich.console import Console
    from rich.measure import Measurement

    console = Console(width=1000, file=io.StringIO())
    return Measurement.get(console, console.options, table).maximum


def results_table(
    results: list[CellResult], *, wide: bool = False, width: int | None = None
) -> RenderableType:
    """The end-of-run table: one row per cell, with a legend under it.

    By default it fits ``width`` (at most :data:`TABLE_WIDTH`) columns: cells get short
    labels from the factors that vary (``v2/d3``), metric headers are abbreviated, and
    columns that still do not fit are left out (the legend says which; ``--wide`` shows
    all, with full keys). The judge's score is ``summary_quality`` (mean ± half the 95%
    Student-t interval); cost is "unknown" for a model without a price, never 0.
    """
    from rich.console import Group

    from codi_eval.analysis.labels import cell_labels

    columns = _columns(results, wide)
    table = _build_table(columns, len(results))
    hidden: list[str] = []
    limit = min(width or TABLE_WIDTH, TABLE_WIDTH)
    if not wide:
        metric_headers = [
            METRIC_HEADERS.get(m, m) for m in sorted({m for r in results for m in r.metrics})
        ]
        for header in (*_OPTIONAL, *reversed(metric_headers)):
            if _table_width(table) <= limit:
                break
            columns = [c for c in columns if c[0] != header]
            hidden.append(header)
            table = _build_table(columns, len(results))
    notes: list[str] = []
    if not wide:
        labels = cell_labels(results)
        notes += labels.legend()
        used = [
            f"{METRIC_HEADERS[m]} = {m}"
            for m in sorted({m for r in results for m in r.metrics})
            if m in METRIC_HEADERS and METRIC_HEADERS[m] not in hidden
        ]
        notes.append(
            "quality = summary_quality, the judge's score (mean ±half its 95% CI)"
            + ("; " + ", ".join(used) if used else "")
        )
        if hidden:
            notes.append(
                f"not shown to fit {limit} columns: {', '.join(hidden)} (--wide shows all)"
            )
    errors = {k: v for r in results for k, v in r.errors.items()}
    if errors and not wide:
        notes.append(
            "failures by error: " + ", ".join(f"{k} {v}" for k, v in sorted(errors.items()))
        )
    if any(r.cost is None for r in results):
        notes.append("cost unknown: a model has no price in configs/prices.yaml")
    return Group(table, *(Text(n, style="dim") for n in notes))


@click.command()
@click.argument("spec_file", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the runs still to do, calls, tokens and cost; call no model.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=None,
    help="Runs in flight [default: the spec's run.concurrency].",
)
@click.option(
    "--new", is_flag=True, help="Start a new experiment even if one with this name exists."
)
@click.option("--no-cache", is_flag=True, help="Bypass the LLM response cache.")
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Run the failed runs again (each attempt is kept; the latest counts).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes on this machine working on the experiment (this one plus N-1 workers).",
)
@click.option("--wide", is_flag=True, help="Every column with full cell keys (no 100-column fit).")
@run_async
async def run(
    spec_file: str,
    dry_run: bool,
    as_json: bool,
    concurrency: int | None,
    new: bool,
    no_cache: bool,
    retry_failed: bool,
    workers: int,
    wide: bool = False,
) -> None:
    """Run the experiment in SPEC (YAML): every cell × item × repeat, judged and traced.

    Running the same spec again resumes it: finished runs are kept, the rest are run. Any
    number of `codi-eval run` processes (on any machines sharing a PostgreSQL store) can
    work on one experiment at once: each run is done once.

    \b
    Exit status: 0 when every run succeeded; 1 when any failed or some are not done (the
    summary says why and how to retry); 2 for a bad spec, dataset or flag.
    """
    settings = get_settings()
    spec = load_spec(spec_file)
    store = await Store.open(settings.database_url)
    try:
        prepared = await prepare(
            store, spec, settings, new=new, create=not dry_run, retry_failed=retry_failed
        )
        if dry_run:
            remaining = (
                None if prepared.created else await _remaining(store, prepared, retry_failed)
            )
            plan = estimate(spec, prepared, await _average_code_tokens(store, prepared), remaining)
            if as_json:
                emit_json({"dry_run": True, **plan})
            else:
                _print_plan(plan)
            return
        exporting = _opik_export_enabled(spec, settings)
        started = time.monotonic()
        pending = prepared.runs_to_do
        if not as_json:
            verb = "created" if prepared.created else "resuming"
            console.print(
                f"{verb} experiment {spec.name} ({prepared.experiment.id}): "
                f"{len(prepared.cells)} cells, {prepared.runs_total} runs, {pending} to run"
            )
        runner = Runner(
            store,
            spec,
            prepared,
            settings=settings,
            concurrency=concurrency,
            use_cache=False if no_cache else None,
            export_to_opik=exporting,
            lease_s=settings.lease_s,
            outage_s=settings.store_outage_s,
        )
        helpers = (
            _start_workers(prepared.experiment.id, workers - 1, concurrency) if pending else []
        )
        if not pending:
            state = runner.progress
        elif as_json:
            state = await runner.run()
        else:
            bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeRemainingColumn(),
                _Stats(runner.progress),
                console=console,
            )
            task_id = bar.add_task("runs", total=pending)
            runner.on_progress = lambda p: bar.update(task_id, completed=p.done)
            with bar:
                state = await runner.run()
        for helper in helpers:  # they stop when no run is left
            await asyncio.to_thread(helper.wait)
        results = await retrying(
            lambda: cell_results(store, prepared.experiment.id),
            what="reading the results",
            url=store.url,
            outage_s=settings.store_outage_s,
        )
        counts, failures = await retrying(
            lambda: run_status(store, prepared.experiment.id),
            what="reading the results",
            url=store.url,
            outage_s=settings.store_outage_s,
        )
        if exporting:
            await sync_after_work(store, settings, quiet=as_json)
    finally:
        await store.close()
    succeeded = counts.get("succeeded", 0)
    failed = counts.get("failed", 0)
    not_done = prepared.runs_total - succeeded - failed
    summary = {
        "experiment_id": str(prepared.experiment.id),
        "name": spec.name,
        "resumed": not prepared.created,
        "runs_total": prepared.runs_total,
        "runs_succeeded": succeeded,
        "runs_failed": failed,
        "runs_not_done": not_done,
        "runs_executed_now": state.done,
        "model_calls": state.stats.model_calls,
        "cache_hits": state.stats.cache_hits,
        "retries": state.stats.retries,
        # Cache lookups or writes skipped because the store did not answer in time.
        "cache_faults": state.stats.cache_faults,
        "errors": dict(state.stats.errors),
        "failures": [
            {"error_class": f.error_class, "runs": f.runs, "first_message": f.first_message}
            for f in failures
        ],
        "stopped_models": [
            {"model": m.model, "error_class": m.kind, "message": m.message, "fix": _fix(m)}
            for m in runner.stopped.values()
        ],
        "duration_s": round(time.monotonic() - started, 3),
        "cells": [r.to_dict() for r in results],
    }
    if as_json:
        emit_json(summary)
    else:
        out.print(results_table(results, wide=wide, width=out.width))
        out.print(
            f"experiment {prepared.experiment.id}  ({succeeded} succeeded, {failed} failed"
            + (f", {not_done} not done" if not_done else "")
            + f"; {state.stats.model_calls} model calls, {state.stats.cache_hits} cache hits"
            + (
                f", {state.stats.cache_faults} cache lookups skipped: the store did not answer"
                if state.stats.cache_faults
                else ""
            )
            + ")"
        )
    if failed or not_done:
        raise Failed(_failure_text(spec_file, summary))


def _start_workers(
    experiment_id: Any, n: int, concurrency: int | None
) -> list[subprocess.Popen[bytes]]:
    """``n`` `codi-eval worker` processes on this experiment, beside this one."""
    args = [sys.executable, "-m", "codi_eval", "worker", "--experiment", str(experiment_id)]
    if concurrency is not None:
        args += ["--concurrency", str(concurrency)]
    return [
        subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(n)
    ]


def _fix(stopped: Any) -> str:
    from codi_eval.models.registry import parse_model_name

    return parse_model_name(stopped.model).fix_hint(stopped.kind)


def _failure_text(spec_file: str, summary: dict[str, Any]) -> str:
    """Why the experiment is not all green, and the command that carries on."""
    lines = [
        f"{summary['runs_failed']} of {summary['runs_total']} runs failed"
        + (f" and {summary['runs_not_done']} are not done" if summary["runs_not_done"] else "")
    ]
    for f in summary["failures"]:
        lines.append(f"  {f['error_class']} ({f['runs']} runs): {f['first_message'][:300]}")
    for m in summary["stopped_models"]:
        lines.append(
            f"  stopped {m['model']} after its first calls failed with {m['error_class']} "
            f"({m['message'][:200]}): {m['fix']}; its other runs were not started"
        )
    again = f"codi-eval run {spec_file}"
    if summary["runs_failed"]:
        lines.append(f"retry the failed runs with: {again} --retry-failed")
    if summary["runs_not_done"]:
        lines.append(f"run the rest with: {again}")
    return "\n".join(lines)


async def _remaining(store: Store, prepared: Prepared, retry_failed: bool) -> dict[str, int]:
    """Runs per cell key not finished yet (failed ones too, with --retry-failed)."""
    from sqlalchemy import func, select

    from codi_eval.store.models import Run

    todo = ["pending", "running", *(["failed"] if retry_failed else [])]
    keys = {c.id: c.key for c in prepared.cells}
    async with store.session() as session:
        rows = (
            await session.execute(
                select(Run.cell_id, func.count())
                .where(Run.experiment_id == prepared.experiment.id, Run.status.in_(todo))
                .group_by(Run.cell_id)
            )
        ).all()
    return {keys[cell_id]: int(n) for cell_id, n in rows}


async def _average_code_tokens(store: Store, prepared: Prepared) -> int:
    from sqlalchemy import func, select

    from codi_eval.store.models import DatasetItem

    async with store.session() as session:
        avg_chars = await session.scalar(
            select(func.avg(func.length(DatasetItem.code))).where(
                DatasetItem.dataset_id == prepared.dataset.id
            )
        )
    return int((avg_chars or 1000) / 4)


def _print_plan(plan: dict[str, Any]) -> None:
    table = Table(title=f"dry run: {plan['experiment']} ({plan['items']} items)")
    for col in ("cell", "runs", "model calls", "prompt tokens", "completion tokens", "est. cost $"):
        table.add_column(col, justify="left" if col == "cell" else "right")
    for c in plan["cells"]:
        table.add_row(
            c["cell"],
            str(c["runs"]),
            str(c["model_calls"]),
            f"{c['prompt_tokens']:,}",
            f"{c['completion_tokens']:,}",
            "unknown" if c["cost"] is None else f"{c['cost']:.4f}",
        )
    out.print(table)
    cost = plan["estimated_cost"]
    out.print(
        f"total: {plan['runs']} runs, {plan['model_calls']} model calls, "
        f"~{plan['prompt_tokens'] + plan['completion_tokens']:,} tokens, estimated cost "
        + (
            "unknown (a model has no price in configs/prices.yaml)"
            if cost is None
            else f"${cost:.4f}"
        )
    )


def _opik_export_enabled(spec: Spec, settings: Any) -> bool:
    if spec.opik.enabled is False:
        return False
    if spec.opik.enabled is True:
        return True
    return bool(settings.opik_configured)


commands = [run]
