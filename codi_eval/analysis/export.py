"""An experiment's runs as a table to hand to another tool (CSV, JSON Lines, Parquet)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pandas as pd

from codi_eval.analysis.outputs import JUDGE_METRIC


def export_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """A :func:`~codi_eval.analysis.frames.runs_frame` as exported: one row per run, the
    judge's score under its one name, ``summary_quality`` (the frame's ``judge_score``
    holds the same number and is dropped; a run whose judge left no evaluation keeps its
    stored score there), with the final summary and the judge's reason."""
    frame = runs.copy()
    if JUDGE_METRIC in frame.columns:
        frame[JUDGE_METRIC] = frame[JUDGE_METRIC].fillna(frame["judge_score"])
        frame = frame.drop(columns=["judge_score"])
    else:
        frame = frame.rename(columns={"judge_score": JUDGE_METRIC})
    frame.attrs = {}
    return frame


def jsonl_lines(frame: pd.DataFrame) -> Iterator[str]:
    """One JSON object per row (missing values are null; ``/`` is not escaped, unlike
    pandas' own writer)."""
    columns = list(frame.columns)
    for row in frame.itertuples(index=False, name=None):
        record = {c: _plain(v) for c, v in zip(columns, row, strict=True)}
        yield json.dumps(record, ensure_ascii=False, default=str)


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _plain(value.item())
    return value
