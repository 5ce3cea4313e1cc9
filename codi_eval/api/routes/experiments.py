"""``/experiments``: experiments the CLI ran (shared by all users), their cells and comparisons."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from codi_eval.analysis.cells import cell_results
from codi_eval.analysis.stats import paired_comparison
from codi_eval.api import queries
from codi_eval.api.auth import connection
from codi_eval.api.errors import ApiError, not_found
from codi_eval.api.operations import Inputs, operation
from codi_eval.api.schemas import (
    CompareQuery,
    Comparison,
    ExperimentDetail,
    ExperimentList,
    ExperimentPath,
    ExperimentRun,
    ExperimentRunList,
    ExperimentRunPath,
    ExperimentRunsQuery,
    ExperimentSummary,
)
from codi_eval.api.state import SERVICES
from codi_eval.errors import NotFound
from codi_eval.store.experiments import find_experiment
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


async def _experiment(request: web.Request, ref: str) -> Experiment:
    try:
        return await find_experiment(request.app[SERVICES].store, ref)
    except NotFound:
        raise not_found("experiment", field="experiment_id") from None


@operation(
    "GET",
    "/experiments",
    id="listExperiments",
    tag="experiments",
    summary="Experiments (shared by all users), newest first, with run counts.",
    response=ExperimentList,
)
async def list_experiments(request: web.Request, inputs: Inputs) -> ExperimentList:
    rows = await queries.experiment_summaries(await connection(request))
    return ExperimentList(
        experiments=[
            ExperimentSummary.model_validate(
                {
                    **r._mapping,
                    "cells": int(r.cells),
                    "runs": {
                        "total": int(r.total),
                        "succeeded": int(r.succeeded),
                        "failed": int(r.failed),
                        "pending": int(r.total) - int(r.succeeded) - int(r.failed),
                    },
                }
            )
            for r in rows
        ]
    )


@operation(
    "GET",
    "/experiments/{experiment_id}",
    id="getExperiment",
    tag="experiments",
    summary="An experiment's spec summary and per-cell results.",
    response=ExperimentDetail,
    path_params=ExperimentPath,
    errors=(404,),
)
async def get_experiment(request: web.Request, inputs: Inputs) -> ExperimentDetail:
    exp = await _experiment(request, inputs.path.experiment_id)
    cells = await cell_results(request.app[SERVICES].store, exp.id)
    spec = exp.spec or {}
    return ExperimentDetail(
        id=exp.id,
        name=exp.name,
        status=exp.status,
        created_at=exp.created_at,
        finished_at=exp.finished_at,
        spec_hash=exp.spec_hash,
        spec_path=exp.spec_path,
        dataset_id=exp.dataset_id,
        spec={k: spec[k] for k in SPEC_SUMMARY_KEYS if k in spec},
        cells=cells,
    )


@operation(
    "GET",
    "/experiments/{experiment_id}/compare",
    id="compareCells",
    tag="experiments",
    summary="Paired comparison of two cells on one metric (b - a), paired by dataset item.",
    response=Comparison,
    path_params=ExperimentPath,
    query=CompareQuery,
    errors=(404,),
)
async def compare_cells(request: web.Request, inputs: Inputs) -> BaseModel:
    q: CompareQuery = inputs.query
    exp = await _experiment(request, inputs.path.experiment_id)
    conn = await connection(request)
    cells = await queries.cells_by_key(conn, exp.id)
    for side in ("a", "b"):
        if getattr(q, side) not in cells:
            raise ApiError(
                404,
                "not_found",
                f"experiment {exp.name} has no cell {getattr(q, side)!r} "
                f"(cells: {', '.join(cells) or 'none'})",
                field=side,
            )
    ids = {"a": cells[q.a], "b": cells[q.b]}
    rows = await queries.cell_values(conn, exp.id, list(set(ids.values())), q.metric)
    if q.metric != queries.QUALITY_METRIC and not any(r.value is not None for r in rows):
        known = await queries.experiment_metrics(conn, exp.id)
        if q.metric not in known:
            raise ApiError(
                404,
                "not_found",
                f"no metric {q.metric!r} recorded in experiment {exp.name} "
                f"(recorded: {', '.join([queries.QUALITY_METRIC, *known])})",
                field="metric",
            )
    values: dict[str, list[tuple[Any, int, float | None]]] = {"a": [], "b": []}
    for row in rows:
        for side in ("a", "b"):
            if row.cell_id == ids[side]:
                values[side].append((str(row.dataset_item_id), row.repeat, row.value))
    # Up to a million sign flips and a power simulation: off the event loop.
    comparison = await asyncio.to_thread(
        paired_comparison, values["a"], values["b"], metric=q.metric, label_a=q.a, label_b=q.b
    )
    return Comparison.model_validate(comparison.to_dict())


@operation(
    "GET",
    "/experiments/{experiment_id}/runs",
    id="listExperimentRuns",
    tag="experiments",
    summary="An experiment's runs with their final summaries and the judge's score and reason.",
    response=ExperimentRunList,
    path_params=ExperimentPath,
    query=ExperimentRunsQuery,
    errors=(404,),
)
async def list_experiment_runs(request: web.Request, inputs: Inputs) -> ExperimentRunList:
    from codi_eval.analysis.outputs import run_briefs

    q: ExperimentRunsQuery = inputs.query
    exp = await _experiment(request, inputs.path.experiment_id)
    try:
        total, runs = await run_briefs(
            request.app[SERVICES].store,
            exp,
            q.cell,
            q.item,
            status=q.status,
            limit=q.page_size,
            offset=(q.page - 1) * q.page_size,
            name_store=False,
        )
    except NotFound as exc:
        raise ApiError(404, "not_found", exc.message, field=exc.field) from None
    return ExperimentRunList(
        experiment_id=exp.id, runs=runs, total=total, page=q.page, page_size=q.page_size
    )


@operation(
    "GET",
    "/experiments/{experiment_id}/runs/{run_id}",
    id="getExperimentRun",
    tag="experiments",
    summary="One run: code, CoD iterations with added entities, summary, judge's reason, "
    "metrics, usage and its span tree.",
    response=ExperimentRun,
    path_params=ExperimentRunPath,
    errors=(404,),
)
async def get_experiment_run(request: web.Request, inputs: Inputs) -> ExperimentRun:
    import uuid

    from codi_eval.analysis.outputs import run_output
    from codi_eval.api.routes.traces import span_tree

    exp = await _experiment(request, inputs.path.experiment_id)
    try:
        run_id = uuid.UUID(inputs.path.run_id)
        run = await run_output(request.app[SERVICES].store, exp, run_id)
    except (ValueError, NotFound):
        raise not_found("run", field="run_id") from None
    spans = []
    if run.trace_id is not None:
        spans = span_tree(
            await queries.spans_of(await connection(request), uuid.UUID(run.trace_id))
        )
    return ExperimentRun(run=run, spans=spans)
