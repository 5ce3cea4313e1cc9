"""Attacks 2, 3 and 5: work without bounds — sleeping forever, slow bodies, no quotas.

One user's 1,000 ``offline?latency_ms=1e12`` requests kept running after the clients left
(RSS 229 → 519 MB); twenty slow ``PATCH`` bodies held every pooled connection and locked
everyone out, ``/health`` included; 5,000 requests and 200 concurrent summaries from one
token were all served. Now work is bounded per request, per user and per server.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from codi_eval.store.models import Trace
from tests.api_helpers import API, Api, _api, assert_error

FIB = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
SLOW = (("offline", "offline"), ("slow", "offline?latency_ms=3000"))


async def _slow_body(port: int, token: str, hold_s: float) -> bytes:
    """A PATCH whose body arrives one byte at a time: the slowloris of request bodies."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b'{"opik_enabled": true}'
    writer.write(
        b"PATCH " + API.encode() + b"/users/me/opik-settings HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\nAuthorization: Bearer " + token.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
    )
    await writer.drain()
    deadline = time.monotonic() + hold_s
    sent = 0
    try:
        while time.monotonic() < deadline and sent < len(body) - 1:
            writer.write(body[sent : sent + 1])
            await writer.drain()
            sent += 1
            await asyncio.sleep(hold_s / len(body))
        return await asyncio.wait_for(reader.read(4096), timeout=hold_s + 5)
    finally:
        writer.close()


async def test_slow_bodies_hold_no_connection_and_time_out(
    pg_store_url: str, aiohttp_client: Any
) -> None:
    # A pool of 1 (+1 overflow): twenty slow clients would once have held it all.
    async for api in _api(pg_store_url, aiohttp_client, pool_size=1, api_body_timeout_s=1.5):
        alice = await api.user("alice")
        token = alice["Authorization"].split()[1]
        port = api.client.server.port
        slow = [asyncio.create_task(_slow_body(port, token, 3.0)) for _ in range(20)]
        await asyncio.sleep(0.5)  # all twenty are trickling now
        started = time.monotonic()
        assert (await api.call("GET", "/health"))[0] == 200
        bob = await api.user("bob")
        status, _ = await api.call("GET", "/traces", bob)
        assert status == 200
        assert time.monotonic() - started < 2.0  # not 30 s, not a 500
        answers = await asyncio.gather(*slow)
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[0][:200]


