"""``codi-eval compare``, ``report`` and ``judge-check``: read an experiment, print or write results."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from codi_eval.cli import Failed, emit_json, open_store, out, run_async


def _num(value: float | None, digits: int = 3, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


@click.command()
@click.argument("experiment")
@click.option(
    "--a", "cell_a", required=True, help="Baseline cell key, e.g. cod_iteration@1/d3/offline."
)
@click.option("--b", "cell_b", required=True, help="Candidate cell key (differences are b - a).")
@click.option(
    "--metric",
    default="summary_quality",
    show_default=True,
    help="Metric column: summary_quality, entity_density, rouge_l, ... or judge_score.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    help="Seed of the Monte Carlo sign flips (above 20 items) and power simulations.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def compare(
    experiment: str, cell_a: str, cell_b: str, metric: str, seed: int, as_json: bool
) -> None:
    """Paired A/B comparison of two cells of EXPERIMENT (id, id prefix or name).

    Runs are paired by dataset item (repeats averaged per item). Prints one summary line and
    a table: n, means, difference with its 95% CI and p from one sign-flip test, wins/ties/losses,
    effect size and the minimum detectable effect. An unknown cell exits 2 and lists the
    experiment's cells.
    """
    from codi_eval.analysis.frames import compare_cells

    async with open_store() as store:
        result = await compare_cells(store, experiment, cell_a, cell_b, metric, seed=seed)
    if as_json:
        emit_json(result.to_dict())
        return
    out.print(result.summary())
    table = Table(
        "n",
        "mean a",
        "mean b",
        "diff (b-a)",
        "95% CI",
        "p",
        "wins/ties/losses",
        "effect d",
        "MDE",
        title=f"{metric}: {cell_b} vs {cell_a}",
    )
    ci = (
        f"{_num(result.ci_low, signed=True)} .. {_num(result.ci_high, signed=True)}"
        if result.ci_low is not None
        else "—"
    )
    table.add_row(
        str(result.n),
        _num(result.mean_a),
        _num(result.mean_b),
        _num(result.mean_diff, signed=True),
        ci,
        _p(result.p_value),
        f"{result.wins}/{result.ties}/{result.losses}",
        _num(result.effect_size, 2),
        _num(result.mde),
    )
    out.print(table)
    if result.only_a or result.only_b or result.missing_a or result.missing_b:
        out.print(
            f"unpaired items: only in a {result.only_a}, only in b {result.only_b}; "
            f"missing values: a {result.missing_a}, b {result.missing_b}"
        )


@click.command()
@click.argument("experiment")
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="HTML file to write.",
)
@click.option(
    "--metric", default="summary_quality", show_default=True, help="Metric of the A/B section."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the path written).")
@run_async
async def report(experiment: str, out_path: Path, metric: str, as_json: bool) -> None:
    """Write one self-contained HTML report of EXPERIMENT (readable offline).

    Cells table, density curves, A/B differences (a forest plot of every pair of cells that
    differ in one factor) and score distributions; figures are inlined PNGs.
    """
    from codi_eval.analysis.report import write_report

    async with open_store() as store:
        try:
            path = await write_report(store, experiment, out_path, metric)
        except OSError as exc:
            raise Failed(f"cannot write {out_path}: {exc}") from exc
    if as_json:
        emit_json({"experiment": experiment, "path": str(path), "bytes": path.stat().st_size})
        return
    out.print(f"wrote {path} ({path.stat().st_size:,} bytes)")


@click.command("judge-check")
@click.argument("experiment")
@click.option(
    "--repeats",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="Re-judgements per summary and judge.",
)
@click.option(
    "--judge",
    "judges",
    multiple=True,
    help="Judge model (repeatable): offline, gemini-..., openai:<model>. "
    "[default: the experiment's judge]",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Re-judge at most N summaries (item by item).",
)
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--no-cache", is_flag=True, help="Do not use the response cache for LLM judges.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def judge_check(
    experiment: str,
    repeats: int,
    judges: tuple[str, ...],
    limit: int | None,
    concurrency: int,
    no_cache: bool,
    as_json: bool,
) -> None:
    """Re-judge EXPERIMENT's stored summaries and report judge reliability.

    Each re-judgement is stored as an evaluation on the run's trace (meta_data
    judge_check=true). Reports test-retest ICC(2,1) and Krippendorff's alpha, per-summary
    score spread, agreement between judges (Spearman, ICC) and Spearman against each
    offline metric. A deterministic judge is reported as perfectly repeatable.
    """
    from codi_eval.analysis.reliability import judge_check as check

    async with open_store() as store:
        result = await check(
            store,
            experiment,
            judges=list(judges) or None,
            repeats=repeats,
            limit=limit,
            concurrency=concurrency,
            use_cache=not no_cache,
        )
    if as_json:
        emit_json(result.to_dict())
        return
    for line in result.lines():
        out.print(line)
    table = Table(
        "judge",
        "summaries",
        "judgements",
        "failed",
        "mean",
        "ICC(2,1)",
        "alpha",
        "mean SD",
        "max SD",
        title="test-retest",
    )
    for j in result.judges:
        perfect = "perfect" if j.perfect_retest else None
        table.add_row(
            j.judge,
            str(j.n_summaries),
            str(j.judgements),
            str(j.failed),
            _num(j.mean_score),
            perfect or _num(j.icc),
            perfect or _num(j.alpha),
            _num(j.mean_sd),
            _num(j.max_sd),
        )
    out.print(table)
    metrics = list(result.judges[0].metric_correlations) if result.judges else []
    if metrics:
        corr = Table(
            "judge", *metrics, title="Spearman: judge (mean over repeats) vs stored scores"
        )
        for j in result.judges:
            corr.add_row(
                j.judge, *(_num(j.metric_correlations.get(m), signed=True) for m in metrics)
            )
        out.print(corr)
    if any(j.failed for j in result.judges) and all(
        j.failed == j.judgements for j in result.judges
    ):
        raise Failed("every re-judgement failed; see the evaluations' reasons")


commands = [compare, report, judge_check]
