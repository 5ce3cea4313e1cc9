"""Density curves: how scores move with Chain-of-Density iterations, per prompt and model.

:func:`density_curves_frame` turns a runs frame into one row per (prompt, model,
density_iterations, metric) with the mean over items and a 95% Student-t interval;
:func:`plot_density_curves` draws one panel per metric with a line per prompt × model.
Repeats of an item are averaged first, so ``n`` counts items, not runs, and the interval
reflects item-to-item variation (the unit we generalise over).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from codi_eval.analysis.frames import (
    JUDGE_METRIC,
    ExperimentRef,
    metric_columns,
    runs_frame,
)
from codi_eval.analysis.stats import mean_ci
from codi_eval.store.engine import Store

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["CURVE_COLUMNS", "density_curves", "density_curves_frame", "plot_density_curves"]

CURVE_COLUMNS = [
    "prompt", "model", "density_iterations", "metric", "n", "mean", "ci_low", "ci_high",
]  # fmt: skip


def density_curves_frame(
    runs: pd.DataFrame, metrics: Sequence[str] | None = None, alpha: float = 0.05
) -> pd.DataFrame:
    """Mean of each metric against ``density_iterations`` per prompt version and model.

    ``runs`` is a :func:`~codi_eval.analysis.frames.runs_frame`; only succeeded runs count.
    ``metrics`` defaults to ``judge_score`` followed by every metric column except
    ``summary_quality`` (which duplicates ``judge_score``). Returns the columns
    :data:`CURVE_COLUMNS` in long form, sorted by metric (in the given order), prompt, model
    and density; ``ci_low``/``ci_high`` are NaN for points with fewer than two items.
    """
    chosen = list(metrics) if metrics is not None else _default_metrics(runs)
    ok = runs[runs["status"] == "succeeded"]
    records: list[dict[str, Any]] = []
    keys = ["prompt", "model", "density_iterations"]
    for order, metric in enumerate(chosen):
        if metric not in ok.columns:
            raise ValueError(f"no column {metric!r} in the runs frame")
        per_item = ok.groupby([*keys, "item_key"], sort=True)[metric].mean().reset_index()
        for (prompt, model, density), group in per_item.groupby(keys, sort=True):
            ci = mean_ci(group[metric].to_numpy(dtype=np.float64), alpha=alpha)
            records.append({
                "prompt": prompt, "model": model, "density_iterations": int(str(density)),
                "metric": metric, "n": ci.n,
                "mean": np.nan if ci.estimate is None else ci.estimate,
                "ci_low": np.nan if ci.low is None else ci.low,
                "ci_high": np.nan if ci.high is None else ci.high, "_order": order,
            })  # fmt: skip
    frame = pd.DataFrame.from_records(records, columns=[*CURVE_COLUMNS, "_order"])
    frame = frame.sort_values(["_order", "prompt", "model", "density_iterations"], kind="stable")
    frame = frame.drop(columns="_order").reset_index(drop=True)
    for col in ("mean", "ci_low", "ci_high"):
        frame[col] = frame[col].astype("float64")
    return frame


def _default_metrics(runs: pd.DataFrame) -> list[str]:
    return ["judge_score", *(m for m in metric_columns(runs) if m != JUDGE_METRIC)]


async def density_curves(
    store: Store, experiment: ExperimentRef, metrics: Sequence[str] | None = None
) -> pd.DataFrame:
    """:func:`density_curves_frame` of a stored experiment (one query)."""
    return density_curves_frame(await runs_frame(store, experiment), metrics)


def plot_density_curves(
    curves: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    *,
    title: str | None = None,
    columns: int = 3,
) -> Figure:
    """A figure with one panel per metric: mean ± 95% CI against density iterations.

    One line per prompt × model (the same colour in every panel); error bars are the
    intervals of :func:`density_curves_frame` (omitted where undefined). Returns a
    matplotlib ``Figure`` that is not attached to pyplot's state, so it can be saved or
    shown without leaking figures.
    """
    from matplotlib.figure import Figure

    chosen = list(metrics) if metrics is not None else list(dict.fromkeys(curves["metric"]))
    panels = max(1, len(chosen))
    ncols = min(columns, panels)
    nrows = -(-panels // ncols)
    fig = Figure(figsize=(4.6 * ncols, 3.4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    series = list(dict.fromkeys(zip(curves["prompt"], curves["model"], strict=True)))
    colours = {s: f"C{i % 10}" for i, s in enumerate(series)}
    # Lines that coincide (e.g. the offline model ignores the prompt) are nudged apart.
    densities = sorted(set(curves["density_iterations"].tolist()))
    step = min(np.diff(densities)) if len(densities) > 1 else 1.0
    dodge = {s: (i - (len(series) - 1) / 2) * 0.03 * step for i, s in enumerate(series)}
    for ax, metric in zip(axes, chosen, strict=False):
        part = curves[curves["metric"] == metric]
        for (prompt, model), line in part.groupby(["prompt", "model"], sort=False):
            line = line.sort_values("density_iterations")
            x = line["density_iterations"].to_numpy(dtype=np.float64) + dodge[(prompt, model)]
            y = line["mean"].to_numpy(dtype=np.float64)
            low = np.nan_to_num(y - line["ci_low"].to_numpy(dtype=np.float64), nan=0.0)
            high = np.nan_to_num(line["ci_high"].to_numpy(dtype=np.float64) - y, nan=0.0)
            label = prompt if len({m for _, m in series}) == 1 else f"{prompt} · {model}"
            ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=label,
                        color=colours[(prompt, model)])  # fmt: skip
        ax.set_title(metric)
        ax.set_xlabel("density iterations")
        ax.set_ylabel("mean (95% CI)")
        ticks = sorted(set(part["density_iterations"].tolist()))
        if ticks:
            ax.set_xticks(ticks)
        ax.grid(alpha=0.3)
    for ax in axes[len(chosen) :]:
        ax.set_visible(False)
    if series:
        handles, labels = axes[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)))
    if title:
        fig.suptitle(title)
    return fig