async def test_a_client_that_goes_away_cancels_its_summary(
    pg_store_url: str, aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async for api in _api(pg_store_url, aiohttp_client, api_models=SLOW):
        services = api.services
        alice = await api.user("alice")
        await api.call("PATCH", "/users/me/opik-settings", alice, json={"opik_enabled": True})
        request = asyncio.create_task(
            api.client.post(
                API + "/summarize/code", json={"code": FIB, "model": "slow"}, headers=alice
            )
        )
        await asyncio.sleep(0.5)
        assert services.limits.in_flight == 1
        request.cancel()  # the client closes its connection
        with pytest.raises(asyncio.CancelledError):
            await request
        for _ in range(50):
            if services.limits.in_flight == 0:
                break
            await asyncio.sleep(0.05)
        assert services.limits.in_flight == 0  # cancelled within moments, not after 3 s
        await asyncio.sleep(0.2)
        assert await api.count(Trace) in (0, 1)  # a cancelled trace is recorded as an error
        assert "Traceback" not in caplog.text


async def test_the_server_refuses_beyond_its_cap_with_503_and_retry_after(
    pg_store_url: str, aiohttp_client: Any
) -> None:
    async for api in _api(
        pg_store_url,
        aiohttp_client,
        api_models=SLOW,
        api_max_in_flight=3,
        api_user_concurrent_summaries=10,
    ):
        users = [await api.user(f"u{i}") for i in range(5)]
        calls = [
            asyncio.create_task(
                api.call("POST", "/summarize/code", u, json={"code": FIB, "model": "slow"})
            )
            for u in users
        ]
        await asyncio.sleep(0.3)
        status, body = await api.call("GET", "/traces", users[0])
        assert_error(status, body, 503, "server_busy")
        health = await api.call("GET", "/health")
        assert health[0] == 200  # health is never refused for capacity
        results = await asyncio.gather(*calls)
        assert sorted(s for s, _ in results) == [200, 200, 200, 503, 503]


async def test_one_user_over_quota_gets_429_while_another_is_served(
    pg_store_url: str, aiohttp_client: Any
) -> None:
    async for api in _api(
        pg_store_url,
        aiohttp_client,
        api_user_requests_per_minute=20,
        api_user_summaries_per_minute=3,
    ):
        alice, bob = await api.user("alice"), await api.user("bob")
        statuses = [(await api.call("GET", "/traces", alice))[0] for _ in range(25)]
        assert statuses[:20] == [200] * 20 and set(statuses[20:]) == {429}
        resp = await api.client.get(API + "/traces", headers=alice)
        assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
        assert_error(resp.status, await resp.json(), 429, "quota_exceeded")
        assert (await api.call("GET", "/traces", bob))[0] == 200
        summaries = [
            (await api.call("POST", "/summarize/code", bob, json={"code": FIB}))[0]
            for _ in range(4)
        ]
        assert summaries == [200, 200, 200, 429]


async def test_concurrent_summaries_per_user_are_capped(
    pg_store_url: str, aiohttp_client: Any
) -> None:
    async for api in _api(
        pg_store_url, aiohttp_client, api_models=SLOW, api_user_concurrent_summaries=2
    ):
        alice, bob = await api.user("alice"), await api.user("bob")
        calls = [
            asyncio.create_task(
                api.call("POST", "/summarize/code", alice, json={"code": FIB, "model": "slow"})
            )
            for _ in range(5)
        ]
        await asyncio.sleep(0.3)
        other = await api.call("POST", "/summarize/code", bob, json={"code": FIB})
        assert other[0] == 200
        results = await asyncio.gather(*calls)
        assert sorted(s for s, _ in results) == [200, 200, 429, 429, 429]
        refused = next(b for s, b in results if s == 429)
        assert_error(429, refused, 429, "too_many_summaries")


async def test_a_request_past_its_deadline_is_504(pg_store_url: str, aiohttp_client: Any) -> None:
    async for api in _api(pg_store_url, aiohttp_client, api_models=SLOW, api_request_timeout_s=0.5):
        alice = await api.user("alice")
        started = time.monotonic()
        status, body = await api.call(
            "POST", "/summarize/code", alice, json={"code": FIB, "model": "slow"}
        )
        assert_error(status, body, 504, "request_timeout")
        assert time.monotonic() - started < 2.5


async def test_hostile_summaries_leave_no_work_behind(pg_api: Api) -> None:
    """200 hostile requests (refused parameters, clients that leave): nothing keeps running."""
    alice = await pg_api.user("alice")
    services = pg_api.services

    async def hostile(i: int) -> None:
        body = {"code": FIB, "model": ["offline?latency_ms=1e12", "offline?latency_ms=inf"][i % 2]}
        request = asyncio.create_task(
            pg_api.client.post(API + "/summarize/code", json=body, headers=alice)
        )
        if i % 3 == 0:
            await asyncio.sleep(0)
            request.cancel()
        try:
            resp = await request
            assert resp.status in (400, 429)
            resp.release()
        except asyncio.CancelledError:
            pass

    await asyncio.gather(*(hostile(i) for i in range(200)))
    await asyncio.sleep(0.3)
    assert services.limits.in_flight == 0
    # Idle keep-alive connections wait for their next request; nothing else is left running.
    busy = [t for t in asyncio.all_tasks() if "RequestHandler.start" not in repr(t.get_coro())]
    assert len(busy) <= 2, busy
