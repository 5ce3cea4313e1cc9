"""The viewer's routes: each handler reads through a service and renders one template."""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from codi_eval.errors import NotFound
from codi_eval.store.engine import Store, safe_url

STATIC = Path(__file__).resolve().parent / "static"
STORE: web.AppKey[Store] = web.AppKey("viewer_store", Store)
TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("viewer_templates", jinja2.Environment)
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
PAGE_SIZE = 50

Page = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("codi_eval.viewer", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["cost"] = _cost
    env.filters["ms"] = _ms
    env.filters["when"] = lambda v: v.strftime("%Y-%m-%d %H:%M") if v else "—"
    env.filters["q"] = lambda v: quote(str(v), safe="")
    env.globals["mark"] = _mark
    return env


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{float(value):.{digits}f}"


def _cost(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    return "$0" if value == 0 else f"${float(value):.4f}"


def _ms(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{float(value):,.0f} ms"


def _mark(text: str, entities: Sequence[str]) -> list[tuple[str, bool]]:
    from codi_eval.analysis.outputs import mark_entities

    return mark_entities(text or "", list(entities))


def _render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    env = request.app[TEMPLATES]
    store = request.app[STORE]
    html = env.get_template(template).render(store=safe_url(store.url), **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def _page(handler: Page) -> Page:
    """Loopback hosts only; a missing thing is a 404 page that says what was looked for."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        if request.url.host not in LOOPBACK:
            return web.Response(status=403, text="the viewer answers on 127.0.0.1 only")
        try:
            return await handler(request)
        except NotFound as exc:
            return _render(request, "missing.html", status=404, title="Not found", message=str(exc))

    return wrapped


def _page_number(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 1_000_000 else 1


# ------------------------------------------------------------------------------- pages


async def experiments_page(request: web.Request) -> web.StreamResponse:
    from codi_eval.store.experiments import list_experiments

    rows = await list_experiments(request.app[STORE])
    return _render(request, "experiments.html", title="Experiments", experiments=rows)


def density_svg(results: Sequence[Any]) -> dict[str, Any]:
    """An inline SVG line chart: mean summary_quality against density iterations, one line
    per prompt × model (with the 95% interval as a band), drawn on 0..1."""
    groups: dict[str, list[Any]] = {}
    for r in results:
        if r.judge_mean is not None:
            groups.setdefault(f"{r.prompt} · {r.model}", []).append(r)
    densities = sorted({r.density_iterations for r in results})
    width, height, left, bottom, top, right = 560, 260, 48, 36, 14, 170
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(d: int) -> float:
        if len(densities) == 1:
            return left + plot_w / 2
        return left + plot_w * (d - densities[0]) / (densities[-1] - densities[0])

    def y(v: float) -> float:
        return top + plot_h * (1 - max(0.0, min(1.0, v)))

    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    lines = []
    for i, (name, cells) in enumerate(sorted(groups.items())):
        cells = sorted(cells, key=lambda c: c.density_iterations)
        colour = palette[i % len(palette)]
        points = [(x(c.density_iterations), y(c.judge_mean)) for c in cells]
        band = [
            (
                x(c.density_iterations),
                y(c.judge_ci_high if c.judge_ci_high is not None else c.judge_mean),
            )
            for c in cells
        ] + [
            (
                x(c.density_iterations),
                y(c.judge_ci_low if c.judge_ci_low is not None else c.judge_mean),
            )
            for c in reversed(cells)
        ]
        lines.append(
            {
                "name": name,
                "colour": colour,
                "points": " ".join(f"{px:.1f},{py:.1f}" for px, py in points),
                "band": " ".join(f"{px:.1f},{py:.1f}" for px, py in band),
                "dots": [
                    {"x": px, "y": py, "label": f"{c.key}: {c.judge_mean:.3f}"}
                    for (px, py), c in zip(points, cells, strict=True)
                ],
                "legend_y": top + 14 + 18 * i,
            }
        )
    return {
        "width": width,
        "height": height,
        "left": left,
        "top": top,
        "plot_w": plot_w,
        "plot_h": plot_h,
        "legend_x": left + plot_w + 16,
        "xticks": [{"x": x(d), "label": str(d)} for d in densities],
        "yticks": [{"y": y(v), "label": f"{v:.1f}"} for v in (0.0, 0.25, 0.5, 0.75, 1.0)],
        "lines": lines,
    }


async def experiment_page(request: web.Request) -> web.StreamResponse:
    from codi_eval.analysis.cells import cell_results
    from codi_eval.analysis.frames import runs_frame
    from codi_eval.analysis.labels import cell_labels
    from codi_eval.analysis.report import ab_comparisons
    from codi_eval.store.experiments import find_experiment

    store = request.app[STORE]
    exp = await find_experiment(store, request.match_info["experiment"])
    results = await cell_results(store, exp.id)
    labels = cell_labels(results)
    metrics = sorted({m for r in results for m in r.metrics})
    runs = await runs_frame(store, exp)
    comparisons = ab_comparisons(runs, "summary_quality") if len(runs) else []
    return _render(
        request,
        "experiment.html",
        title=f"Experiment {exp.name}",
        exp=exp,
        spec=exp.spec or {},
        cells=results,
        labels=labels,
        metrics=metrics,
        chart=density_svg(results),
        comparisons=comparisons,
    )


async def cell_page(request: web.Request) -> web.StreamResponse:
    from codi_eval.analysis.cells import cell_results
    from codi_eval.analysis.labels import cell_labels
    from codi_eval.analysis.outputs import run_briefs
    from codi_eval.store.experiments import find_experiment

    store = request.app[STORE]
    exp = await find_experiment(store, request.match_info["experiment"])
    key = request.query.get("key", "")
    page = _page_number(request)
    total, runs = await run_briefs(store, exp, key, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    cell_key = runs[0].cell if runs else key
    results = await cell_results(store, exp.id)
    result = next((r for r in results if r.key == cell_key), None)
    return _render(
        request,
        "cell.html",
        title=f"{cell_key} · {exp.name}",
        exp=exp,
        cell=result,
        cell_key=cell_key,
        label=cell_labels(results).labels.get(cell_key, cell_key),
        runs=runs,
        total=total,
        page=page,
        pages=max(1, math.ceil(total / PAGE_SIZE)),
    )


def _timeline(spans: Sequence[Any]) -> list[dict[str, Any]]:
    end = max((s.start_ms + (s.duration_ms or 0.0) for s in spans), default=0.0) or 1.0
    return [
        {
            "span": s,
            "left": 100.0 * s.start_ms / end,
            "width": max(0.4, 100.0 * (s.duration_ms or 0.0) / end),
        }
        for s in spans
    ]


async def run_page(request: web.Request) -> web.StreamResponse:
    from codi_eval.analysis.labels import cell_labels
    from codi_eval.analysis.outputs import experiment_cells, run_output
    from codi_eval.store.experiments import find_experiment

    store = request.app[STORE]
    run = await run_output(store, None, request.match_info["run_id"])
    exp = await find_experiment(store, run.experiment_id)
    label = cell_labels(await experiment_cells(store, exp)).labels.get(run.cell, run.cell)
    return _render(
        request,
        "run.html",
        title=f"{run.item_key} · {label} · {exp.name}",
        exp=exp,
        run=run,
        label=label,
        timeline=_timeline(run.spans),
    )


async def traces_page(request: web.Request) -> web.StreamResponse:
    from codi_eval.viewer.queries import user_traces

    page = _page_number(request)
    total, rows = await user_traces(
        request.app[STORE], limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    return _render(
        request,
        "traces.html",
        title="Traces",
        traces=rows,
        total=total,
        page=page,
        pages=max(1, math.ceil(total / PAGE_SIZE)),
    )


async def trace_page(request: web.Request) -> web.StreamResponse:
    from codi_eval.analysis.outputs import span_timeline
    from codi_eval.viewer.queries import trace_detail

    raw = request.match_info["trace_id"]
    try:
        trace_id = uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"{raw!r} is not a trace id") from None
    detail = await trace_detail(request.app[STORE], trace_id)
    if detail is None:
        raise NotFound(f"no trace {trace_id} in the store {safe_url(request.app[STORE].url)}")
    if detail.run_id is not None:
        raise web.HTTPFound(f"/runs/{detail.run_id}")
    return _render(
        request,
        "trace.html",
        title=detail.row.name,
        trace=detail,
        timeline=_timeline(span_timeline(detail.spans)),
    )


def add_viewer(app: web.Application, store: Store) -> None:
    """Mount the viewer's pages and its stylesheet on ``app`` (see the package docstring)."""
    app[STORE] = store
    app[TEMPLATES] = _environment()
    routes = [
        ("/", "experiments", experiments_page),
        ("/experiments/{experiment}", "experiment", experiment_page),
        ("/experiments/{experiment}/cell", "cell", cell_page),
        ("/runs/{run_id}", "run", run_page),
        ("/traces", "traces", traces_page),
        ("/traces/{trace_id}", "trace", trace_page),
    ]
    for path, name, handler in routes:
        app.router.add_get(path, _page(handler), name=f"view.{name}")
    app.router.add_static("/static/", STATIC, name="view.static", append_version=False)
