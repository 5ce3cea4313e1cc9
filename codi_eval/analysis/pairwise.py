"""Pairwise A/B judgements of an experiment's cells: win rate with its interval, ties,
position consistency, the paired sign-flip test, and a Bradley-Terry ranking of more cells.

For each pair of cells (a, b) and each item × repeat both cells summarised, the pairwise
judge sees the code and both summaries twice, once with each shown first
(:mod:`codi_eval.judging.pairwise`); a verdict that changes with the order is a tie and
counts as position-inconsistent.

Statistics, per pair of cells:

* ``win_rate`` of b: the mean over items of b's share of the item's verdicts (a win 1, a tie
  1/2, a loss 0; repeats averaged), i.e. (1 + mean verdict) / 2 with verdicts +1 b better,
  0 tie, -1 a better.
* ``p_value``: :func:`~codi_eval.analysis.stats.paired_comparison`, the same paired
  sign-flip test ``compare`` runs on scores, on the per-item verdicts against 0 (its full
  result is in ``test``).
* ``ci_low``/``ci_high``: the Wilson score interval of the win rate over items (an item's
  share counted as its fraction of a success; with ties it is conservative). Not the
  sign-flip test's inverted interval: on verdicts that all agree (20 of 20 items for b) that
  one collapses to the single point 1.0, which no one should read as certainty.
* ``position_consistency``: the share of judged pairs whose two orders agreed.

With more than two cells every pair is compared and the cells are ranked by a
Bradley-Terry model (P(i beats j) = 1 / (1 + exp(s_j - s_i)), a tie counting half a win
each way), fitted by maximum likelihood with a weak Gaussian prior (sd 10 on each
strength, so a cell that wins everything stays finite; such a cell is marked
``prior_bound``, its number says "above the rest", not how far). Intervals are percentile
bootstrap intervals over items: all of an item's judgements are resampled together,
because one item's summaries are compared with each other and are not independent.

Where the judgements live: one trace per compared pair of runs (``trace_type``
``pairwise_judgement``, belonging to no run), with a judge span per order (its model call's
usage and cost) and two evaluations, ``pairwise_preference`` (1.0 b better, 0.5 tie, 0.0 a
better) and ``position_consistency`` (1.0 or 0.0), whose metadata name both runs and their
traces, the cells, the item, each order's verdict and the comparison id. A trace of its own
because the judgement belongs to neither run: on a run's trace it would count as one of the
run's own scores, and in Opik (feedback scores are keyed by name per trace) two comparisons
of one run would overwrite each other. It reaches Opik through the outbox like every trace.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import minimize  # type: ignore[import-untyped]
from scipy.stats import norm  # type: ignore[import-untyped]
from sqlalchemy import select

from codi_eval.analysis.frames import ExperimentRef, resolve_experiment
from codi_eval.analysis.reliability import judge_models
from codi_eval.analysis.stats import PairedComparison, paired_comparison
from codi_eval.code_facts import canonical_language
from codi_eval.errors import InputError
from codi_eval.ids import uuid7
from codi_eval.judging import (
    DEFAULT_PAIRWISE_PROMPT,
    OrderVerdict,
    PairwiseJudge,
    PairwiseJudgement,
    build_pairwise_judge,
    combine_orders,
    judge_prompt,
)
from codi_eval.models.base import ModelError
from codi_eval.store.engine import Store
from codi_eval.store.models import DatasetItem, Experiment, ExperimentCell, Run
from codi_eval.summarize import effective_instruction
from codi_eval.tracing import StoreSink, Tracer

__all__ = [
    "PAIRWISE_TRACE_TYPE",
    "CellRank",
    "PairwiseComparison",
    "PairwiseReport",
    "bradley_terry",
    "pairwise_compare",
    "summarise_pairs",
    "wilson_interval",
]

PAIRWISE_TRACE_TYPE = "pairwise_judgement"
PREFERENCE_METRIC = "pairwise_preference"
CONSISTENCY_METRIC = "position_consistency"
#: Cache repeat index of pairwise calls (far from experiments' and judge-check's).
PAIRWISE_REPEAT = 2_000_000
_PRIOR_SD = 10.0


@dataclass
class PairwiseComparison:
    """Cell ``b`` against cell ``a`` by a pairwise judge (see the module docstring)."""

    cell_a: str
    cell_b: str
    pairs: int  # item × repeat pairs sent to the judge
    judged: int  # both orders read
    failed: int
    wins_a: int
    wins_b: int
    ties: int  # every tie, the inconsistent ones included
    inconsistent: int  # ties because the verdict flipped with the order
    position_consistency: float | None
    win_rate: float | None  # b's, ties counting half
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n_items: int
    test: dict[str, Any] = field(default_factory=dict)  # the PairedComparison, as a dict

    def summary(self) -> str:
        """One line a reader can act on."""
        if not self.judged or self.win_rate is None:
            return (
                f"no pairwise verdicts for {self.cell_b} vs {self.cell_a} "
                f"({self.failed} of {self.pairs} failed)"
            )
        ci = (
            f"95% CI {self.ci_low:.2f}..{self.ci_high:.2f}"
            if self.ci_low is not None and self.ci_high is not None
            else "no 95% CI"
        )
        p = "p = n/a" if self.p_value is None else f"p = {self.p_value:.3g}"
        consistency = (
            "n/a" if self.position_consistency is None else f"{self.position_consistency:.0%}"
        )
        return (
            f"{self.cell_b} vs {self.cell_a}: win rate {self.win_rate:.2f} ({ci}, {p}, "
            f"n = {self.n_items} items); wins b/a {self.wins_b}/{self.wins_a}, ties "
            f"{self.ties} ({self.inconsistent} from position flips); position consistency "
            f"{consistency} of {self.judged}" + (f"; {self.failed} failed" if self.failed else "")
        )


@dataclass
class CellRank:
    """One cell's Bradley-Terry strength (log-odds scale, centred on 0) and its interval."""

    cell: str
    rank: int
    strength: float
    ci_low: float | None
    ci_high: float | None
    #: It won every decided comparison or lost every one: the likelihood alone would push
    #: its strength to infinity, so the number (and its interval) is set by the prior.
    prior_bound: bool = False


