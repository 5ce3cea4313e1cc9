"""judge-check: re-judgements recorded as evaluations; a deterministic judge's retest is perfect."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from codi_eval.analysis.frames import runs_frame
from codi_eval.analysis.reliability import judge_check, retest_statistics
from codi_eval.errors import InputError
from codi_eval.store.engine import Store
from codi_eval.store.models import Evaluation
from tests.cli_helpers import run_cli
from tests.test_frames import seed_experiment


async def test_re_judgements_are_recorded_as_evaluations_on_the_run_traces(store: Store) -> None:
    seeded = await seed_experiment(store, n_items=3, repeats=1, failed={(0, 0, 0)})
    result = await judge_check(store, seeded.name, judges=["offline"], repeats=2)
    assert result.n_summaries == 4 * 3 - 1
    assert result.recorded == 2 * 11
    async with store.session() as session:
        rows = (await session.scalars(select(Evaluation))).all()
    checks = [e for e in rows if (e.meta_data or {}).get("judge_check")]
    assert len(checks) == 22
    assert {e.metric_name for e in checks} == {"summary_quality"}
    assert {e.meta_data["judge"] for e in checks} == {"offline"}
    assert sorted({e.meta_data["repeat"] for e in checks}) == [0, 1]
    assert {e.meta_data["check_id"] for e in checks} == {result.check_id}
    ok_traces = {t for k, t in seeded.trace_ids.items() if k != (0, 0, 0)}
    assert {e.trace_id for e in checks} == ok_traces
    assert all(e.status == "ok" and e.score is not None for e in checks)
    # The experiment's own scores are untouched by the re-judgements.
    runs = await runs_frame(store, seeded.name)
    assert runs["summary_quality"].tolist() == pytest.approx(
        runs["judge_score"].tolist(), nan_ok=True
    )


async def test_offline_judge_retest_is_reported_perfect_not_as_a_number(store: Store) -> None:
    seeded = await seed_experiment(store, n_items=4, repeats=1)
    result = await judge_check(store, seeded.name, repeats=3, limit=5)
    (offline,) = result.judges
    assert offline.judge == "offline" and offline.n_summaries == 5
    assert offline.perfect_retest
    assert offline.icc is None and offline.alpha is None
    assert offline.max_sd == 0.0
    assert "perfect test-retest" in offline.verdict
    assert set(offline.metric_correlations) == {"judge_score", "entity_density", "rouge_l"}
    assert json.dumps(result.to_dict())  # JSON-ready


async def test_two_judges_report_agreement_between_them(store: Store) -> None:
    seeded = await seed_experiment(store, n_items=3, repeats=1)
    # The same deterministic judge twice: agreement between them must be perfect.
    result = await judge_check(store, seeded.name, judges=["offline", "offline", "offline"],
                               repeats=1)  # fmt: skip
    assert len(result.judges) == 1  # duplicates collapse
    assert "needs at least 2 repeats" in result.judges[0].verdict


async def test_judge_check_rejects_bad_input(store: Store) -> None:
    seeded = await seed_experiment(store, n_items=2, repeats=1)
    with pytest.raises(InputError):
        await judge_check(store, seeded.name, repeats=0)
    with pytest.raises(InputError):
        await judge_check(store, seeded.name, judges=["no-such-provider:model"])
    empty = await seed_experiment(store, name="empty", n_items=0)
    with pytest.raises(InputError, match="no succeeded runs"):
        await judge_check(store, empty.name)


def test_retest_statistics_handle_no_variance_and_noise() -> None:
    constant = np.full((5, 3), 0.5)
    stats = retest_statistics(constant)
    assert stats["perfect"] and stats["icc"] is None and stats["alpha"] is None
    rng = np.random.default_rng(1)
    truth = rng.uniform(0, 1, 50)
    noisy = truth[:, None] + rng.normal(0, 0.05, (50, 3))
    stats = retest_statistics(noisy)
    assert not stats["perfect"]
    assert stats["icc"] > 0.9 and stats["alpha"] > 0.9
    assert 0.0 < stats["mean_sd"] <= stats["max_sd"]


def test_judge_check_cli_prints_perfect_retest_and_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jc.db'}"

    async def seed() -> None:
        s = await Store.open(url)
        try:
            await seed_experiment(s, name="jc", n_items=3, repeats=1)
        finally:
            await s.close()

    asyncio.run(seed())
    done = run_cli("judge-check", "jc", "--repeats", "2", "--limit", "4", db_url=url)
    assert done.returncode == 0, done.stderr
    assert "perfect test-retest" in done.stdout
    as_json = run_cli("judge-check", "jc", "--repeats", "2", "--json", db_url=url)
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["judges"][0]["perfect_retest"] is True and data["recorded"] == 24
    bad = run_cli("judge-check", "missing-exp", db_url=url)
    assert bad.returncode == 2
