"""The tracer: nesting per asyncio task, errors recorded and re-raised, batching, no-op when off."""

from __future__ import annotations

import asyncio
import random
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from codi_eval.ids import uuid7, uuid7_time_ms
from codi_eval.store.engine import Store
from codi_eval.store.models import Evaluation, Span, Trace
from codi_eval.tracing import NOOP, CollectingSink, StoreSink, Tracer


async def _summarize_like(tracer: Tracer, i: int) -> None:
    async with tracer.trace(f"trace-{i}", trace_type="summarization", input={"i": i}) as t:
        async with tracer.span("chain_of_density", metadata={"i": i}):
            for step in range(3):
                async with tracer.span(f"iteration {step + 1}", type="llm", metadata={"i": i}) as s:
                    await asyncio.sleep(random.random() / 1000)
                    s.set_usage(10 * (step + 1), 5)
        async with tracer.span("judge", type="judge", metadata={"i": i}):
            await asyncio.sleep(random.random() / 1000)
            tracer.evaluation("summary_quality", i / 1000, "fine")
        t.set_output({"i": i})


async def test_200_concurrent_traces_each_keep_their_own_tree() -> None:
    sink = CollectingSink()
    tracer = Tracer(sink)
    await asyncio.gather(*(_summarize_like(tracer, i) for i in range(200)))
    assert len(sink.trees) == 200
    for tree in sink.trees:
        i = tree.trace.input_data["i"]
        assert tree.trace.output_data == {"i": i}
        assert len(tree.spans) == 5
        assert {s.trace_id for s in tree.spans} == {tree.trace.id}
        assert all(s.meta_data["i"] == i for s in tree.spans)  # no span leaked across tasks
        by_name = {s.name: s for s in tree.spans}
        cod = by_name["chain_of_density"]
        assert cod.parent_span_id is None
        for step in (1, 2, 3):
            assert by_name[f"iteration {step}"].parent_span_id == cod.id
        assert by_name["judge"].parent_span_id is None
        assert [e.score for e in tree.evaluations] == [i / 1000]


async def test_exception_in_a_span_is_recorded_and_reraised() -> None:
    sink = CollectingSink()
    tracer = Tracer(sink)
    with pytest.raises(ZeroDivisionError):
        async with tracer.trace("boom"):
            async with tracer.span("outer"):
                async with tracer.span("inner", type="tool"):
                    1 / 0  # noqa: B018
    tree = sink.trees[0]
    assert tree.trace.status == "error" and tree.trace.error["type"] == "ZeroDivisionError"
    assert {s.name: s.status for s in tree.spans} == {"inner": "error", "outer": "error"}
    assert all(s.end_time is not None and s.duration_ms >= 0 for s in tree.spans)


async def test_decorator_records_inputs_outputs_and_nesting() -> None:
    sink = CollectingSink()
    tracer = Tracer(sink)

    @tracer.track(type="tool")
    async def add(a: int, b: int) -> int:
        return a + b

    @tracer.track()
    def double(x: int) -> int:
        return 2 * x

    async with tracer.trace("t"):
        async with tracer.span("parent") as parent:
            assert await add(2, 3) == 5
            assert double(4) == 8
    spans = {s.name: s for s in sink.trees[0].spans}
    assert spans[add.__qualname__].input_data == {"a": 2, "b": 3}
    assert spans[add.__qualname__].output_data == 5
    assert spans[add.__qualname__].parent_span_id == parent.id
    assert spans[double.__qualname__].output_data == 8


async def test_disabled_tracing_records_nothing_and_still_runs_the_code() -> None:
    sink = CollectingSink()
    tracer = Tracer(sink, enabled=False)

    @tracer.track()
    async def work() -> str:
        return "done"

    async with tracer.trace("t") as t:
        assert t is NOOP
        async with tracer.span("s") as s:
            assert s is NOOP
            s.set_usage(1, 2)
            assert await work() == "done"
    assert sink.trees == []


async def test_a_per_call_disabled_trace_hides_spans_even_inside_an_enabled_one() -> None:
    sink = CollectingSink()
    tracer = Tracer(sink)
    async with tracer.trace("outer"):
        async with tracer.trace("opted-out", enabled=False):
            async with tracer.span("secret work") as s:
                assert s is NOOP
    assert [t.trace.name for t in sink.trees] == ["outer"]
    assert sink.trees[0].spans == []


async def test_secrets_never_reach_a_trace() -> None:
    sink = CollectingSink()
    tracer = Tracer(sink)
    async with tracer.trace("t", input={"code": "x", "opik_api_key": "sk-live-123"}):
        async with tracer.span("s", input={"headers": {"Authorization": "Bearer abc"}}):
            pass
    row = sink.trees[0].trace.row()
    assert "sk-live-123" not in str(row)
    assert "Bearer abc" not in str(sink.trees[0].spans[0].row())