@dataclass
class PairwiseReport:
    """What :func:`pairwise_compare` found; ``verdicts`` holds one row per judged pair."""

    experiment_id: str
    experiment_name: str
    comparison_id: str
    judge: str
    prompt: str
    comparisons: list[PairwiseComparison]
    ranking: list[CellRank] | None
    ranking_method: str | None
    verdicts: pd.DataFrame = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields (without the per-pair ``verdicts`` table)."""
        out = asdict(self)
        out.pop("verdicts")
        for comparison, data in zip(self.comparisons, out["comparisons"], strict=True):
            data["summary"] = comparison.summary()
        return out


# ---------------------------------------------------------------------------- statistics


def _mapped(value: float | None) -> float | None:
    return None if value is None else min(1.0, max(0.0, (1.0 + value) / 2.0))


def wilson_interval(successes: float, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """The Wilson score interval for a proportion ``successes / n`` at level ``1 - alpha``."""
    if n <= 0:
        raise ValueError("n must be positive")
    z = float(norm.ppf(1 - alpha / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summarise_pairs(
    verdicts: pd.DataFrame, cell_a: str, cell_b: str, *, seed: int = 0, alpha: float = 0.05
) -> PairwiseComparison:
    """The statistics of one pair of cells from its verdict rows.

    ``verdicts`` has one row per judged pair with ``cell_a``, ``cell_b``, ``item_key``,
    ``status`` ("ok"/"failed"), ``sign`` (+1 b better, 0 tie, -1 a better) and
    ``consistent`` (bool).
    """
    rows = verdicts[(verdicts["cell_a"] == cell_a) & (verdicts["cell_b"] == cell_b)]
    ok = rows[rows["status"] == "ok"]
    signs = ok["sign"].astype(float)
    consistent = int(ok["consistent"].astype(bool).sum())
    test: PairedComparison | None = None
    interval: tuple[float, float] | None = None
    if len(ok):
        test = paired_comparison(
            pd.DataFrame({"item": ok["item_key"], "v": 0.0}),
            pd.DataFrame({"item": ok["item_key"], "v": signs}),
            item_col="item",
            value_col="v",
            metric="pairwise verdict (+1 b, 0 tie, -1 a)",
            label_a=cell_a,
            label_b=cell_b,
            alpha=alpha,
            seed=seed,
        )
        shares = ((signs + 1.0) / 2.0).groupby(ok["item_key"]).mean()
        interval = wilson_interval(float(shares.sum()), len(shares), alpha)
    return PairwiseComparison(
        cell_a=cell_a,
        cell_b=cell_b,
        pairs=len(rows),
        judged=len(ok),
        failed=len(rows) - len(ok),
        wins_a=int((signs < 0).sum()),
        wins_b=int((signs > 0).sum()),
        ties=int((signs == 0).sum()),
        inconsistent=len(ok) - consistent,
        position_consistency=consistent / len(ok) if len(ok) else None,
        win_rate=_mapped(test.mean_diff) if test else None,
        ci_low=interval[0] if interval else None,
        ci_high=interval[1] if interval else None,
        p_value=test.p_value if test else None,
        n_items=test.n if test else 0,
        test=test.to_dict() if test else {},
    )


def _bt_fit(wins: np.ndarray) -> np.ndarray:
    """Strengths maximising sum w_ij log sigma(s_i - s_j) - |s|^2 / (2 prior^2), centred."""
    k = wins.shape[0]

    def objective(s: np.ndarray) -> tuple[float, np.ndarray]:
        diff = s[:, None] - s[None, :]
        # log sigma(x) = -log(1 + e^-x), computed stably; p = sigma(x).
        log_p = -np.logaddexp(0.0, -diff)
        p = np.exp(log_p)
        value = -float(np.sum(wins * log_p)) + float(s @ s) / (2 * _PRIOR_SD**2)
        grad_matrix = wins * (1.0 - p)
        grad = -(grad_matrix.sum(axis=1) - grad_matrix.sum(axis=0)) + s / _PRIOR_SD**2
        return value, grad

    result = minimize(objective, np.zeros(k), jac=True, method="L-BFGS-B")
    strengths = np.asarray(result.x, dtype=np.float64)
    return strengths - strengths.mean()


def _wins_matrix(rows: pd.DataFrame, index: dict[str, int]) -> np.ndarray:
    wins = np.zeros((len(index), len(index)))
    for a, b, sign in zip(rows["cell_a"], rows["cell_b"], rows["sign"], strict=True):
        i, j = index[a], index[b]
        if sign > 0:
            wins[j, i] += 1.0
        elif sign < 0:
            wins[i, j] += 1.0
        else:
            wins[i, j] += 0.5
            wins[j, i] += 0.5
    return wins


def bradley_terry(
    verdicts: pd.DataFrame,
    cells: Sequence[str],
    *,
    n_boot: int = 500,
    seed: int = 0,
    alpha: float = 0.05,
) -> list[CellRank]:
    """Cells ranked by Bradley-Terry strength, with bootstrap-over-items intervals.

    ``verdicts`` is as for :func:`summarise_pairs` (failed rows are left out). Ties count
    half a win each way. Deterministic for a given ``seed``.
    """
    ok = verdicts[verdicts["status"] == "ok"]
    index = {cell: i for i, cell in enumerate(cells)}
    strengths = _bt_fit(_wins_matrix(ok, index))
    lows: list[float | None] = [None] * len(cells)
    highs: list[float | None] = [None] * len(cells)
    items = list(dict.fromkeys(ok["item_key"].tolist()))
    if len(items) >= 2 and n_boot > 0:
        rng = np.random.default_rng(seed)
        by_item = {item: group for item, group in ok.groupby("item_key", sort=False)}
        draws = np.empty((n_boot, len(cells)))
        for b in range(n_boot):
            chosen = rng.integers(0, len(items), len(items))
            sample = pd.concat([by_item[items[c]] for c in chosen], ignore_index=True)
            draws[b] = _bt_fit(_wins_matrix(sample, index))
        low_q, high_q = np.quantile(draws, [alpha / 2, 1 - alpha / 2], axis=0)
        lows = [float(x) for x in low_q]
        highs = [float(x) for x in high_q]
    decided = _wins_matrix(ok[ok["sign"] != 0], index)
    won, lost = decided.sum(axis=1), decided.sum(axis=0)
    bound = [bool((won[i] == 0) != (lost[i] == 0)) for i in range(len(cells))]
    order = sorted(range(len(cells)), key=lambda i: -strengths[i])
    return [
        CellRank(cells[i], rank, float(strengths[i]), lows[i], highs[i], bound[i])
        for rank, i in enumerate(order, start=1)
    ]


# ---------------------------------------------------------------------------- judging


@dataclass(frozen=True)
class _Pair:
    item_key: str
    repeat: int
    code: str
    instruction: str
    language: str
    cell_a: str
    cell_b: str
    run_a: Any
    run_b: Any
    trace_a: Any
    trace_b: Any
    summary_a: str
    summary_b: str


async def _runs(store: Store, exp: Experiment, cells: Sequence[str]) -> list[Any]:
    stmt = (
        select(Run.id, Run.trace_id, Run.repeat, ExperimentCell.key, DatasetItem.item_key,
               DatasetItem.code, DatasetItem.instruction, DatasetItem.language, Run.summary)
        .join(ExperimentCell, ExperimentCell.id == Run.cell_id)
        .join(DatasetItem, DatasetItem.id == Run.dataset_item_id)
        .where(Run.experiment_id == exp.id, Run.status == "succeeded",
               Run.summary.is_not(None), ExperimentCell.key.in_(list(cells)))
        .order_by(DatasetItem.item_key, Run.repeat, ExperimentCell.position)
    )  # fmt: skip
    async with store.session() as session:
        return list((await session.execute(stmt)).all())


async def _cells(store: Store, exp: Experiment) -> list[str]:
    async with store.session() as session:
        keys = await session.scalars(
            select(ExperimentCell.key)
            .where(ExperimentCell.experiment_id == exp.id)
            .order_by(ExperimentCell.position)
        )
        return list(keys)


def _pairs(rows: list[Any], cells: Sequence[str], spec_instruction: str | None) -> list[_Pair]:
    by_key: dict[tuple[str, int, str], Any] = {}
    for row in rows:
        by_key[(row.item_key, row.repeat, row.key)] = row
    items = list(dict.fromkeys((row.item_key, row.repeat) for row in rows))
    pairs: list[_Pair] = []
    for cell_a, cell_b in combinations(cells, 2):
        for item_key, repeat in items:
            a, b = by_key.get((item_key, repeat, cell_a)), by_key.get((item_key, repeat, cell_b))
            if a is None or b is None:
                continue
            pairs.append(
                _Pair(
                    item_key=item_key,
                    repeat=repeat,
                    code=a.code,
                    instruction=effective_instruction(a.instruction, spec_instruction),
                    language=canonical_language(a.language) or a.language,
                    cell_a=cell_a,
                    cell_b=cell_b,
                    run_a=a.id,
                    run_b=b.id,
                    trace_a=a.trace_id,
                    trace_b=b.trace_id,
                    summary_a=a.summary,
                    summary_b=b.summary,
                )
            )
    return pairs


async def _order(
    tracer: Tracer,
    judge: PairwiseJudge,
    pair: _Pair,
    shown_first: Literal["a", "b"],
) -> OrderVerdict:
    first, second = (
        (pair.summary_a, pair.summary_b) if shown_first == "a" else (pair.summary_b, pair.summary_a)
    )
    async with tracer.span(
        f"judge: {shown_first} shown first",
        type="judge",
        input={
            "shown_first": shown_first,
            "cell_shown_first": getattr(pair, f"cell_{shown_first}"),
        },
        metadata={"prompt": judge.prompt_ref, "shown_first": shown_first},
    ) as span:
        try:
            verdict = await judge.judge_order(
                code=pair.code,
                first=first,
                second=second,
                shown_first=shown_first,
                instruction=pair.instruction,
                language=pair.language,
            )
        except ModelError as exc:  # a call that failed is a failed verdict, recorded as such
            verdict = OrderVerdict(
                shown_first, None, f"model error: {exc}", "failed", error=f"model error: {exc}"
            )
        gen = verdict.generation
        if gen is not None:
            span.update(
                model=gen.model,
                provider=gen.provider,
                metadata={"latency_ms": round(gen.latency_ms, 3), "cached": gen.cached},
            )
            span.set_usage(
                gen.usage.prompt_tokens,
                gen.usage.completion_tokens,
                gen.usage.total_tokens,
                gen.cost,
            )
        span.set_output(
            {
                "winner": verdict.winner,
                "preferred": verdict.preferred,
                "reason": verdict.reason,
                "status": verdict.status,
                "raw": verdict.raw if verdict.status != "ok" else None,
            }
        )
    return verdict


async def _judge_pair(
    tracer: Tracer,
    judge: PairwiseJudge,
    pair: _Pair,
    link: dict[str, Any],
    export: bool,
    project: str | None,
) -> PairwiseJudgement:
    meta = {
        **link,
        "cell_a": pair.cell_a,
        "cell_b": pair.cell_b,
        "item_key": pair.item_key,
        "repeat": pair.repeat,
        "run_a": str(pair.run_a),
        "run_b": str(pair.run_b),
        "trace_a": None if pair.trace_a is None else str(pair.trace_a),
        "trace_b": None if pair.trace_b is None else str(pair.trace_b),
    }
    async with tracer.trace(
        f"pairwise: {pair.cell_b} vs {pair.cell_a} on {pair.item_key}",
        trace_type=PAIRWISE_TRACE_TYPE,
        input={
            "code": pair.code,
            "instruction": pair.instruction,
            "language": pair.language,
            "summary_a": pair.summary_a,
            "summary_b": pair.summary_b,
        },
        metadata=meta,
        tags=["pairwise"],
        export=export,
        export_project=project,
    ) as trace:
        first, second = await asyncio.gather(
            _order(tracer, judge, pair, "a"), _order(tracer, judge, pair, "b")
        )
        judgement = combine_orders(first, second)
        details = {
            **meta,
            "verdict": judgement.verdict,
            "consistent": judgement.consistent,
            "orders": [
                {
                    "shown_first": o.shown_first,
                    "winner": o.winner,
                    "preferred": o.preferred,
                    "reason": o.reason,
                    **({"raw": o.raw} if o.status != "ok" else {}),
                }
                for o in (first, second)
            ],
        }
        tracer.evaluation(
            PREFERENCE_METRIC,
            judgement.score,
            judgement.reason,
            status=judgement.status,
            metadata=details,
        )
        if judgement.consistent is not None:
            tracer.evaluation(
                CONSISTENCY_METRIC,
                1.0 if judgement.consistent else 0.0,
                "both orders agreed"
                if judgement.consistent
                else "the verdict flipped with the order",
                metadata=details,
            )
        trace.set_output({"verdict": judgement.verdict, "consistent": judgement.consistent})
    return judgement


async def pairwise_compare(
    store: Store,
    experiment: ExperimentRef,
    *,
    cells: Sequence[str] | None = None,
    judge: str | None = None,
    prompt: str | None = None,
    prompts_dir: Path | None = None,
    limit: int | None = None,
    concurrency: int = 8,
    use_cache: bool = True,
    export: bool = False,
    seed: int = 0,
    n_boot: int = 500,
) -> PairwiseReport:
    """Judge the experiment's cells against each other, pair by pair (see the module docstring).

    ``cells`` are cell keys (default: every cell; two or more). ``judge`` is the judge
    model (default: the experiment's judge model) and ``prompt`` the pairwise rubric
    (default: the experiment's, when its judge is pairwise, else ``pairwise_judge@1``).
    ``limit`` caps the items compared. Every verdict is stored (see the module docstring)
    and mirrored to Opik when ``export``. Model calls go through the response cache, so
    asking again is free. Raises :class:`InputError` for an unknown cell or judge, fewer
    than two cells, or cells with no item in common.
    """
    from codi_eval.prompts import ensure_seeded, get_prompt
    from codi_eval.settings import get_settings

    if concurrency < 1:
        raise InputError("concurrency must be at least 1", field="concurrency")
    exp = await resolve_experiment(store, experiment)
    spec = exp.spec or {}
    spec_judge = spec.get("judge") or {}
    known = await _cells(store, exp)
    chosen = list(dict.fromkeys(cells or known))
    for cell in chosen:
        if cell not in known:
            raise InputError(
                f"no cell {cell!r} in experiment {exp.name}; its cells are: "
                f"{', '.join(known) or 'none'}",
                field="cell",
            )
    if len(chosen) < 2:
        raise InputError("a pairwise comparison needs two different cells", field="cell")
    model = judge or spec_judge.get("model") or "offline"
    pairwise_spec = spec_judge.get("mode") == "pairwise"
    ref = prompt or (spec_judge.get("prompt") if pairwise_spec else None) or DEFAULT_PAIRWISE_PROMPT
    directory = prompts_dir or get_settings().prompts_dir
    await ensure_seeded(store, directory)
    stored = await get_prompt(store, ref)
    models = judge_models(store, use_cache)
    try:
        pairwise_judge = build_pairwise_judge(
            model,
            judge_prompt(stored.ref, stored.template, directory),
            models=lambda name: models(name, PAIRWISE_REPEAT),
        )
    except ValueError as exc:
        raise InputError(str(exc), field="judge") from exc

    pairs = _pairs(await _runs(store, exp, chosen), chosen, spec.get("instruction"))
    if limit is not None:
        keep = set(list(dict.fromkeys(p.item_key for p in pairs))[:limit])
        pairs = [p for p in pairs if p.item_key in keep]
    if not pairs:
        raise InputError(
            f"cells {', '.join(chosen)} of experiment {exp.name} have no succeeded run of a "
            "common item to compare",
            field="cell",
        )
    comparison_id = str(uuid7())
    link = {
        "comparison_id": comparison_id,
        "experiment_id": str(exp.id),
        "experiment": exp.name,
        "judge": model,
        "prompt": stored.ref,
    }
    project = (spec.get("opik") or {}).get("project")
    sink = StoreSink(store)
    tracer = Tracer(sink)
    gate = asyncio.Semaphore(concurrency)

    async def one(pair: _Pair) -> PairwiseJudgement:
        async with gate:
            return await _judge_pair(tracer, pairwise_judge, pair, link, export, project)

    try:
        judgements = await asyncio.gather(*(one(p) for p in pairs))
    finally:
        await sink.close()
        await models.aclose()

    verdicts = pd.DataFrame(
        {
            "cell_a": [p.cell_a for p in pairs],
            "cell_b": [p.cell_b for p in pairs],
            "item_key": [p.item_key for p in pairs],
            "repeat": [p.repeat for p in pairs],
            "run_a": [str(p.run_a) for p in pairs],
            "run_b": [str(p.run_b) for p in pairs],
            "status": [j.status for j in judgements],
            "verdict": [j.verdict for j in judgements],
            "sign": [math.nan if j.sign is None else float(j.sign) for j in judgements],
            "consistent": [bool(j.consistent) for j in judgements],
        }
    )
    comparisons = [summarise_pairs(verdicts, a, b, seed=seed) for a, b in combinations(chosen, 2)]
    ranking = bradley_terry(verdicts, chosen, n_boot=n_boot, seed=seed) if len(chosen) > 2 else None
    return PairwiseReport(
        experiment_id=str(exp.id),
        experiment_name=exp.name,
        comparison_id=comparison_id,
        judge=model,
        prompt=stored.ref,
        comparisons=comparisons,
        ranking=ranking,
        ranking_method=(
            f"Bradley-Terry maximum likelihood (ties half a win, Gaussian prior sd "
            f"{_PRIOR_SD:g}); 95% percentile bootstrap over items ({n_boot} resamples)"
            if ranking is not None
            else None
        ),
        verdicts=verdicts,
    )
