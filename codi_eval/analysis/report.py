"""One self-contained HTML report of an experiment, readable offline.

The report holds the cells table, density curves, A/B differences with intervals (a forest
plot of every pair of cells that differ in exactly one factor: prompt, density iterations
or model) and score distributions. Figures are matplotlib PNGs inlined as base64 ``data:``
URIs; styles are inline; nothing is fetched from anywhere.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from codi_eval.analysis.cells import CellInfo
from codi_eval.analysis.curves import density_curves_frame, plot_density_curves
from codi_eval.analysis.frames import (
    JUDGE_METRIC,
    ExperimentRef,
    factor_differences,
    metric_columns,
    resolve_experiment,
    runs_frame,
    summarize_cells,
)
from codi_eval.analysis.labels import cell_labels
from codi_eval.analysis.stats import PairedComparison, compare_many
from codi_eval.store.engine import Store

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "ab_comparisons",
    "build_report",
    "figure_data_uri",
    "plot_forest",
    "plot_score_distributions",
    "render_report",
    "run_status",
    "sample_run_ids",
    "write_report",
]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;
max-width:1200px;color:#1d1d1f;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2.2rem;
border-bottom:1px solid #ddd;padding-bottom:.2rem}
p.note{color:#555;font-size:.92rem;max-width:60rem}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th{background:#f4f4f6}td.text,th.text{text-align:left}
tr.sig td{background:#eef7ee}
img{max-width:100%;height:auto;border:1px solid #eee}
code{background:#f4f4f6;padding:0 .2rem}
td .key{display:block;color:#666;font-size:.75rem;font-family:ui-monospace,Menlo,monospace}
span.ci{color:#666;font-size:.78rem;white-space:nowrap}
div.samples{display:grid;grid-template-columns:repeat(auto-fit,minmax(26rem,1fr));gap:.8rem}
div.sample{border:1px solid #ddd;border-radius:6px;padding:.4rem .7rem;font-size:.88rem}
div.sample h3{font-size:.95rem;margin:.2rem 0}
p.summary{margin:.3rem 0;border-left:3px solid #1f5fbf;padding-left:.5rem}
p.reason{color:#555;font-size:.8rem;margin:.2rem 0}
table.side td{text-align:left;vertical-align:top;max-width:32rem}
mark{background:#ffe58a}
"""


