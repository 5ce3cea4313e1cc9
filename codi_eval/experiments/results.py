"""Per-cell results of an experiment, computed in the store with a handful of queries."""

from __future__ import annotations

import math
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import case, func, select

from codi_eval.store.engine import Store
from codi_eval.store.models import Evaluation, Experiment, ExperimentCell, Run


@dataclass
class CellResult:
    key: str
    prompt: str
    density_iterations: int
    model: str
    runs: int
    succeeded: int
    failed: int
    pending: int
    judge_n: int
    judge_mean: float | None
    judge_ci_low: float | None
    judge_ci_high: float | None
    metrics: dict[str, float | None] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    total_tokens: int = 0
    cost: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    # Linear interpolation between closest ranks (numpy's default).
    pos = (len(sorted_values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


async def cell_results(store: Store, experiment_id: uuid.UUID) -> list[CellResult]:
    from codi_eval.analysis.stats import mean_ci

    async with store.session() as session:
        cells = (
            await session.scalars(
                select(ExperimentCell)
                .where(ExperimentCell.experiment_id == experiment_id)
                .order_by(ExperimentCell.position)
            )
        ).all()
        counts = (
            await session.execute(
                select(
                    Run.cell_id,
                    func.count(),
                    func.sum(case((Run.status == "succeeded", 1), else_=0)),
                    func.sum(case((Run.status == "failed", 1), else_=0)),
                    func.sum(func.coalesce(Run.total_tokens, 0)),
                    func.sum(Run.cost),
                    func.sum(
                        case(
                            (
                                Run.cost.is_(None)
                                & (Run.status != "pending")
                                & (Run.status != "running"),
                                1,
                            ),
                            else_=0,
                        )
                    ),
                )
                .where(Run.experiment_id == experiment_id)
                .group_by(Run.cell_id)
            )
        ).all()
        per_run = (
            await session.execute(
                select(Run.cell_id, Run.judge_score, Run.latency_ms).where(
                    Run.experiment_id == experiment_id, Run.status == "succeeded"
                )
            )
        ).all()
        metric_rows = (
            await session.execute(
                select(Run.cell_id, Evaluation.metric_name, func.avg(Evaluation.score))
                .join(Evaluation, Evaluation.trace_id == Run.trace_id)
                .where(
                    Run.experiment_id == experiment_id,
                    Run.status == "succeeded",
                    Evaluation.status == "ok",
                )
                .group_by(Run.cell_id, Evaluation.metric_name)
            )
        ).all()
        error_rows = (
            await session.execute(
                select(Run.cell_id, Run.error_class, func.count())
                .where(Run.experiment_id == experiment_id, Run.status == "failed")
                .group_by(Run.cell_id, Run.error_class)
            )
        ).all()

    scores: dict[uuid.UUID, list[float]] = {}
    latencies: dict[uuid.UUID, list[float]] = {}
    for cell_id, score, latency in per_run:
        if score is not None:
            scores.setdefault(cell_id, []).append(float(score))
        if latency is not None:
            latencies.setdefault(cell_id, []).append(float(latency))
    metrics: dict[uuid.UUID, dict[str, float | None]] = {}
    for cell_id, name, mean in metric_rows:
        if name != "summary_quality":
            metrics.setdefault(cell_id, {})[name] = float(mean) if mean is not None else None
    errors: dict[uuid.UUID, dict[str, int]] = {}
    for cell_id, error_class, n in error_rows:
        errors.setdefault(cell_id, {})[error_class or "error"] = int(n)
    by_cell = {row[0]: row for row in counts}
    results = []
    for cell in cells:
        _, runs, ok, failed, tokens, cost, unknown_cost = by_cell.get(
            cell.id, (cell.id, 0, 0, 0, 0, None, 0)
        )
        cell_scores = scores.get(cell.id, [])
        ci = mean_ci(cell_scores) if cell_scores else None
        lat = sorted(latencies.get(cell.id, []))
        results.append(
            CellResult(
                key=cell.key,
                prompt=cell.prompt,
                density_iterations=cell.density_iterations,
                model=cell.model,
                runs=int(runs),
                succeeded=int(ok or 0),
                failed=int(failed or 0),
                pending=int(runs) - int(ok or 0) - int(failed or 0),
                judge_n=len(cell_scores),
                judge_mean=ci.estimate if ci else None,
                judge_ci_low=ci.low if ci else None,
                judge_ci_high=ci.high if ci else None,
                metrics=dict(sorted(metrics.get(cell.id, {}).items())),
                errors=errors.get(cell.id, {}),
                total_tokens=int(tokens or 0),
                cost=None if unknown_cost else (float(cost) if cost is not None else 0.0),
                latency_p50_ms=_percentile(lat, 0.5),
                latency_p95_ms=_percentile(lat, 0.95),
            )
        )
    return results


async def find_experiment(store: Store, ref: str) -> Experiment:
    """An experiment by id (or unique id prefix) or by name (the newest with that name)."""
    from codi_eval.errors import NotFound

    async with store.session() as session:
        try:
            exp = await session.get(Experiment, uuid.UUID(ref))
        except ValueError:
            exp = None
        if exp is None:
            exp = await session.scalar(
                select(Experiment)
                .where(Experiment.name == ref)
                .order_by(Experiment.created_at.desc())
                .limit(1)
            )
        if exp is None and len(ref) >= 6:
            matches = (await session.scalars(select(Experiment))).all()
            prefixed = [e for e in matches if str(e.id).startswith(ref)]
            exp = prefixed[0] if len(prefixed) == 1 else None
    if exp is None:
        raise NotFound(f"no experiment with id or name {ref!r}")
    return exp
