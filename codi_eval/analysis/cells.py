"""Per-cell results of an experiment: one aggregate, used by the run table, the frames, the
report and the API alike.

:func:`aggregate_cells` is the only implementation: it takes the cells and one
:class:`RunValues` per run, wherever they came from — :func:`cell_results` reads them from
the store (two queries, no pandas), :func:`codi_eval.analysis.frames.summarize_cells` from
a runs frame. A run's metric value is the mean of its own ok evaluations of that metric
(judge-check re-judgements are not the run's own, see
:func:`codi_eval.store.experiments.own_evaluation`); a cell's is the mean over its
succeeded runs.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeGuard

from sqlalchemy import and_, select

from codi_eval.analysis.stats import mean_ci
from codi_eval.store.engine import Store
from codi_eval.store.experiments import own_evaluation
from codi_eval.store.models import Evaluation, ExperimentCell, Run

FINISHED = ("succeeded", "failed")


@dataclass(frozen=True)
class CellInfo:
    key: str
    prompt: str
    density_iterations: int
    model: str


@dataclass(frozen=True)
class RunValues:
    """What one run contributes to its cell's aggregate."""

    cell: str
    status: str
    judge_score: float | None = None
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cost: float | None = None
    error_class: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass
class CellResult:
    """One cell's runs, judge score (mean and Student-t interval), metric means, failures,
    tokens, cost (None when a finished run's cost is unknown) and latency percentiles."""

    key: str
    prompt: str
    density_iterations: int
    model: str
    runs: int
    succeeded: int
    failed: int
    pending: int  # not finished yet (pending or running)
    judge_n: int
    judge_mean: float | None
    judge_ci_low: float | None
    judge_ci_high: float | None
    metrics: dict[str, float | None] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    failure_rate: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); ``q`` in [0, 1]."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _present(value: float | None) -> TypeGuard[float]:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def aggregate_cells(
    cells: Sequence[CellInfo], runs: Iterable[RunValues], *, alpha: float = 0.05
) -> list[CellResult]:
    """One :class:`CellResult` per cell, in the order of ``cells``."""
    by_cell: dict[str, list[RunValues]] = {c.key: [] for c in cells}
    for run in runs:
        by_cell.setdefault(run.cell, []).append(run)
    results = []
    for cell in cells:
        group = by_cell.get(cell.key, [])
        ok = [r for r in group if r.status == "succeeded"]
        failed = [r for r in group if r.status == "failed"]
        finished = len(ok) + len(failed)
        scores = sorted(float(s) for s in (r.judge_score for r in ok) if _present(s))
        ci = mean_ci(scores, alpha=alpha) if scores else None
        names = sorted({m for r in ok for m in r.metrics})
        metrics: dict[str, float | None] = {}
        for name in names:
            values = [r.metrics[name] for r in ok if _present(r.metrics.get(name))]
            # fsum is exactly rounded: the order the store returns rows in cannot change a digit.
            metrics[name] = math.fsum(values) / len(values) if values else None
        errors: dict[str, int] = {}
        for r in failed:
            errors[r.error_class or "error"] = errors.get(r.error_class or "error", 0) + 1
        costs = [r.cost for r in group if r.status in FINISHED]
        latencies = sorted(float(v) for v in (r.latency_ms for r in ok) if _present(v))
        results.append(
            CellResult(
                key=cell.key,
                prompt=cell.prompt,
                density_iterations=cell.density_iterations,
                model=cell.model,
                runs=len(group),
                succeeded=len(ok),
                failed=len(failed),
                pending=len(group) - finished,
                judge_n=len(scores),
                judge_mean=ci.estimate if ci else None,
                judge_ci_low=ci.low if ci else None,
                judge_ci_high=ci.high if ci else None,
                metrics=metrics,
                errors=errors,
                failure_rate=len(failed) / finished if finished else None,
                prompt_tokens=sum(r.prompt_tokens or 0 for r in group),
                completion_tokens=sum(r.completion_tokens or 0 for r in group),
                total_tokens=sum(r.total_tokens or 0 for r in group),
                # Unknown is not zero: one finished run without a price makes the sum unknown.
                cost=None
                if any(not _present(c) for c in costs)
                else math.fsum(c or 0.0 for c in costs),
                latency_p50_ms=percentile(latencies, 0.5),
                latency_p95_ms=percentile(latencies, 0.95),
            )
        )
    return results


async def cell_results(
    store: Store, experiment_id: uuid.UUID, *, alpha: float = 0.05
) -> list[CellResult]:
    """The experiment's cells aggregated from the store (two queries)."""
    async with store.session() as session:
        cells = (
            await session.scalars(
                select(ExperimentCell)
                .where(ExperimentCell.experiment_id == experiment_id)
                .order_by(ExperimentCell.position)
            )
        ).all()
        rows = (
            await session.execute(
                select(
                    Run.id,
                    Run.cell_id,
                    Run.status,
                    Run.judge_score,
                    Run.latency_ms,
                    Run.prompt_tokens,
                    Run.completion_tokens,
                    Run.total_tokens,
                    Run.cost,
                    Run.error_class,
                    Evaluation.metric_name,
                    Evaluation.score,
                )
                .outerjoin(
                    Evaluation,
                    and_(
                        Evaluation.trace_id == Run.trace_id,
                        Run.status == "succeeded",
                        own_evaluation(),
                    ),
                )
                .where(Run.experiment_id == experiment_id)
            )
        ).all()
    keys = {c.id: c.key for c in cells}
    runs: dict[uuid.UUID, dict[str, Any]] = {}
    scores: dict[uuid.UUID, dict[str, list[float]]] = {}
    for row in rows:
        if row.id not in runs:
            runs[row.id] = {
                "cell": keys[row.cell_id],
                "status": row.status,
                "judge_score": row.judge_score,
                "latency_ms": row.latency_ms,
                "prompt_tokens": row.prompt_tokens,
                "completion_tokens": row.completion_tokens,
                "total_tokens": row.total_tokens,
                "cost": row.cost,
                "error_class": row.error_class,
            }
        if row.metric_name is not None and row.score is not None:
            scores.setdefault(row.id, {}).setdefault(row.metric_name, []).append(row.score)
    values = [
        RunValues(
            **fields_,
            metrics={
                name: math.fsum(v) / len(v)
                for name, v in scores.get(run_id, {}).items()
                if name not in JUDGE_SCORES
            },
        )
        for run_id, fields_ in runs.items()
    ]
    infos = [CellInfo(c.key, c.prompt, c.density_iterations, c.model) for c in cells]
    return aggregate_cells(infos, values, alpha=alpha)


# The judge's own score is the run's judge_score, not a metric column.
JUDGE_SCORES = frozenset({"summary_quality"})
