"""Judge reliability: re-judge an experiment's stored summaries and measure agreement.

:func:`judge_check` sends every stored summary (``runs.summary`` with its item's code and
instruction) to each judge ``repeats`` times, records each re-judgement as an
``Evaluation`` on the run's trace (``metric_name`` the judge's metric, normally
``summary_quality``; ``meta_data = {"judge_check": true, "judge": name, "repeat": k,
"check_id": ...}``, which keeps them out of the experiment's own scores), and reports:

* test-retest agreement per judge over summaries × repeats: ICC(2,1) and Krippendorff's
  alpha (interval), and the per-summary standard deviation of scores (mean and max);
* agreement between judges when several are given: Spearman of per-summary means for each
  pair, and ICC(2,1) over summaries × judges;
* Spearman between each judge's per-summary mean and the experiment's stored judge score and
  offline metrics.

A deterministic judge (the offline heuristic) gives identical scores on every repeat. Its
test-retest is then reported as perfect (``perfect_retest``) with ICC and alpha left out:
they would be 1.0, or undefined when the scores do not vary at all, and neither number says
anything about the judge.

LLM judges' calls go through the runner's response cache (``ResponseCache`` behind
``ManagedModel``) under repeat indices of their own (``JUDGE_CHECK_REPEAT_BASE + k``), so
each retest is a fresh sample rather than the experiment's cached answer, and running the
same check again is free and reproducible.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import insert, select

from codi_eval.analysis.frames import (
    JUDGE_METRIC,
    ExperimentRef,
    metric_columns,
    resolve_experiment,
    runs_frame,
)
from codi_eval.analysis.stats import icc_with_reason, krippendorff_alpha, spearman
from codi_eval.code_facts import canonical_language
from codi_eval.errors import InputError
from codi_eval.ids import uuid7
from codi_eval.judging import Judge, JudgePrompt
from codi_eval.models.base import Model
from codi_eval.store.engine import Store
from codi_eval.store.models import DatasetItem, Evaluation, Experiment, ExperimentCell, Run, utcnow

__all__ = [
    "JUDGE_CHECK_REPEAT_BASE",
    "JudgeAgreement",
    "JudgeCheck",
    "JudgeRetest",
    "judge_check",
    "retest_statistics",
]

#: Cache repeat index of the first re-judgement; far above any experiment's repeats.
JUDGE_CHECK_REPEAT_BASE = 1_000_000
_ZERO_SD = 1e-12


@dataclass
class JudgeRetest:
    """One judge's test-retest result over ``n_summaries`` summaries × ``repeats``."""

    judge: str
    n_summaries: int
    repeats: int
    judgements: int
    failed: int
    mean_score: float | None
    icc: float | None
    alpha: float | None
    mean_sd: float | None
    max_sd: float | None
    perfect_retest: bool
    verdict: str
    metric_correlations: dict[str, float | None] = field(default_factory=dict)


@dataclass
class JudgeAgreement:
    """Spearman correlation of two judges' per-summary mean scores."""

    judge_a: str
    judge_b: str
    n: int
    spearman: float | None