def figure_data_uri(fig: Figure, dpi: int = 110) -> str:
    """The figure as a ``data:image/png;base64,...`` URI (no PNG metadata, no file)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def ab_comparisons(
    runs: pd.DataFrame, metric: str = JUDGE_METRIC, **options: Any
) -> list[tuple[str, PairedComparison]]:
    """Paired comparisons of every pair of cells that differ in exactly one factor.

    Returns ``[(factor, comparison)]`` in cell order, ``b - a`` with ``a`` the earlier cell,
    over succeeded runs paired by item, Holm-adjusted as one family. Empty when the
    experiment has a single cell.
    """
    cells: dict[str, dict[str, Any]] = {
        str(row.cell): {"prompt": row.prompt, "density_iterations": row.density_iterations,
                   "model": row.model}
        for row in runs.drop_duplicates("cell").itertuples(index=False)
    }  # fmt: skip
    pairs = factor_differences(cells)
    if not pairs or metric not in runs.columns:
        return []
    ok = runs[runs["status"] == "succeeded"]
    cols = ["item_key", "repeat", metric]
    family = {
        (a, b): (ok.loc[ok["cell"] == a, cols], ok.loc[ok["cell"] == b, cols],
                 {"label_a": a, "label_b": b})
        for a, b, _ in pairs
    }  # fmt: skip
    results = compare_many(family, item_col="item_key", value_col=metric, metric=metric, **options)
    return [(factor, results[(a, b)]) for a, b, factor in pairs]


def plot_forest(comparisons: Sequence[tuple[str, PairedComparison]], metric: str) -> Figure:
    """Forest plot: each pair's mean difference (b - a) with its 95% interval (the inverted
    sign-flip test).

    Pairs whose Holm-adjusted p-value is at most alpha are drawn filled; a dashed line
    marks no difference.
    """
    from matplotlib.figure import Figure

    n = max(1, len(comparisons))
    fig = Figure(figsize=(9, 0.45 * n + 1.4), layout="constrained")
    ax = fig.subplots()
    for i, (_factor, c) in enumerate(comparisons):
        y = n - 1 - i
        if c.mean_diff is None:
            continue
        low = c.ci_low if c.ci_low is not None else c.mean_diff
        high = c.ci_high if c.ci_high is not None else c.mean_diff
        colour = "C2" if c.significant and c.mean_diff > 0 else "C3" if c.significant else "C0"
        ax.plot([low, high], [y, y], color=colour, linewidth=2)
        ax.plot([c.mean_diff], [y], marker="o", color=colour,
                markerfacecolor=colour if c.significant else "white")  # fmt: skip
    ax.axvline(0.0, color="#888", linestyle="--", linewidth=1)
    ax.set_yticks(range(n))
    labels = [f"{c.label_b}  vs  {c.label_a}  [{factor}]" for factor, c in comparisons]
    ax.set_yticklabels(list(reversed(labels)) if labels else [""], fontsize=8)
    ax.set_xlabel(f"difference in {metric} (b − a), 95% CI (inverted sign-flip test)")
    ax.grid(axis="x", alpha=0.3)
    return fig


def plot_score_distributions(runs: pd.DataFrame, metric: str = "judge_score") -> Figure:
    """Box plot with jittered points of ``metric`` per cell (succeeded runs)."""
    from matplotlib.figure import Figure

    ok = runs[runs["status"] == "succeeded"]
    cells = list(dict.fromkeys(runs["cell"]))
    data = [ok.loc[ok["cell"] == c, metric].dropna().to_numpy(dtype=np.float64) for c in cells]
    fig = Figure(figsize=(max(6, 1.6 * len(cells) + 2), 4), layout="constrained")
    ax = fig.subplots()
    if cells:
        ax.boxplot(data, showfliers=False)
        rng = np.random.default_rng(0)
        for i, values in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.15, 0.15, values.size), values, s=8, alpha=0.5,
                       color="C0")  # fmt: skip
        ax.set_xticks(range(1, len(cells) + 1))
        ax.set_xticklabels(cells, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.grid(axis="y", alpha=0.3)
    return fig


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float | np.floating):
        number = float(value)
        return (
            f"{number:.{digits}g}" if abs(number) < 1e-3 and number != 0 else f"{number:.{digits}f}"
        )
    return html.escape(str(value))


def _table(
    frame: pd.DataFrame, text_columns: Sequence[str] = (), row_classes: Sequence[str] = ()
) -> str:
    head = "".join(
        f'<th class="text">{html.escape(str(c))}</th>' if c in text_columns
        else f"<th>{html.escape(str(c))}</th>"
        for c in frame.columns
    )  # fmt: skip
    body = []
    for i, row in enumerate(frame.itertuples(index=False)):
        cells = "".join(
            f'<td class="text">{_fmt(v)}</td>' if c in text_columns else f"<td>{_fmt(v)}</td>"
            for c, v in zip(frame.columns, row, strict=True)
        )
        cls = f' class="{row_classes[i]}"' if i < len(row_classes) and row_classes[i] else ""
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(fig: Figure, alt: str, figure_id: str) -> str:
    return f'<img id="{figure_id}" alt="{html.escape(alt)}" src="{figure_data_uri(fig)}">'


def run_status(stored: str, statuses: Mapping[str, int]) -> str:
    """What the experiment's runs say about it, not only its stored status: an experiment
    whose every run failed did not "finish"."""
    failed, ok = statuses.get("failed", 0), statuses.get("succeeded", 0)
    unfinished = sum(v for k, v in statuses.items() if k not in ("failed", "succeeded"))
    total = failed + ok + unfinished
    if total and failed == total:
        return f"failed: every run failed ({failed})"
    if unfinished:
        return f"unfinished: {unfinished} of {total} runs not done"
    if failed:
        return f"{stored or 'finished'}, {failed} of {total} runs failed"
    return stored or "finished"


def _cell_cell(key: str, label: str) -> str:
    if label == key:
        return f'<td class="text">{html.escape(key)}</td>'
    return f'<td class="text">{html.escape(label)}<span class="key">{html.escape(key)}</span></td>'


def _cost(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    return "$0" if value == 0 else f"${float(value):.4f}"


def _ms(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{float(value):,.0f} ms"


def _cells_table(cells: pd.DataFrame, metrics: Sequence[str], labels: Mapping[str, str]) -> str:
    """The cells table, narrow enough for a laptop screen: cell, n, summary_quality with its
    interval, the metrics, failures, tokens, cost, latency (units shown)."""
    shown = [m for m in metrics if m != JUDGE_METRIC]
    head = (
        '<th class="text">cell</th><th>n</th><th>summary_quality [95% CI]</th>'
        + "".join(f"<th>{html.escape(m)}</th>" for m in shown)
        + "<th>failed</th><th>tokens</th><th>cost</th><th>latency p50 / p95</th>"
    )
    rows = []
    for r in cells.to_dict("records"):
        ci = (
            f' <span class="ci">[{_fmt(r["judge_ci_low"])}, {_fmt(r["judge_ci_high"])}]</span>'
            if r["judge_ci_low"] is not None and not pd.isna(r["judge_ci_low"])
            else ""
        )
        pending = f' <span class="ci">+{r["pending"]} pending</span>' if r["pending"] else ""
        rows.append(
            "<tr>" + _cell_cell(str(r["cell"]), labels.get(str(r["cell"]), str(r["cell"])))
            + f"<td>{r['succeeded']}</td><td>{_fmt(r['judge_mean'])}{ci}</td>"
            + "".join(f"<td>{_fmt(r.get(m))}</td>" for m in shown)
            + f"<td>{r['failed']}{pending}</td><td>{int(r['total_tokens']):,}</td>"
            + f"<td>{_cost(r['cost'])}</td>"
            + f"<td>{_ms(r['latency_p50_ms'])} / {_ms(r['latency_p95_ms'])}</td></tr>"
        )  # fmt: skip
    return f'<table id="cells"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _marked(text: str, entities: Sequence[str]) -> str:
    from codi_eval.analysis.outputs import mark_entities

    return "".join(
        f"<mark>{html.escape(piece)}</mark>" if is_entity else html.escape(piece)
        for piece, is_entity in mark_entities(text, list(entities))
    )


def sample_run_ids(runs: pd.DataFrame, metric: str = JUDGE_METRIC, pairs: int = 4) -> list[str]:
    """The runs the report shows in full: each cell's best and worst succeeded run by
    summary_quality, and for the first ``pairs`` A/B pairs the 3 items where b and a differ
    most (their runs on both sides)."""
    ok = runs[(runs["status"] == "succeeded") & runs["judge_score"].notna()]
    chosen: list[str] = []
    for _cell, group in ok.groupby("cell", sort=False):
        ordered = group.sort_values(["judge_score", "item_key"], ascending=[False, True])
        chosen += [str(ordered.iloc[0]["run_id"]), str(ordered.iloc[-1]["run_id"])]
    for a, b in _pairs(runs)[:pairs]:
        for item in _most_different(runs, a, b, metric):
            for cell in (a, b):
                hit = runs[(runs["cell"] == cell) & (runs["item_key"] == item)]
                chosen += [str(v) for v in hit["run_id"].head(1)]
    return list(dict.fromkeys(chosen))


def _pairs(runs: pd.DataFrame) -> list[tuple[str, str]]:
    cells: dict[str, dict[str, Any]] = {
        str(row.cell): {"prompt": row.prompt, "density_iterations": row.density_iterations,
                        "model": row.model}
        for row in runs.drop_duplicates("cell").itertuples(index=False)
    }  # fmt: skip
    return [(a, b) for a, b, _ in factor_differences(cells)]


def _most_different(runs: pd.DataFrame, a: str, b: str, metric: str, n: int = 3) -> list[str]:
    if metric not in runs.columns:
        return []
    ok = runs[runs["status"] == "succeeded"]
    per_item = ok[ok["cell"].isin([a, b])].pivot_table(
        index="item_key", columns="cell", values=metric, aggfunc="mean"
    )
    if a not in per_item or b not in per_item:
        return []
    diff = (per_item[b] - per_item[a]).dropna()
    order = diff.abs().sort_values(ascending=False, kind="stable")
    return [str(i) for i in order.index[:n] if order[i] > 0]


def _sample_block(run: Any, heading: str) -> str:
    iterations = "".join(
        f"<li>iteration {it.number}: added "
        + (", ".join(f"<mark>{html.escape(e)}</mark>" for e in it.added_entities) or "nothing new")
        + "</li>"
        for it in run.iterations
    )
    return (
        f'<div class="sample"><h3>{heading}</h3>'
        f'<p class="summary">{html.escape(run.summary or "—")}</p>'
        + (f'<ul class="iterations">{iterations}</ul>' if iterations else "")
        + f'<p class="reason">judge: {html.escape(run.judge_reason or "no reason recorded")}</p>'
        "</div>"
    )


def _samples(runs: pd.DataFrame, samples: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    out = []
    for cell in dict.fromkeys(runs["cell"]):
        mine = [r for r in samples.values() if r.cell == cell and r.summary_quality is not None]
        if not mine:
            continue
        mine.sort(key=lambda r: (-(r.summary_quality or 0.0), r.item_key))
        picks = [("best", mine[0])] + ([("worst", mine[-1])] if len(mine) > 1 else [])
        label = labels.get(str(cell), str(cell))
        for which, run in picks:
            heading = (
                f"{html.escape(label)} · {which}: {html.escape(run.item_key)} "
                f'<span class="ci">summary_quality {_fmt(run.summary_quality)}</span>'
            )
            out.append(_sample_block(run, heading))
    return f'<div class="samples" id="samples">{"".join(out)}</div>'


def _side_by_side(
    runs: pd.DataFrame,
    comparisons: Sequence[tuple[str, PairedComparison]],
    metric: str,
    samples: Mapping[str, Any],
    labels: Mapping[str, str],
) -> str:
    by_cell_item = {(r.cell, r.item_key): r for r in samples.values()}
    parts = [
        "<h3>Where a and b differ most</h3>",
        f'<p class="note">For each pair, the items whose {html.escape(metric)} differs most '
        "between the two cells, with both summaries side by side.</p>",
    ]
    for _factor, c in comparisons[:4]:
        rows = []
        for item in _most_different(runs, c.label_a, c.label_b, metric):
            a, b = by_cell_item.get((c.label_a, item)), by_cell_item.get((c.label_b, item))
            if a is None or b is None:
                continue
            rows.append(
                f"<tr><td>{html.escape(item)}</td>"
                f"<td>{_fmt(a.summary_quality)} · {html.escape(a.summary or '—')}</td>"
                f"<td>{_fmt(b.summary_quality)} · {html.escape(b.summary or '—')}</td></tr>"
            )
        if rows:
            la, lb = labels.get(c.label_a, c.label_a), labels.get(c.label_b, c.label_b)
            parts.append(
                f'<table class="side"><thead><tr><th class="text">item</th>'
                f'<th class="text">a: {html.escape(la)}</th><th class="text">b: {html.escape(lb)}'
                f"</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            )
    return "".join(parts) if len(parts) > 2 else ""


def render_report(
    runs: pd.DataFrame,
    experiment: dict[str, Any],
    metric: str = JUDGE_METRIC,
    samples: Mapping[str, Any] | None = None,
) -> str:
    """The report's HTML for a :func:`~codi_eval.analysis.frames.runs_frame`.

    ``experiment`` supplies ``name``, ``id``, ``status``, ``created_at`` and ``spec`` (any
    may be missing). ``metric`` is the A/B metric (default the judge's summary_quality).
    ``samples`` maps run ids to their :class:`~codi_eval.analysis.outputs.RunOutput` (see
    :func:`sample_run_ids`): each cell's best and worst outputs and the side-by-side A/B
    summaries are shown from them.
    """
    name = str(experiment.get("name") or runs.attrs.get("experiment_name") or "experiment")
    cells = summarize_cells(runs)
    curves = density_curves_frame(runs)
    comparisons = ab_comparisons(runs, metric)
    metrics = metric_columns(runs)
    n_items = runs["item_key"].nunique()
    statuses = runs["status"].value_counts().to_dict()
    status = run_status(
        str(experiment.get("status", "")), {str(k): int(v) for k, v in statuses.items()}
    )
    labels = cell_labels(
        CellInfo(str(r["cell"]), str(r["prompt"]), int(r["density_iterations"]), str(r["model"]))
        for r in cells.to_dict("records")
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>codi-eval report: {html.escape(name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Experiment {html.escape(name)}</h1>",
        f'<p class="note">id <code>{html.escape(str(experiment.get("id", "")))}</code> · status '
        f'<b id="status">{html.escape(status)}</b> · {len(runs)} runs over '
        f"{runs['cell'].nunique()} cells × {n_items} items · "
        + ", ".join(f"{html.escape(str(k))}: {v}" for k, v in statuses.items())
        + f" · metrics: {html.escape(', '.join(metrics) or 'none')} · generated "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}</p>",
    ]
    spec = experiment.get("spec") or {}
    judge = spec.get("judge") or {}
    if judge:
        parts.append(
            f'<p class="note">Judge: {html.escape(str(judge.get("model")))} with prompt '
            f"{html.escape(str(judge.get('prompt')))}. A judge named <code>offline</code> is a "
            "deterministic heuristic, not a language model: treat its scores as a baseline.</p>"
        )

    parts.append("<h2>Cells</h2>")
    parts.append(
        '<p class="note">One row per cell (prompt × density iterations × model). '
        "<b>summary_quality</b> is the judge's score: the mean over succeeded runs with its 95% "
        "Student-t interval; metric columns are means over succeeded runs; tokens and cost are "
        "sums (cost <i>unknown</i> when a model has no price); latency percentiles are per run, "
        "end to end.</p>"
    )
    parts.append(_cells_table(cells, metrics, labels.labels))
    if labels.shared:
        parts.append(f'<p class="note">Every cell: {html.escape(", ".join(labels.shared))}.</p>')
    if samples:
        parts.append("<h2>Sample outputs</h2>")
        parts.append(
            '<p class="note">Each cell\'s best and worst item by summary_quality: the final '
            "summary, the entities each Chain-of-Density iteration added, and the judge's "
            "reason. <code>codi-eval show EXPERIMENT --cell CELL --item ITEM</code> prints a run "
            "in full; <code>codi-eval view</code> browses them all.</p>"
        )
        parts.append(_samples(runs, samples, labels.labels))

    parts.append("<h2>Density curves</h2>")
    parts.append(
        '<p class="note">Mean of each score against the number of Chain-of-Density iterations, '
        "one line per prompt version and model, with 95% intervals over items (repeats of an "
        "item are averaged first).</p>"
    )
    if len(curves):
        parts.append(_img(plot_density_curves(curves), "density curves", "density-curves"))
    else:
        parts.append("<p>No succeeded runs yet.</p>")

    parts.append(f"<h2>A/B differences on {html.escape(metric)}</h2>")
    parts.append(
        '<p class="note">Every pair of cells that differ in exactly one factor, compared on '
        "the same items (b − a, repeats averaged per item): mean difference with the 95% "
        "interval and the p-value of one sign-flip test, Holm-adjusted over all pairs "
        "shown. Highlighted rows are significant after adjustment. MDE is the smallest true "
        "difference this many items would detect with 80% power.</p>"
    )
    if comparisons:
        parts.append(_img(plot_forest(comparisons, metric), "A/B forest plot", "ab-forest"))
        table = pd.DataFrame([{
            "b": c.label_b, "a": c.label_a, "factor": factor, "n": c.n, "mean a": c.mean_a,
            "mean b": c.mean_b, "diff": c.mean_diff, "ci low": c.ci_low, "ci high": c.ci_high,
            "p": c.p_value, "p holm": c.p_adjusted, "wins/ties/losses":
                f"{c.wins}/{c.ties}/{c.losses}", "effect d": c.effect_size, "MDE": c.mde,
        } for factor, c in comparisons])  # fmt: skip
        classes = ["sig" if c.significant else "" for _, c in comparisons]
        parts.append(_table(table, ["b", "a", "factor", "wins/ties/losses"], classes))
        parts.append("<ul>" + "".join(f"<li>{html.escape(c.summary())}</li>" for _, c in comparisons)
                     + "</ul>")  # fmt: skip
        if samples:
            parts.append(_side_by_side(runs, comparisons, metric, samples, labels.labels))
    elif not (runs["status"] == "succeeded").any():
        parts.append("<p>No run succeeded, so there is nothing to compare.</p>")
    elif metric not in runs.columns:
        parts.append(f"<p>No succeeded run has a {html.escape(metric)} score to compare.</p>")
    else:
        parts.append("<p>No pair of cells differs in exactly one factor.</p>")

    parts.append("<h2>Score distributions</h2>")
    parts.append(
        '<p class="note">Judge scores of succeeded runs per cell: the box spans the middle '
        "half with the median inside, whiskers reach 1.5 IQR, dots are single runs.</p>"
    )
    if runs["judge_score"].notna().any():
        parts.append(_img(plot_score_distributions(runs), "score distributions", "score-dist"))
    else:
        parts.append("<p>No judge scores yet.</p>")

    failed = runs[runs["status"] == "failed"]
    if len(failed):
        parts.append("<h2>Failures</h2>")
        errors = (failed.groupby(["cell", "error_class"], dropna=False).size()
                  .reset_index(name="runs"))  # fmt: skip
        parts.append(_table(errors, ["cell", "error_class"]))
    parts.append("</body></html>")
    return "\n".join(parts)


async def build_report(store: Store, experiment: ExperimentRef, metric: str = JUDGE_METRIC) -> str:
    """The HTML report of a stored experiment (see :func:`render_report`)."""
    from codi_eval.analysis.outputs import run_outputs

    exp = await resolve_experiment(store, experiment)
    runs = await runs_frame(store, exp)
    info = {"name": exp.name, "id": str(exp.id), "status": exp.status, "spec": exp.spec,
            "created_at": exp.created_at}  # fmt: skip
    chosen = sample_run_ids(runs, metric)
    samples = {r.run_id: r for r in await run_outputs(store, exp, run_ids=chosen)}
    return render_report(runs, info, metric, samples)


async def write_report(
    store: Store, experiment: ExperimentRef, path: str | Path, metric: str = JUDGE_METRIC
) -> Path:
    """Write :func:`build_report` to ``path`` (UTF-8; parent directories created)."""
    target = Path(path)
    text = await build_report(store, experiment, metric)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target
