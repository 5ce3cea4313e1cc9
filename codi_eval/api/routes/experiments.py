"""``/experiments``: experiments the CLI ran (shared by all users), their cells and comparisons."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from codi_eval.api import queries
from codi_eval.api.auth import connection
from codi_eval.api.errors import ApiError, not_found
from codi_eval.api.http import iso, json_ok
from codi_eval.api.state import QUERY, SERVICES
from codi_eval.errors import NotFound
from codi_eval.store.models import Experiment

# What a reader of an experiment needs from its resolved spec (the rest is run tuning).
SPEC_SUMMARY_KEYS = (
    "description",
    "dataset",
    "sample",
    "instruction",
    "matrix",
    "repeats",
    "judge",
    "metrics",
)


async def _experiment(request: web.Request) -> Experiment:
    from codi_eval.experiments.results import find_experiment

    try:
        return await find_experiment(
            request.app[SERVICES].store, request.match_info["experiment_id"]
        )
    except NotFound:
        raise not_found("experiment", field="experiment_id") from None


async def list_experiments(request: web.Request) -> web.Response:
    conn = connection(request)
    rows = await queries.experiment_summaries(conn)
    return json_ok(
        {
            "experiments": [
                {
                    "id": str(r.id),
                    "name": r.name,
                    "status": r.status,
                    "created_at": iso(r.created_at),
                    "finished_at": iso(r.finished_at),
                    "cells": int(r.cells),
                    "runs": {
                        "total": int(r.total),
                        "succeeded": int(r.succeeded),
                        "failed": int(r.failed),
                        "pending": int(r.total) - int(r.succeeded) - int(r.failed),
                    },
                }
                for r in rows
            ]
        }
    )


async def get_experiment(request: web.Request) -> web.Response:
    from codi_eval.experiments.results import cell_results

    exp = await _experiment(request)
    cells = await cell_results(request.app[SERVICES].store, exp.id)
    spec = exp.spec or {}
    return json_ok(
        {
            "id": str(exp.id),
            "name": exp.name,
            "status": exp.status,
            "created_at": iso(exp.created_at),
            "finished_at": iso(exp.finished_at),
            "spec_hash": exp.spec_hash,
            "spec_path": exp.spec_path,
            "dataset_id": str(exp.dataset_id),
            "spec": {k: spec[k] for k in SPEC_SUMMARY_KEYS if k in spec},
            "cells": [c.to_dict() for c in cells],
        }
    )


async def compare_cells(request: web.Request) -> web.Response:
    from codi_eval.analysis.stats import paired_comparison

    q = request[QUERY]
    metric: str = q["metric"]
    exp = await _experiment(request)
    conn = connection(request)
    cells = await queries.cells_by_key(conn, exp.id)
    for side in ("a", "b"):
        if q[side] not in cells:
            raise ApiError(
                404,
                "not_found",
                f"experiment {exp.name} has no cell {q[side]!r} "
                f"(cells: {', '.join(cells) or 'none'})",
                field=side,
            )
    ids = {side: cells[q[side]] for side in ("a", "b")}
    rows = await queries.cell_values(conn, exp.id, list(set(ids.values())), metric)
    if metric != queries.QUALITY_METRIC and not any(r[3] is not None for r in rows):
        known = await queries.experiment_metrics(conn, exp.id)
        if metric not in known:
            raise ApiError(
                404,
                "not_found",
                f"no metric {metric!r} recorded in experiment {exp.name} "
                f"(recorded: {', '.join([queries.QUALITY_METRIC, *known])})",
                field="metric",
            )
    values: dict[str, list[tuple[Any, int, float | None]]] = {"a": [], "b": []}
    for cell_id, item_id, repeat, value in rows:
        for side in ("a", "b"):
            if cell_id == ids[side]:
                values[side].append((str(item_id), repeat, value))
    # Thousands of bootstrap resamples: off the event loop so other requests keep flowing.
    comparison = await asyncio.to_thread(
        paired_comparison, values["a"], values["b"], metric=metric, label_a=q["a"], label_b=q["b"]
    )
    return json_ok(comparison.to_dict())


ROUTES = {
    "listExperiments": list_experiments,
    "getExperiment": get_experiment,
    "compareCells": compare_cells,
}
