"""A small real experiment (the quickstart's matrix on a few items, offline model and judge),
run through the real runner into a store, for the tests of what users read back."""

from __future__ import annotations

from pathlib import Path

from codi_eval.datasets import load_jsonl, write_jsonl
from codi_eval.experiments.runner import Runner, prepare
from codi_eval.experiments.spec import load_spec
from codi_eval.settings import Settings
from codi_eval.store.engine import Store
from tests.cli_helpers import ROOT

QUICK = ROOT / "datasets" / "quickstart.jsonl"
CELLS = [
    "cod_iteration@1/d1/offline",
    "cod_iteration@1/d3/offline",
    "cod_iteration@2/d1/offline",
    "cod_iteration@2/d3/offline",
]


def small_spec(tmp_path: Path, n: int = 4, name: str = "quick-small") -> Path:
    items = load_jsonl(QUICK)[:n]
    data = tmp_path / f"{name}.jsonl"
    write_jsonl(items, data)
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(
        f"name: {name}\ndataset: {data}\ninstruction: Explain what this function does and how.\n"
        "matrix:\n  prompt: [cod_iteration@1, cod_iteration@2]\n  density_iterations: [1, 3]\n"
        "  model: [offline]\njudge: {model: offline, prompt: summary_judge@1}\n"
        "metrics: [summary_quality, entity_density, identifier_coverage, rouge_l, compression]\n"
        "run: {concurrency: 4}\nopik: {enabled: false}\n"
    )
    return spec


async def run_small(store: Store, tmp_path: Path, n: int = 4, name: str = "quick-small") -> str:
    """Runs the small experiment; returns its id."""
    spec = load_spec(small_spec(tmp_path, n, name))
    settings = Settings.from_env({})
    prepared = await prepare(store, spec, settings)
    await Runner(store, spec, prepared, settings=settings).run()
    return str(prepared.experiment.id)


async def summarize_one(store: Store, code: str = "def add(a, b):\n    return a + b\n") -> str:
    """One traced `summarize` outside any experiment (like `codi-eval summarize`); its trace id."""
    from codi_eval.prompts import ensure_seeded
    from codi_eval.summarize import build_summarizer
    from codi_eval.tracing import StoreSink, Tracer

    settings = Settings.from_env({})
    await ensure_seeded(store, settings.prompts_dir)
    sink = StoreSink(store)
    summarizer = await build_summarizer(
        store, Tracer(sink), model="offline", judge="offline", density_iterations=2
    )
    outcome = await summarizer.summarize(code=code, trace_kwargs={"tags": ["cli"]})
    await sink.close()
    return str(outcome.trace_id)
