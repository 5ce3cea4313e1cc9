"""The analysis notebooks run top to bottom on a fresh store (they run the quickstart themselves)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ["experiment_analysis.ipynb", "prompt_ab_comparison.ipynb"]


@pytest.fixture(scope="module")
def fresh_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One empty SQLite store for both notebooks: the first one runs the quickstart into it."""
    return f"sqlite:///{tmp_path_factory.mktemp('notebooks') / 'codi_eval.db'}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(
    name: str, fresh_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODI_EVAL_DATABASE_URL", fresh_store)
    for key in ("OPIK_URL_OVERRIDE", "OPIK_API_KEY", "OPIK_WORKSPACE", "GEMINI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OPIK_SENTRY_ENABLE", "false")
    monkeypatch.setenv("OPIK_ANALYTICS_ENABLE", "false")
    # jupyter_client starts a kernelspec whose argv is "python" with sys.executable: this venv.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    client = NotebookClient(
        nb, kernel_name="python3", timeout=300,
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    )  # fmt: skip
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = "".join(
        o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs
    )
    assert f"python: {sys.executable}" in outputs
    assert "runs" in outputs
    images = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs
              if "image/png" in o.get("data", {})]  # fmt: skip
    assert images, "the notebook drew no figure"
