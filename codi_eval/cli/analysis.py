"""``codi-eval compare``, ``report`` and ``judge-check``: read an experiment, print or write results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    "--a", "cell_a", default=None, help="Baseline cell key, e.g. cod_iteration@1/d3/offline."
)
@click.option("--b", "cell_b", default=None, help="Candidate cell key (differences are b - a).")
@click.option(
    "--metric",
    default=None,
    help="Metric column: summary_quality, entity_density, rouge_l, ... or judge_score. "
    "[default: summary_quality]",
)
@click.option(
    "--pairwise/--no-pairwise",
    default=None,
    help="Ask a pairwise judge which of the two summaries of each item is better, in both "
    "orders, instead of comparing scores. [default: the experiment's judge mode]",
)
@click.option(
    "--judge",
    default=None,
    help="Pairwise judge model: offline, gemini-..., openai:<model>. "
    "[default: the experiment's judge]",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Pairwise: at most N items."
)
@click.option(
    "--concurrency", default=8, show_default=True, type=click.IntRange(min=1), help="Pairwise."
)
@click.option("--no-cache", is_flag=True, help="Pairwise: do not use the response cache.")
@click.option(
    "--seed",
    default=0,
    show_default=True,
    help="Seed of the Monte Carlo sign flips (above 20 items), power simulations and the "
    "Bradley-Terry bootstrap.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def compare(
    experiment: str,
    cell_a: str | None,
    cell_b: str | None,
    metric: str | None,
    pairwise: bool | None,
    judge: str | None,
    limit: int | None,
    concurrency: int,
    no_cache: bool,
    seed: int,
    as_json: bool,
) -> None:
    """Paired A/B comparison of two cells of EXPERIMENT (id, id prefix or name).

    Runs are paired by dataset item (repeats averaged per item). Prints one summary line and
    a table: n, means, difference with its 95% CI and p from one sign-flip test, wins/ties/losses,
    effect size and the minimum detectable effect. An unknown cell exits 2 and lists the
    experiment's cells.

    With --pairwise (or an experiment whose spec says `judge: {mode: pairwise}`) a pairwise
    judge sees both summaries of each item twice, the order swapped; a verdict that flips
    with the order is a tie. Reports b's win rate with its 95% CI and p (the same sign-flip
    test, on per-item verdicts), ties and the position-consistency rate. Without --a/--b
    every cell is compared with every other and ranked by a Bradley-Terry model with
    bootstrap intervals. Verdicts are stored as traces of type pairwise_judgement (and sent
    to Opik when configured); model calls are cached.
    """
    from codi_eval.analysis.frames import compare_cells, resolve_experiment
    from codi_eval.errors import InputError
    from codi_eval.settings import get_settings

    settings = get_settings()
    async with open_store(settings) as store:
        exp = await resolve_experiment(store, experiment)
        if pairwise is None:
            pairwise = ((exp.spec or {}).get("judge") or {}).get("mode") == "pairwise"
        if pairwise:
            if metric is not None:
                raise InputError("--metric compares scores; it does not go with --pairwise",
                                 field="--metric")  # fmt: skip
            if (cell_a is None) != (cell_b is None):
                raise InputError("give both --a and --b, or neither to compare every cell",
                                 field="--a" if cell_a is None else "--b")  # fmt: skip
            await _pairwise(
                store, settings, exp, cell_a, cell_b, judge, limit, concurrency, no_cache,
                seed, as_json,
            )  # fmt: skip
            return
        if judge is not None:
            raise InputError("--judge names the pairwise judge; add --pairwise", field="--judge")
        if cell_a is None or cell_b is None:
            raise InputError("--a and --b are required (two cell keys to compare)",
                             field="--a" if cell_a is None else "--b")  # fmt: skip
        metric = metric or "summary_quality"
        result = await compare_cells(store, exp, cell_a, cell_b, metric, seed=seed)
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


async def _pairwise(
    store: Any,
    settings: Any,
    exp: Any,
    cell_a: str | None,
    cell_b: str | None,
    judge: str | None,
    limit: int | None,
    concurrency: int,
    no_cache: bool,
    seed: int,
    as_json: bool,
) -> None:
    from codi_eval.analysis.pairwise import pairwise_compare

    exporting = settings.opik_configured
    report = await pairwise_compare(
        store,
        exp,
        cells=[cell_a, cell_b] if cell_a is not None and cell_b is not None else None,
        judge=judge,
        prompts_dir=settings.prompts_dir,
        limit=limit,
        concurrency=concurrency,
        use_cache=not no_cache,
        export=exporting,
        seed=seed,
    )
    if exporting:
        from codi_eval.cli.opik import sync_after_work

        await sync_after_work(store, settings, quiet=as_json)
    if as_json:
        emit_json(report.to_dict())
    else:
        judged = sum(c.pairs for c in report.comparisons)
        out.print(
            f"pairwise comparison {report.comparison_id} of {report.experiment_name}: judge "
            f"{report.judge} with {report.prompt}, {judged} pairs judged in both orders "
            "(stored as pairwise_judgement traces)"
        )
        for c in report.comparisons:
            out.print(c.summary())
        table = Table(
            "a", "b", "judged", "wins b/a", "ties", "flips", "consistency", "win rate b",
            "95% CI", "p", title="pairwise verdicts (ties include position flips)",
        )  # fmt: skip
        for c in report.comparisons:
            ci = f"{_num(c.ci_low, 2)} .. {_num(c.ci_high, 2)}" if c.ci_low is not None else "—"
            table.add_row(
                c.cell_a, c.cell_b, str(c.judged), f"{c.wins_b}/{c.wins_a}", str(c.ties),
                str(c.inconsistent), _num(c.position_consistency, 2), _num(c.win_rate, 2), ci,
                _p(c.p_value),
            )  # fmt: skip
        out.print(table)
        if report.ranking:
            ranks = Table("rank", "cell", "strength", "95% CI", title=report.ranking_method)
            for r in report.ranking:
                ci = (
                    f"{_num(r.ci_low, 2, True)} .. {_num(r.ci_high, 2, True)}"
                    if r.ci_low is not None
                    else "—"
                )
                strength = _num(r.strength, 2, signed=True) + (
                    " (prior-bound)" if r.prior_bound else ""
                )
                ranks.add_row(str(r.rank), r.cell, strength, ci)
            out.print(ranks)
            if any(r.prior_bound for r in report.ranking):
                out.print(
                    "prior-bound: the cell won (or lost) every decided comparison, so its "
                    "strength only says it is above (or below) the rest, not by how much"
                )
    if all(c.judged == 0 for c in report.comparisons):
        raise Failed("every pairwise judgement failed; see the pairwise_judgement traces")


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