def test_uuid7_ids_are_version_7_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert all(i.version == 7 and i.variant == "specified in RFC 4122" for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert uuid7_time_ms(ids[-1]) >= uuid7_time_ms(ids[0])


async def test_store_sink_writes_a_burst_in_few_transactions(store: Store) -> None:
    sink = StoreSink(store, max_batch=256, max_delay_s=0.05)
    tracer = Tracer(sink)
    await asyncio.gather(*(_summarize_like(tracer, i) for i in range(120)))
    await sink.close()
    async with store.session() as session:
        assert await session.scalar(select(func.count()).select_from(Trace)) == 120
        assert await session.scalar(select(func.count()).select_from(Span)) == 600
        assert await session.scalar(select(func.count()).select_from(Evaluation)) == 120
        llm = (await session.scalars(select(Span).where(Span.name == "iteration 2"))).first()
        assert llm is not None and llm.prompt_tokens == 20 and llm.total_tokens == 25
    assert sink.batches_written <= 10  # 120 trees, not 120 round trips


async def test_two_writers_keep_two_transactions_in_flight_and_store_every_tree(
    store: Store,
) -> None:
    """While one batch's transaction waits on the database, the next batch is being written."""
    in_flight, most = 0, 0

    class Counting(StoreSink):
        async def _write_once(self, trees):  # type: ignore[no-untyped-def]
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            try:
                await asyncio.sleep(0.02)  # the database's share of the work
                return await super()._write_once(trees)
            finally:
                in_flight -= 1

    sink = Counting(store, max_batch=20, wait_for_commit=False, writers=2)
    tracer = Tracer(sink)
    await asyncio.gather(*(_summarize_like(tracer, i) for i in range(200)))
    await sink.close()
    async with store.session() as session:
        assert await session.scalar(select(func.count()).select_from(Trace)) == 200
        assert await session.scalar(select(func.count()).select_from(Span)) == 1000
    assert most == 2 and sink.trees_written == 200


async def test_a_trace_that_cannot_be_stored_fails_its_submitter_not_its_neighbours(
    store: Store,
) -> None:
    sink = StoreSink(store, max_delay_s=0.05)
    tracer = Tracer(sink)

    async def bad() -> None:
        async with tracer.trace("bad", user_id=999_999):  # no such user: FK violation
            pass

    async def good(i: int) -> None:
        async with tracer.trace(f"good-{i}"):
            pass

    results = await asyncio.gather(bad(), *(good(i) for i in range(5)), return_exceptions=True)
    await sink.close()
    assert isinstance(results[0], Exception)
    assert results[1:] == [None] * 5
    async with store.session() as session:
        assert await session.scalar(select(func.count()).select_from(Trace)) == 5


def test_token_counts_are_not_mistaken_for_secrets() -> None:
    from codi_eval.store.records import jsonable

    cleaned = jsonable(
        {
            "tokens": 245,
            "total_tokens": 3,
            "token": "t",
            "access_token": "a",
            "opik_api_key": "k",
            "Authorization": "Bearer b",
            "client_secret": "s",
        }
    )
    assert cleaned["tokens"] == 245 and cleaned["total_tokens"] == 3
    assert {
        cleaned[k]
        for k in ("token", "access_token", "opik_api_key", "Authorization", "client_secret")
    } == {"[redacted]"}


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    # Any character: COPY's own escapes (tab, newline, backslash), JSON's (quotes, control
    # characters), and NUL and lone surrogates, which no store holds (recorded as U+FFFD).
    | st.text(st.characters(), max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4)
        # Keys from letters that spell no secret's name (those are redacted, by design).
        | st.dictionaries(st.text(alphabet='abé\t\n"\\', max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@example(value={"answer": "a\x00b\ud800c", "n": 2.5e16}, meta={"a": ["\udfff", "\t\\"]})
@given(value=_json_values, meta=st.dictionaries(st.sampled_from(["a", "b\tc", "é"]), _json_values))
def test_json_columns_read_back_as_written(store_url: str, value: object, meta: dict) -> None:  # type: ignore[type-arg]
    """Whatever JSON a span carries is stored and read back equal, on SQLite and through
    PostgreSQL's COPY; a NUL or a lone surrogate (a model's odd answer) reads back as U+FFFD
    instead of failing the trace's write."""

    async def roundtrip() -> tuple[object, object]:
        store = await Store.open(store_url)
        try:
            tracer = Tracer(sink := StoreSink(store))
            async with tracer.trace("json", input={"v": value}) as trace:
                async with tracer.span("s", input=value, metadata=meta):
                    pass
            await sink.close()
            async with store.session() as session:
                span = (await session.scalars(select(Span).where(Span.trace_id == trace.id))).one()
                row = await session.get(Trace, trace.id)
                assert row is not None
                return (span.input_data, span.meta_data), row.input_data
        finally:
            await store.close()

    (span_input, span_meta), trace_input = asyncio.run(roundtrip())
    assert _same(span_input, value) and _same(trace_input, {"v": value})
    assert _same(span_meta, meta)


def _same(read: object, written: object) -> bool:
    """Equal, numbers by value: JSONB keeps numbers as numerics, so 2.5e16 reads back as the
    integer 25000000000000000 (PostgreSQL's normalisation, not a loss)."""
    if isinstance(written, float) and isinstance(read, int | float) and not isinstance(read, bool):
        return float(read) == written
    if isinstance(written, dict) and isinstance(read, dict):
        return read.keys() == written.keys() and all(_same(read[k], written[k]) for k in written)
    if isinstance(written, list) and isinstance(read, list):
        return len(read) == len(written) and all(map(_same, read, written))
    if isinstance(written, str):
        written = re.sub("[\x00\ud800-\udfff]", "\ufffd", written)
    return type(read) is type(written) and read == written