@dataclass
class JudgeCheck:
    """The outcome of :func:`judge_check`; ``scores`` holds every re-judgement."""

    experiment_id: str
    experiment_name: str
    check_id: str
    metric: str
    repeats: int
    n_summaries: int
    recorded: int
    judges: list[JudgeRetest]
    agreement: list[JudgeAgreement]
    icc_across_judges: float | None
    scores: pd.DataFrame = field(repr=False)
    #: Why ``icc_across_judges`` is ``None`` (e.g. too few summaries every judge scored).
    icc_across_judges_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields (without the per-judgement ``scores`` table)."""
        out = asdict(self)
        out.pop("scores")
        return out

    def lines(self) -> list[str]:
        """A few sentences a reader can act on, one per finding."""
        lines = [
            f"judge check {self.check_id} of {self.experiment_name}: {self.n_summaries} "
            f"summaries × {self.repeats} repeats per judge, {self.recorded} re-judgements recorded"
        ]
        for j in self.judges:
            lines.append(f"{j.judge}: {j.verdict}")
        for a in self.agreement:
            rho = "n/a" if a.spearman is None else f"{a.spearman:+.3f}"
            lines.append(f"{a.judge_a} vs {a.judge_b}: Spearman of summary means {rho} (n = {a.n})")
        if len(self.judges) > 1:
            value = (
                f"{self.icc_across_judges:.3f}"
                if self.icc_across_judges is not None
                else f"n/a ({self.icc_across_judges_reason or 'undefined'})"
            )
            lines.append(f"ICC(2,1) across judges: {value}")
        return lines


def retest_statistics(matrix: np.ndarray) -> dict[str, Any]:
    """Test-retest numbers for a summaries × repeats score matrix (NaN = failed judgement).

    Returns ``icc``, ``alpha``, ``mean_sd``, ``max_sd`` (per-summary SD with ddof=1, over
    summaries with at least two scores) and ``perfect`` (every summary got the same score on
    every repeat). When ``perfect``, ``icc`` and ``alpha`` are ``None``: a constant judge has
    no retest error to measure, and with no variation at all the ratios are undefined.
    ``icc_reason`` says why ``icc`` is ``None`` otherwise (e.g. fewer than
    :data:`~codi_eval.analysis.stats.ICC_MIN_ITEMS` summaries scored on every repeat).
    """
    m = np.asarray(matrix, dtype=np.float64)
    counts = (~np.isnan(m)).sum(axis=1) if m.size else np.zeros(0)
    rows = m[counts >= 2] if m.size else m
    if rows.size == 0 or m.shape[1] < 2:
        return {"icc": None, "alpha": None, "mean_sd": None, "max_sd": None, "perfect": False,
                "icc_reason": "no summary was scored twice"}  # fmt: skip
    sds = np.nanstd(rows, axis=1, ddof=1)
    max_sd = float(np.max(sds))
    perfect = max_sd <= _ZERO_SD
    value, reason = (None, None) if perfect else icc_with_reason(m)
    return {
        "icc": value,
        "icc_reason": reason,
        "alpha": None if perfect else krippendorff_alpha(m, "interval"),
        "mean_sd": 0.0 if perfect else float(np.mean(sds)),
        "max_sd": 0.0 if perfect else max_sd,
        "perfect": perfect,
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _verdict(stats: dict[str, Any], repeats: int, failed: int) -> str:
    failures = f"; {failed} judgements failed" if failed else ""
    if repeats < 2:
        return f"test-retest needs at least 2 repeats (ran {repeats}){failures}"
    if stats["perfect"]:
        return (
            "perfect test-retest: every repeat gave the identical score for every summary "
            "(a deterministic judge; ICC and alpha are not informative here and are not "
            f"reported){failures}"
        )
    if stats["max_sd"] is None:
        return f"no summary was scored twice, so test-retest is unknown{failures}"
    icc_text = _fmt(stats["icc"])
    if stats["icc"] is None and stats.get("icc_reason"):
        icc_text += f" ({stats['icc_reason']})"
    return (
        f"test-retest ICC(2,1) = {icc_text}, Krippendorff's alpha = "
        f"{_fmt(stats['alpha'])}, per-summary SD mean {_fmt(stats['mean_sd'])} / max "
        f"{_fmt(stats['max_sd'])}{failures}"
    )


async def _summaries(store: Store, exp: Experiment, limit: int | None) -> list[Any]:
    stmt = (
        select(Run.id, Run.trace_id, ExperimentCell.key, DatasetItem.item_key, Run.repeat,
               Run.summary, DatasetItem.code, DatasetItem.instruction, DatasetItem.language)
        .join(ExperimentCell, ExperimentCell.id == Run.cell_id)
        .join(DatasetItem, DatasetItem.id == Run.dataset_item_id)
        .where(Run.experiment_id == exp.id, Run.status == "succeeded",
               Run.summary.is_not(None), Run.trace_id.is_not(None))
        # Item first, so a --limit still spans every cell of the first items.
        .order_by(DatasetItem.item_key, ExperimentCell.position, Run.repeat)
    )  # fmt: skip
    if limit is not None:
        stmt = stmt.limit(limit)
    async with store.session() as session:
        return list((await session.execute(stmt)).all())


async def _judge_template(store: Store, ref: str) -> str | None:
    from codi_eval.prompts import get_prompt

    try:
        return (await get_prompt(store, ref)).template
    except InputError:
        return None  # not seeded in this store: the judge reads configs/prompts


class JudgeModels:
    """``models(name, repeat)``: judge model ``name`` for cache repeat ``repeat``.

    Outside the runner, judges' models are built here: one retried :class:`ManagedModel`
    per name behind the store's response cache (the offline baseline is not cached, as in
    the runner), keyed like any call, so a re-judgement or a pairwise verdict asked again
    is a cache hit. :meth:`aclose` closes the provider clients.
    """

    def __init__(self, store: Store, use_cache: bool) -> None:
        from codi_eval.experiments.cache import ResponseCache

        self._cache = ResponseCache(store) if use_cache else None
        self._managed: dict[str, Any] = {}

    def __call__(self, name: str, repeat: int) -> Model:
        from codi_eval.experiments.calls import CallStats, ManagedModel, RateLimiter, RetryPolicy
        from codi_eval.models.registry import get_model

        if name not in self._managed:
            inner = get_model(name)
            # The spec's name, ?base_url and all: the cache identity is read from it.
            self._managed[name] = ManagedModel(
                inner, name=name, cache=self._cache if inner.provider != "offline" else None,
                limiter=RateLimiter(None), semaphore=None, policy=RetryPolicy(),
                totals=CallStats(),
            )  # fmt: skip
        return cast(Model, self._managed[name].for_repeat(repeat))

    async def aclose(self) -> None:
        for model in self._managed.values():
            closing = getattr(model.inner, "aclose", None)
            if closing is not None:
                await closing()
        self._managed.clear()


def judge_models(store: Store, use_cache: bool) -> JudgeModels:
    """The :class:`JudgeModels` of ``store`` (see there)."""
    return JudgeModels(store, use_cache)


def _make_judges(models: JudgeModels, name: str, prompt: JudgePrompt,
                 repeats: int) -> list[Judge]:  # fmt: skip
    """One judge per repeat, built by the judge registry as the runner builds its judge;
    LLM judges share one cached, retried model under distinct repeats."""
    from codi_eval.judging import build_score_judge

    def at_repeat(k: int) -> Callable[[str], Model]:
        return lambda model: models(model, JUDGE_CHECK_REPEAT_BASE + k)

    try:
        return [build_score_judge(name, prompt, models=at_repeat(k)) for k in range(repeats)]
    except ValueError as exc:
        raise InputError(str(exc), field="judge") from exc


async def judge_check(
    store: Store,
    experiment: ExperimentRef,
    *,
    judges: Sequence[str] | None = None,
    repeats: int = 3,
    limit: int | None = None,
    concurrency: int = 8,
    use_cache: bool = True,
) -> JudgeCheck:
    """Re-judge the experiment's stored summaries ``repeats`` times per judge and report agreement.

    ``judges`` are model names (default: the experiment's own judge model); every judge is
    built by the judge registry with the experiment's judge prompt and sees the instruction
    the original judgement saw (:func:`~codi_eval.summarize.effective_instruction`).
    ``limit`` caps the number of summaries (taken item by item, every cell of an item
    together). Every re-judgement, failed ones included, is written as an ``Evaluation``
    on its run's trace. Raises :class:`InputError` for ``repeats < 1``, an unknown judge
    or an experiment without stored summaries.
    """
    if repeats < 1:
        raise InputError("repeats must be at least 1", field="repeats")
    if limit is not None and limit < 1:
        raise InputError("limit must be at least 1", field="limit")
    from codi_eval.judging import judge_prompt
    from codi_eval.summarize import effective_instruction

    exp = await resolve_experiment(store, experiment)
    spec_judge = (exp.spec or {}).get("judge") or {}
    if spec_judge.get("mode", "score") != "score":
        raise InputError(
            f"experiment {exp.name} has a {spec_judge.get('mode')} judge, so its runs have no "
            "score to re-check; compare its cells with `codi-eval compare --pairwise`",
            field="judge",
        )
    names = list(dict.fromkeys(judges or [spec_judge.get("model") or "offline"]))
    ref = spec_judge.get("prompt") or "summary_judge@1"
    # The experiment's own rubric, template and instruction rule: a re-judgement sees the
    # same prompt the original judgement saw.
    prompt = judge_prompt(ref, await _judge_template(store, ref))
    spec_instruction = (exp.spec or {}).get("instruction")
    summaries = await _summaries(store, exp, limit)
    if not summaries:
        raise InputError(
            f"experiment {exp.name} has no succeeded runs with a stored summary to re-judge",
            field="experiment",
        )
    models = judge_models(store, use_cache)
    per_judge = {name: _make_judges(models, name, prompt, repeats) for name in names}
    check_id = str(uuid7())
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(name: str, k: int, row: Any) -> dict[str, Any]:
        judge = per_judge[name][k]
        async with gate:
            try:
                j = await judge.judge(
                    code=row.code, summary=row.summary,
                    language=canonical_language(row.language) or row.language,
                    instruction=effective_instruction(row.instruction, spec_instruction),
                )  # fmt: skip
                metric, score, reason, status = j.metric_name, j.score, j.reason, j.status
                extra = {"scale": j.scale, "prompt_ref": j.meta.get("prompt_ref", ref)}
            except Exception as exc:  # a model error is a failed judgement, recorded as such
                metric, score, status = getattr(judge, "metric_name", JUDGE_METRIC), None, "failed"
                reason = f"{exc.__class__.__name__}: {exc}"[:4000]
                extra = {"prompt_ref": ref}
        return {
            "id": uuid7(), "trace_id": row.trace_id, "span_id": None, "metric_name": metric,
            "score": score if status == "ok" else None, "reason": reason, "status": status,
            "meta_data": {"judge_check": True, "judge": name, "repeat": k, "check_id": check_id,
                          **extra},
            "created_at": utcnow(),
        }  # fmt: skip

    try:
        evaluations = await asyncio.gather(
            *(one(name, k, row) for name in names for row in summaries for k in range(repeats))
        )
    finally:
        await models.aclose()
    async with store.transaction() as session:
        for start in range(0, len(evaluations), 2000):
            await session.execute(insert(Evaluation), evaluations[start : start + 2000])

    scores = pd.DataFrame({
        "run_id": [str(e["trace_id"]) for e in evaluations],
        "judge": [e["meta_data"]["judge"] for e in evaluations],
        "repeat": [e["meta_data"]["repeat"] for e in evaluations],
        "score": [np.nan if e["score"] is None else float(e["score"]) for e in evaluations],
        "status": [e["status"] for e in evaluations],
    })  # fmt: skip
    # Key by trace id (unique per run) and map back to run ids for the joins below.
    trace_to_run = {str(row.trace_id): str(row.id) for row in summaries}
    scores["run_id"] = scores["run_id"].map(trace_to_run)
    metric = evaluations[0]["metric_name"] if evaluations else JUDGE_METRIC

    runs = await runs_frame(store, exp)
    runs = runs.set_index("run_id")
    correlate = [
        "judge_score",
        *(m for m in metric_columns(runs.reset_index()) if m != JUDGE_METRIC),
    ]
    order = [str(row.id) for row in summaries]
    means: dict[str, pd.Series] = {}
    reports: list[JudgeRetest] = []
    for name in names:
        part = scores[scores["judge"] == name]
        matrix = part.pivot_table(index="run_id", columns="repeat", values="score", aggfunc="mean",
                                  dropna=False).reindex(index=order, columns=range(repeats))  # fmt: skip
        stats = retest_statistics(matrix.to_numpy(dtype=np.float64))
        failed = int((part["status"] != "ok").sum())
        item_means = matrix.mean(axis=1, skipna=True)
        means[name] = item_means
        aligned = runs.reindex(order)
        correlations = {
            m: spearman(
                item_means.to_numpy(dtype=np.float64), aligned[m].to_numpy(dtype=np.float64)
            )
            for m in correlate
        }
        overall = float(np.nanmean(matrix.to_numpy())) if part["score"].notna().any() else None
        reports.append(JudgeRetest(
            judge=name, n_summaries=len(order), repeats=repeats, judgements=len(part),
            failed=failed, mean_score=overall, icc=stats["icc"], alpha=stats["alpha"],
            mean_sd=stats["mean_sd"], max_sd=stats["max_sd"], perfect_retest=stats["perfect"],
            verdict=_verdict(stats, repeats, failed), metric_correlations=correlations,
        ))  # fmt: skip
    agreement = []
    for a, b in combinations(names, 2):
        x, y = means[a].to_numpy(dtype=np.float64), means[b].to_numpy(dtype=np.float64)
        both = ~(np.isnan(x) | np.isnan(y))
        agreement.append(JudgeAgreement(a, b, int(both.sum()), spearman(x, y)))
    across, across_reason = icc_with_reason(
        np.column_stack([means[n].to_numpy(dtype=np.float64) for n in names])
    ) if len(names) > 1 else (None, None)  # fmt: skip
    return JudgeCheck(
        experiment_id=str(exp.id), experiment_name=exp.name, check_id=check_id, metric=metric,
        repeats=repeats, n_summaries=len(order), recorded=len(evaluations), judges=reports,
        agreement=agreement, icc_across_judges=_finite(across), scores=scores,
        icc_across_judges_reason=across_reason,
    )  # fmt: skip


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
