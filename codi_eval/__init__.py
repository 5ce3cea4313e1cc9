"""codi-eval: evaluation and experiment harness for AI code summarization.

The public face for notebooks and scripts; the machinery lives in modules named by what
they are (store, tracing, models, judging, summarize, experiments, analysis).

    from codi_eval import load_runs, load_cells, compare_cells, paired_comparison

Names are imported on first use, so ``import codi_eval`` (and the CLI) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # analysis (pandas): frames, comparisons, curves, reports
    "load_runs": "codi_eval.analysis",
    "load_cells": "codi_eval.analysis",
    "load_spans": "codi_eval.analysis",
    "runs_frame": "codi_eval.analysis",
    "cells_frame": "codi_eval.analysis",
    "spans_frame": "codi_eval.analysis",
    "compare_cells": "codi_eval.analysis",
    "compare_all": "codi_eval.analysis",
    "density_curves": "codi_eval.analysis.curves",
    "paired_comparison": "codi_eval.analysis",
    "write_report": "codi_eval.analysis.report",
    "holm": "codi_eval.analysis",
    "mean_ci": "codi_eval.analysis",
    # running things
    "Store": "codi_eval.store",
    "Tracer": "codi_eval.tracing",
    "StoreSink": "codi_eval.tracing",
    "get_model": "codi_eval.models",
    "get_judge": "codi_eval.judging",
    "Summarizer": "codi_eval.summarize",
    "build_summarizer": "codi_eval.summarize",
    "load_spec": "codi_eval.experiments.spec",
    "Runner": "codi_eval.experiments.runner",
    "prepare": "codi_eval.experiments.runner",
    "Settings": "codi_eval.settings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'codi_eval' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
