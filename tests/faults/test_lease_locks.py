"""Lease renewal never waits on a run a store write has locked: with two write transactions
in flight, a waiting renewal and a writer could each hold a run the other wants (a deadlock
PostgreSQL resolves by aborting one of them)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from codi_eval.experiments.leases import claim_runs, renew_leases
from codi_eval.experiments.runner import prepare
from codi_eval.experiments.spec import load_spec
from codi_eval.settings import Settings
from codi_eval.store.engine import Store
from codi_eval.store.models import Run
from tests.test_runner import small_dataset, spec_text, write_spec

pytestmark = pytest.mark.postgres


async def test_renewing_leases_skips_a_run_a_write_holds_instead_of_waiting(
    tmp_path: Path, pg_store_url: str
) -> None:
    store = await Store.open(pg_store_url)
    try:
        spec = load_spec(write_spec(tmp_path, spec_text(small_dataset(tmp_path, 2), density="[1]")))
        prepared = await prepare(store, spec, Settings.from_env({}))
        claimed = await claim_runs(store, prepared.experiment.id, "w1", 10)
        assert len(claimed) == 4
        async with store.transaction() as writer:
            # What a store write does first: lock the runs whose trace it stores.
            await writer.execute(
                select(Run.id).where(Run.id == claimed[0].run_id).with_for_update()
            )
            renewed = await asyncio.wait_for(renew_leases(store, "w1"), timeout=5)
        assert renewed == 3
        assert await renew_leases(store, "w1") == 4  # the next beat renews it
    finally:
        await store.close()
