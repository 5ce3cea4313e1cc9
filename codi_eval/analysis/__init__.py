"""Analysis: experiment results as DataFrames, paired statistics, density curves, reports.

A notebook needs only this face::

    from codi_eval.analysis import load_runs, load_cells, compare_runs, density_curves_frame
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codi_eval.analysis.frames import (
        CELL_FACTORS,
        JUDGE_METRIC,
        cells_frame,
        compare_all,
        compare_cells,
        compare_runs,
        factor_differences,
        load_cells,
        load_runs,
        load_spans,
        metric_columns,
        resolve_experiment,
        run_sync,
        runs_frame,
        spans_frame,
        summarize_cells,
    )
    from codi_eval.analysis.stats import (
        ICC_MIN_ITEMS,
        ConfidenceInterval,
        PairedComparison,
        bootstrap_ci,
        compare_many,
        holm,
        icc,
        icc_with_reason,
        krippendorff_alpha,
        mean_ci,
        minimum_detectable_effect,
        paired_comparison,
        paired_t_power,
        required_n,
        sign_flip_min_n,
        sign_flip_power,
        spearman,
        t_quantile,
    )

_FRAMES = (
    "CELL_FACTORS",
    "JUDGE_METRIC",
    "cells_frame",
    "compare_all",
    "compare_cells",
    "compare_runs",
    "factor_differences",
    "load_cells",
    "load_runs",
    "load_spans",
    "metric_columns",
    "resolve_experiment",
    "run_sync",
    "runs_frame",
    "spans_frame",
    "summarize_cells",
)
_STATS = (
    "ICC_MIN_ITEMS",
    "ConfidenceInterval",
    "PairedComparison",
    "bootstrap_ci",
    "compare_many",
    "holm",
    "icc",
    "icc_with_reason",
    "krippendorff_alpha",
    "mean_ci",
    "minimum_detectable_effect",
    "paired_comparison",
    "paired_t_power",
    "required_n",
    "sign_flip_min_n",
    "sign_flip_power",
    "spearman",
    "t_quantile",
)
_EXPORTS = {
    **{name: "codi_eval.analysis.frames" for name in _FRAMES},
    **{name: "codi_eval.analysis.stats" for name in _STATS},
}

__all__ = [
    "ICC_MIN_ITEMS",
    "CELL_FACTORS",
    "JUDGE_METRIC",
    "ConfidenceInterval",
    "PairedComparison",
    "bootstrap_ci",
    "cells_frame",
    "compare_all",
    "compare_cells",
    "compare_many",
    "compare_runs",
    "factor_differences",
    "holm",
    "icc",
    "icc_with_reason",
    "krippendorff_alpha",
    "load_cells",
    "load_runs",
    "load_spans",
    "mean_ci",
    "metric_columns",
    "minimum_detectable_effect",
    "paired_comparison",
    "paired_t_power",
    "required_n",
    "resolve_experiment",
    "run_sync",
    "runs_frame",
    "spans_frame",
    "sign_flip_min_n",
    "sign_flip_power",
    "spearman",
    "summarize_cells",
    "t_quantile",
]


def __getattr__(name: str) -> Any:
    # Imported on first use, so importing codi_eval.analysis.cells (the CLI) loads no pandas.
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'codi_eval.analysis' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
