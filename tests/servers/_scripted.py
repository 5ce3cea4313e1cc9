"""What the fake LLM servers share: scripted faults, a seeded fault rate, a request log,
and two ways to run (inside a test's event loop, or in a thread for subprocess tests).

Fault kinds (strings, or dicts with parameters):
  "rate_limit"   429, ``{"kind": "rate_limit", "retry_after": 2}`` adds a Retry-After header
  "server_error" 500 (``status`` may choose another 5xx)
  "hang"         wait ``seconds`` (default 30) before answering normally
  "empty"        a 200 with no candidates / choices
  "malformed"    a 200 whose text is truncated JSON
  "garbage"      a 200 whose body is not JSON at all
  "blocked"      the provider's "blocked" answer
  "bad_request"  400, "auth" 403
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Fault = str | dict[str, Any]
Responder = Callable[[dict[str, Any]], "str | dict[str, Any]"]

FAULT_KINDS = (
    "rate_limit",
    "server_error",
    "hang",
    "empty",
    "malformed",
    "garbage",
    "blocked",
    "bad_request",
    "auth",
)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    model: str | None = None
    fault: str | None = None  # the fault this request was answered with, if any
    at: float = field(default_factory=time.monotonic)  # when it arrived


def _normalize(fault: Fault) -> dict[str, Any]:
    spec = {"kind": fault} if isinstance(fault, str) else dict(fault)
    if spec.get("kind") not in FAULT_KINDS:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULT_KINDS)}")
    return spec


_FENCE = re.compile(r"```[A-Za-z0-9_+-]*\n(.*?)```", re.S)


def default_text(prompt: str) -> str:
    """A plausible answer for the prompts codi-eval sends, so the server can stand in for a model.

    Judge prompts (they ask for a "score") get ``{"score": 0.8, "reason": ...}``; Chain of
    Density iteration prompts (they name ``missing_entities``/``denser_summary``) get that
    JSON, naming identifiers from the prompt's code block; anything else gets plain prose.
    """
    lowered = prompt.lower()
    if "missing_entities" in lowered or "denser_summary" in lowered:
        code = _FENCE.search(prompt)
        names: list[str] = []
        for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]{2,}", code.group(1) if code else prompt):
            if word not in names and word not in (
                "def",
                "return",
                "self",
                "None",
                "for",
                "while",
                "import",
            ):
                names.append(word)
        picked = names[:2] or ["input"]
        summary = (
            "The function "
            + " and ".join(f"`{n}`" for n in picked)
            + " processes its input and returns a result."
        )
        return json.dumps({"missing_entities": picked, "denser_summary": summary})
    if "score" in lowered:
        return json.dumps({"score": 0.8, "reason": "Accurate and concise; names the main calls."})
    return "The code processes its input step by step and returns a result."


class ScriptedServer:
    """Base class: subclasses add routes and the provider's wire format."""

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        faults: list[Fault] | None = None,
        fault_rate: float = 0.0,
        fault_kinds: tuple[str, ...] = ("rate_limit", "server_error", "hang"),
        seed: int = 0,
        hang_s: float = 30.0,
        retry_after: float | None = 1.0,
        require_api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float = 0.0,
    ) -> None:
        self.responder = responder
        self.faults: deque[dict[str, Any]] = deque(_normalize(f) for f in faults or [])
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError("fault_rate must be within [0, 1]")
        self.fault_rate = fault_rate
        self.fault_kinds = tuple(_normalize(k)["kind"] for k in fault_kinds)
        self._rng = random.Random(seed)
        self.hang_s = hang_s
        self.retry_after = retry_after
        self.require_api_key = require_api_key
        self.host = host
        self.port = port
        self.latency_s = latency_s  # every answer takes this long (for tests that kill a run)
        self.extra_routes: list[web.RouteDef] = []
        self.requests: list[RecordedRequest] = []
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # --- scripting -------------------------------------------------------------------
    def script(self, *faults: Fault) -> None:
        """Queue faults: each is used by exactly one upcoming request, in order."""
        with self._lock:
            self.faults.extend(_normalize(f) for f in faults)

    def _next_fault(self) -> dict[str, Any] | None:
        with self._lock:
            if self.faults:
                return self.faults.popleft()
            if self.fault_rate and self._rng.random() < self.fault_rate:
                return {"kind": self._rng.choice(self.fault_kinds)}
        return None

    # --- subclass hooks --------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def check_auth(self, request: web.Request) -> bool:
        raise NotImplementedError

    def error(
        self,
        status: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> web.Response:
        raise NotImplementedError

    def success(self, body: dict[str, Any], model: str, text: str) -> dict[str, Any]:
        raise NotImplementedError

    def empty(self, model: str) -> dict[str, Any]:
        raise NotImplementedError

    def blocked(self, model: str) -> web.Response:
        raise NotImplementedError

    def prompt_of(self, body: dict[str, Any]) -> str:
        raise NotImplementedError

    # --- the shared request path -----------------------------------------------------
    async def handle(self, request: web.Request, model: str) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        record = RecordedRequest(request.method, request.path, dict(request.headers), body, model)
        with self._lock:
            self.requests.append(record)
        if self.require_api_key is not None and not self.check_auth(request):
            record.fault = "auth"
            return self.error(403, "API key not valid.")
        if not isinstance(body, dict):
            return self.error(400, "Invalid JSON payload received.")
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        fault = self._next_fault()
        if fault is not None:
            record.fault = fault["kind"]
            response = await self._apply(fault, body, model)
            if response is not None:
                return response
        return web.json_response(self._answer(body, model))

    def _answer(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        responder = self.responder or (lambda b: default_text(self.prompt_of(b)))
        out = responder(body)
        return out if isinstance(out, dict) else self.success(body, model, str(out))

    async def _apply(
        self, fault: dict[str, Any], body: dict[str, Any], model: str
    ) -> web.StreamResponse | None:
        kind = fault["kind"]
        if kind == "rate_limit":
            return self.error(
                429,
                "Resource has been exhausted (e.g. check quota).",
                retry_after=fault.get("retry_after", self.retry_after),
            )
        if kind == "server_error":
            return self.error(int(fault.get("status", 500)), "Internal error encountered.")
        if kind == "bad_request":
            return self.error(400, "Request contains an invalid argument.")
        if kind == "auth":
            return self.error(403, "The caller does not have permission.")
        if kind == "hang":
            assert self._closing is not None
            try:
                # Ends early when the server stops, so teardown is never held up.
                await asyncio.wait_for(
                    self._closing.wait(), float(fault.get("seconds", self.hang_s))
                )
            except TimeoutError:
                pass
            return None  # then answer normally, if the client is still there
        if kind == "empty":
            return web.json_response(self.empty(model))
        if kind == "malformed":
            return web.json_response(
                self.success(body, model, '{"missing_entities": ["x"], "denser_summ')
            )
        if kind == "garbage":
            return web.Response(text="<html>upstream proxy error", content_type="application/json")
        if kind == "blocked":
            return self.blocked(model)
        raise AssertionError(kind)

    # --- running ---------------------------------------------------------------------
    async def start(self) -> str:
        self._closing = asyncio.Event()
        app = web.Application()
        app.add_routes([*self.routes(), *self.extra_routes])
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://{self.host}:{port}"
        return self.base_url

    async def close(self) -> None:
        if self._closing is not None:
            self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ScriptedServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start_in_thread(self) -> ScriptedServer:
        """Run in a background thread with its own loop; ``base_url`` is ready on return.

        For tests that run the CLI in a subprocess. Call :meth:`stop` when done.
        """
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._thread_loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.close())
            loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("server did not start within 10 s")
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop a server started with :meth:`start_in_thread`."""
        loop, thread = self._thread_loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = self._thread_loop = None
