"""``codi-eval show``: what the model wrote and why the judge scored it so.

``show EXP`` gives the cells with each one's best and worst item; ``--cell C`` a cell's
best and worst items in full; ``--cell C --item I`` one run: the code, every
Chain-of-Density iteration with the entities it added, the final summary, the judge's score
and reason, the metrics, tokens, cost, latency and the span timeline; ``--item I`` alone
that item in every cell. Everything comes from :mod:`codi_eval.analysis.outputs`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click
from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from codi_eval.cli import emit_json, open_store, out, run_async


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _cost(value: float | None) -> str:
    if value is None:
        return "unknown"
    return "$0" if value == 0 else f"${value:.4f}"


def _marked(text: str, entities: list[str]) -> Text:
    from codi_eval.analysis.outputs import mark_entities

    rendered = Text()
    for piece, is_entity in mark_entities(text, entities):
        rendered.append(piece, style="bold yellow" if is_entity else None)
    return rendered


def _indent(renderable: RenderableType) -> Padding:
    return Padding(renderable, (0, 0, 0, 4))


def render_run(run: Any) -> Group:
    """One run (an :class:`~codi_eval.analysis.outputs.RunOutput`) for the terminal."""
    parts: list[RenderableType] = [
        Text.assemble(
            ("run ", "bold"),
            (f"{run.cell} × {run.item_key}", "bold"),
            f"  repeat {run.repeat}  ({run.status})  run {run.run_id}  trace {run.trace_id}",
        ),
        Text(f"code ({run.language}):", style="bold"),
        _indent(Syntax(run.code, run.language or "text", line_numbers=False, word_wrap=True)),
    ]
    if run.instruction:
        parts.append(Text(f"instruction: {run.instruction}"))
    if run.status == "failed":
        parts.append(Text(f"failed: {run.error_class}: {run.error_message}", style="red"))
    for it in run.iterations:
        added = ", ".join(it.added_entities) or "nothing new"
        parts.append(
            Text(
                f"iteration {it.number} of {run.density_iterations}: added {added}  "
                f"({it.word_count} words, entity density {_num(it.entity_density)})",
                style="bold",
            )
        )
        parts.append(_indent(_marked(it.summary, it.added_entities)))
    if run.summary is not None:
        parts.append(Text("final summary:", style="bold"))
        parts.append(_indent(Text(run.summary)))
    judge = "—" if run.summary_quality is None else f"{run.summary_quality:.3f}"
    status = f" (judge {run.judge_status})" if run.judge_status not in (None, "ok") else ""
    parts.append(Text(f"summary_quality {judge}{status}", style="bold"))
    if run.judge_reason:
        parts.append(_indent(Text(run.judge_reason)))
    if run.metrics:
        metrics = Table("metric", "score", "reason", box=None, pad_edge=False)
        for m in run.metrics:
            metrics.add_row(m.name, _num(m.score), m.reason or "")
        parts.append(metrics)
    parts.append(
        Text(
            f"tokens {run.total_tokens if run.total_tokens is not None else '—'} "
            f"(prompt {run.prompt_tokens if run.prompt_tokens is not None else '—'}, "
            f"completion {run.completion_tokens if run.completion_tokens is not None else '—'})"
            f"  cost {_cost(run.cost)}  latency {_num(run.latency_ms, 0)} ms  "
            f"model calls {run.model_calls}, cache hits {run.cache_hits}"
        )
    )
    if run.spans:
        timeline = Table("span", "type", "start ms", "ms", "model", box=None, pad_edge=False)
        for s in run.spans:
            timeline.add_row(
                "  " * s.depth + s.name,
                s.type,
                f"{s.start_ms:.1f}",
                _num(s.duration_ms, 1),
                s.model or "",
            )
        parts.append(Text("spans:", style="bold"))
        parts.append(_indent(timeline))
    return Group(*parts)


def _brief_line(b: Any, label: str | None = None) -> Group:
    head = Text.assemble(
        (f"{_num(b.summary_quality)}  ", "bold"),
        (label + "  " if label else ""),
        (b.item_key, "bold"),
        f"  (repeat {b.repeat})" if b.repeat else "",
    )
    body: list[RenderableType] = [head]
    if b.status == "failed":
        body.append(_indent(Text(f"failed: {b.error_class}: {b.error_message}", style="red")))
    if b.summary:
        body.append(_indent(Text(b.summary)))
    if b.judge_reason:
        body.append(_indent(Text("judge: " + b.judge_reason, style="dim")))
    return Group(*body)


@click.command()
@click.argument("experiment", metavar="EXP")
@click.option("--cell", default=None, help="A cell key or its label in the results table (v2/d3).")
@click.option("--item", default=None, help="A dataset item key, or its unique ending (b64encode).")
@click.option("--repeat", type=click.IntRange(min=0), default=None, help="Only this repeat.")
@click.option(
    "-n", "count", type=click.IntRange(min=1), default=3, show_default=True,
    help="Best and worst items shown per cell.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def show(
    experiment: str,
    cell: str | None,
    item: str | None,
    repeat: int | None,
    count: int,
    as_json: bool,
) -> None:
    """Show what the model wrote in EXP (name, id or id prefix) and why the judge scored it.

    \b
    show EXP                      cells, each with its best and worst item
    show EXP --cell C             that cell's best and worst items, summaries and reasons
    show EXP --cell C --item I    one run: code, every CoD iteration with the entities it
                                  added, final summary, judge's score and reason, metrics,
                                  tokens, cost, latency, span timeline
    show EXP --item I             that item in every cell
    """
    from codi_eval.analysis.cells import cell_results
    from codi_eval.analysis.labels import cell_labels
    from codi_eval.analysis.outputs import cell_extremes, run_outputs
    from codi_eval.cli.run import results_table
    from codi_eval.store.experiments import find_experiment

    async with open_store(must_exist=True) as store:
        exp = await find_experiment(store, experiment)
        if item is not None or (cell is not None and repeat is not None):
            runs = await run_outputs(store, exp, cell, item, repeat=repeat)
            if as_json:
                emit_json({"experiment": exp.name, "runs": [asdict(r) for r in runs]})
                return
            if cell is not None:
                for run in runs:
                    out.print(render_run(run))
                    out.print()
                return
            out.print(Text(f"{runs[0].item_key} in every cell of {exp.name}", style="bold"))
            out.print(_indent(Syntax(runs[0].code, runs[0].language or "text", word_wrap=True)))
            labels = cell_labels(await cell_results(store, exp.id)).labels
            for run in runs:
                out.print(_brief_line(run, labels.get(run.cell, run.cell)))
            out.print(f"one run in full: codi-eval show {exp.name} --cell CELL --item {item}")
            return
        results = await cell_results(store, exp.id)
        labels = cell_labels(results).labels
        chosen = [cell] if cell is not None else [r.key for r in results]
        extremes = {}
        for key in chosen:
            best, worst = await cell_extremes(store, exp, key, n=count if cell else 1)
            extremes[best[0].cell if best else key] = (best, worst)
    if as_json:
        emit_json(
            {
                "experiment": exp.name,
                "cells": [r.to_dict() for r in results if cell is None or r.key in extremes],
                "best_and_worst": {
                    k: {"best": [b.to_dict() for b in v[0]], "worst": [w.to_dict() for w in v[1]]}
                    for k, v in extremes.items()
                },
            }
        )
        return
    if cell is None:
        out.print(results_table(results, width=out.width))
    for key, (best, worst) in extremes.items():
        out.print()
        out.print(Text(f"{labels.get(key, key)} = {key}", style="bold underline"))
        if not best:
            out.print(_indent(Text("no succeeded run with a score")))
        for b in best:
            out.print(_brief_line(b, "best "))
        for w in worst:
            out.print(_brief_line(w, "worst"))
    out.print()
    hint_cell = cell or (results[0].key if results else "CELL")
    out.print(f"one run in full: codi-eval show {exp.name} --cell {hint_cell} --item ITEM")


commands = [show]
