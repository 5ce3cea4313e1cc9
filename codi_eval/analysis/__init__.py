"""Analysis: experiment results as DataFrames, paired statistics, density curves, reports.

A notebook needs only this face::

    from codi_eval.analysis import load_runs, load_cells, compare_runs, density_curves_frame
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use: the CLI reaches analysis.cells and analysis.stats without pandas.
_EXPORTS = {
    "CELL_FACTORS": "codi_eval.analysis.frames",
    "ConfidenceInterval": "codi_eval.analysis.stats",
    "ICC_MIN_ITEMS": "codi_eval.analysis.stats",
    "JUDGE_METRIC": "codi_eval.analysis.frames",
    "PairedComparison": "codi_eval.analysis.stats",
    "bootstrap_ci": "codi_eval.analysis.stats",
    "cells_frame": "codi_eval.analysis.frames",
    "compare_all": "codi_eval.analysis.frames",
    "compare_cells": "codi_eval.analysis.frames",
    "compare_many": "codi_eval.analysis.stats",
    "compare_runs": "codi_eval.analysis.frames",
    "factor_differences": "codi_eval.analysis.frames",
    "holm": "codi_eval.analysis.stats",
    "icc": "codi_eval.analysis.stats",
    "icc_with_reason": "codi_eval.analysis.stats",
    "krippendorff_alpha": "codi_eval.analysis.stats",
    "load_cells": "codi_eval.analysis.frames",
    "load_runs": "codi_eval.analysis.frames",
    "load_spans": "codi_eval.analysis.frames",
    "mean_ci": "codi_eval.analysis.stats",
    "metric_columns": "codi_eval.analysis.frames",
    "minimum_detectable_effect": "codi_eval.analysis.stats",
    "paired_comparison": "codi_eval.analysis.stats",
    "paired_t_power": "codi_eval.analysis.stats",
    "required_n": "codi_eval.analysis.stats",
    "resolve_experiment": "codi_eval.analysis.frames",
    "run_sync": "codi_eval.analysis.frames",
    "runs_frame": "codi_eval.analysis.frames",
    "sign_flip_min_n": "codi_eval.analysis.stats",
    "sign_flip_power": "codi_eval.analysis.stats",
    "spans_frame": "codi_eval.analysis.frames",
    "spearman": "codi_eval.analysis.stats",
    "summarize_cells": "codi_eval.analysis.frames",
    "t_quantile": "codi_eval.analysis.stats",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'codi_eval.analysis' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
