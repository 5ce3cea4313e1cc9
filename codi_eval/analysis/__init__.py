"""Analysis: experiment results as DataFrames, paired statistics, density curves, reports.

A notebook needs only this face::

    from codi_eval.analysis import load_runs, load_cells, compare_runs, density_curves_frame
"""

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
    ConfidenceInterval,
    PairedComparison,
    bootstrap_ci,
    compare_many,
    holm,
    icc,
    krippendorff_alpha,
    mean_ci,
    minimum_detectable_effect,
    paired_comparison,
    paired_t_power,
    required_n,
    spearman,
    t_quantile,
)

__all__ = [
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
    "spearman",
    "summarize_cells",
    "t_quantile",
]
