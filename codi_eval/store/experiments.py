"""Experiments in the store: finding one by what a user types, and which evaluations are a
run's own (not judge-check re-judgements)."""

from __future__ import annotations

import difflib
import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, func, or_, select

from codi_eval.errors import NotFound
from codi_eval.store.engine import Store, safe_url
from codi_eval.store.models import Evaluation, Experiment, Run


def own_evaluation() -> ColumnElement[bool]:
    """SQL for "an ok, scored evaluation that is one of its run's own, not a judge-check
    re-judgement" — the one definition every aggregate and frame uses."""
    flag = Evaluation.meta_data["judge_check"].as_boolean()
    return (
        (Evaluation.status == "ok")
        & Evaluation.score.is_not(None)
        & or_(Evaluation.meta_data.is_(None), flag.is_(None), flag == false())
    )


async def find_experiment(store: Store, ref: str) -> Experiment:
    """An experiment by id (or unique id prefix of 6+ characters) or by name (the newest
    with that name). :class:`NotFound` names the store it looked in and suggests a name."""
    async with store.session() as session:
        exp = None
        try:
            exp = await session.get(Experiment, uuid.UUID(ref))
        except ValueError:
            pass
        if exp is None:
            exp = await session.scalar(
                select(Experiment)
                .where(Experiment.name == ref)
                .order_by(Experiment.created_at.desc())
                .limit(1)
            )
        if exp is not None:
            return exp
        names = list(await session.scalars(select(Experiment.name).distinct()))
        if len(ref) >= 6:
            ids = [
                i for i in await session.scalars(select(Experiment.id)) if str(i).startswith(ref)
            ]
            if len(ids) == 1:
                found = await session.get(Experiment, ids[0])
                if found is not None:
                    return found
    close = difflib.get_close_matches(ref, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    have = (
        f" (it has {len(names)}: {', '.join(sorted(names)[:8])}{', ...' if len(names) > 8 else ''})"
        if names
        else " (it has none yet)"
    )
    raise NotFound(
        f"no experiment with id or name {ref!r} in the store {safe_url(store.url)}{have}{hint}"
    )


@dataclass(frozen=True)
class FailureClass:
    error_class: str
    runs: int
    first_message: str


async def run_status(
    store: Store, experiment_id: uuid.UUID
) -> tuple[dict[str, int], list[FailureClass]]:
    """Runs by status, and the failed runs by error class with the first message of each."""
    async with store.session() as session:
        counts = dict(
            (
                await session.execute(
                    select(Run.status, func.count())
                    .where(Run.experiment_id == experiment_id)
                    .group_by(Run.status)
                )
            ).all()
        )
        rows = (
            await session.execute(
                select(Run.error_class, Run.error_message)
                .where(Run.experiment_id == experiment_id, Run.status == "failed")
                .order_by(Run.finished_at, Run.id)
            )
        ).all()
    classes: dict[str, FailureClass] = {}
    for error_class, message in rows:
        key = error_class or "error"
        seen = classes.get(key)
        classes[key] = FailureClass(
            key, (seen.runs if seen else 0) + 1, seen.first_message if seen else (message or "")
        )
    return {str(k): int(v) for k, v in counts.items()}, sorted(
        classes.values(), key=lambda c: -c.runs
    )
