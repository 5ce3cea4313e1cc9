"""A local stand-in for the Opik REST API, for tests that drive the real opik SDK.

The SDK is pointed here with ``OPIK_URL_OVERRIDE=http://127.0.0.1:PORT/api``. The server
implements the calls opik 2.2 makes for traces, spans, feedback scores, datasets,
experiments, prompts and projects, and records everything in plain dicts so a test can
assert on what arrived. Creates are upserts by id (the SDK may send an id twice), and every
create of an id already present is counted in ``duplicates`` so exactly-once can be checked.
Unknown routes answer 404 and land in ``unknown_requests``: a test can see what the SDK
tried that this server does not speak.

The server always runs on its own thread and event loop, also under ``async with``: the
SDK's calls are blocking, and a blocking call made on the test's loop would otherwise wait
forever for a server that needs that same loop to answer.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import gzip
import json
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web

DownMode = Literal["503", "refuse"]
Handler = Callable[[web.Request, Any], Awaitable[web.StreamResponse]]

SERVER_VERSION = "2.2.122"
WORKSPACE = "default"
_BODY = web.RequestKey("json_body", object)
_PARAMS = web.RequestKey("params", dict)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def _new_id() -> str:
    return str(uuid.uuid4())


def _merge(target: dict[str, Any], update: dict[str, Any]) -> None:
    """Upsert semantics: later non-null fields win, nulls never erase what arrived."""
    for key, value in update.items():
        if value is not None:
            target[key] = value


class OpikServer:
    """Fake Opik backend. Use ``async with OpikServer() as srv`` or
    ``srv.start_in_thread()`` ... ``srv.stop()``; ``srv.url`` is the SDK's base URL."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._down: DownMode | None = None
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget everything recorded (the listener keeps running)."""
        with self._lock:
            self.traces: dict[str, dict[str, Any]] = {}
            self.spans: dict[str, dict[str, Any]] = {}
            # Every score as received, with "entity": "trace" | "span".
            self.scores: list[dict[str, Any]] = []
            # Latest score per entity and name: entity kind -> entity id -> name -> score.
            self.feedback: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
                "trace": {},
                "span": {},
            }
            self.datasets: dict[str, dict[str, Any]] = {}  # by name
            self.dataset_items: dict[str, dict[str, dict[str, Any]]] = {}  # name -> id -> item
            self.experiments: dict[str, dict[str, Any]] = {}  # by id
            self.experiment_items: dict[str, dict[str, Any]] = {}  # by id
            self.prompts: dict[str, dict[str, Any]] = {}  # by name
            self.prompt_versions: dict[str, list[dict[str, Any]]] = {}  # name -> versions
            self.projects: dict[str, dict[str, Any]] = {}  # by name
            self.requests: list[dict[str, Any]] = []
            self.unknown_requests: list[dict[str, Any]] = []
            self.duplicates: collections.Counter[str] = collections.Counter()

    def trace_scores(self, trace_id: str) -> dict[str, dict[str, Any]]:
        """Latest feedback score per name for one trace (upsert by trace id + name)."""
        with self._lock:
            return dict(self.feedback["trace"].get(trace_id, {}))

    def span_scores(self, span_id: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self.feedback["span"].get(span_id, {}))

    def spans_of(self, trace_id: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: v for k, v in self.spans.items() if v.get("trace_id") == trace_id}

    def request_paths(self) -> list[str]:
        with self._lock:
            return [f"{r['method']} {r['path']}" for r in self.requests]

    # ----------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        """Value for OPIK_URL_OVERRIDE (the SDK appends ``/v1/private/...``)."""
        return f"http://{self.host}:{self.port}/api"

    def start_in_thread(self) -> OpikServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start())
            except BaseException as exc:  # surface bind errors to the caller
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="opik-fake-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None
        self._thread = None

    async def __aenter__(self) -> OpikServer:
        return self.start_in_thread()

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> OpikServer:
        return self.start_in_thread()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def set_down(self, mode: DownMode = "503") -> None:
        """Make the server unavailable: "503" answers every request with 503;
        "refuse" closes the listener and open connections, so connects are refused."""
        self._down = mode
        if mode == "refuse":
            self._call(self._close_listener())

    def set_up(self) -> None:
        """Serve again, on the same port."""
        if self._down == "refuse":
            self._call(self._open_listener())
        self._down = None

    def _call(self, coro: Awaitable[None]) -> None:
        assert self._loop is not None, "server is not running"
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _start(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await self._open_listener()

    async def _open_listener(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await self._site.start()
        # Port 0 asks the OS for a free port; keep it so "refuse" can come back on it.
        self.port = self._runner.addresses[-1][1]

    async def _close_listener(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None
        assert self._runner is not None and self._runner.server is not None
        # Closing the listener leaves keep-alive connections open; drop them too, or the
        # SDK's pooled connections would still reach a "down" server.
        await self._runner.server.shutdown(0.1)

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------- plumbing
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        # aiohttp's parser already inflates gzip request bodies; inflate here only if it
        # did not (the magic number is still there), so both behaviours are covered.
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        entry = {
            "method": request.method,
            "path": request.path.removeprefix("/api/"),
            "query": dict(request.query),
            "body": body,
            "gzip": request.headers.get("Content-Encoding", "").lower() == "gzip",
            "headers": dict(request.headers),
        }
        with self._lock:
            self.requests.append(entry)
        if self._down is not None:
            entry["status"] = 503
            return web.json_response({"errors": ["service unavailable"]}, status=503)
        request[_BODY] = body
        response = await handler(request)
        entry["status"] = response.status
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.removeprefix("/api/").rstrip("/")
        parts = path.split("/")
        body = request[_BODY]
        for method, pattern, handler in self._routes():
            if method != request.method or len(pattern) != len(parts):
                continue
            params: dict[str, str] = {}
            for want, got in zip(pattern, parts, strict=True):
                if want.startswith("{"):
                    params[want[1:-1]] = got
                elif want != got:
                    break
            else:
                request[_PARAMS] = params
                with self._lock:
                    return await handler(request, body)
        with self._lock:
            self.unknown_requests.append({"method": request.method, "path": path, "body": body})
        return web.json_response({"errors": [f"no route {request.method} {path}"]}, status=404)

    def _routes(self) -> list[tuple[str, list[str], Handler]]:
        p = "v1/private/"
        table: list[tuple[str, str, Handler]] = [
            ("GET", "is-alive/ping", self._ping),
            ("GET", "is-alive/ver", self._version),
            ("POST", p + "auth", self._auth_check),
            ("GET", p + "auth/workspace", self._workspace_name),
            ("POST", p + "traces/batch", self._create_traces),
            ("POST", p + "traces", self._create_trace),
            ("PATCH", p + "traces/{id}", self._update_trace),
            ("GET", p + "traces/{id}", self._get_trace),
            ("PUT", p + "traces/feedback-scores", self._trace_scores),
            ("POST", p + "spans/batch", self._create_spans),
            ("POST", p + "spans", self._create_span),
            ("PATCH", p + "spans/{id}", self._update_span),
            ("GET", p + "spans/{id}", self._get_span),
            ("PUT", p + "spans/feedback-scores", self._span_scores),
            ("POST", p + "datasets/retrieve", self._retrieve_dataset),
            ("POST", p + "datasets", self._create_dataset),
            ("GET", p + "datasets/{id}", self._get_dataset_by_id),
            ("PUT", p + "datasets/items", self._put_dataset_items),
            ("POST", p + "datasets/items/stream", self._stream_dataset_items),
            ("GET", p + "datasets/{id}/items", self._page_dataset_items),
            ("GET", p + "datasets/{id}/items/experiments/items", self._compare_items),
            ("POST", p + "experiments", self._create_experiment),
            ("GET", p + "experiments", self._find_experiments),
            ("POST", p + "experiments/stream", self._stream_experiments),
            ("GET", p + "experiments/{id}", self._get_experiment),
            ("PATCH", p + "experiments/{id}", self._update_experiment),
            ("POST", p + "experiments/items", self._create_experiment_items),
            ("PUT", p + "experiments/items/bulk", self._bulk_experiment_items),
            ("POST", p + "prompts/versions/retrieve", self._retrieve_prompt_version),
            ("POST", p + "prompts/versions", self._create_prompt_version),
            ("POST", p + "prompts", self._create_prompt),
            ("GET", p + "prompts", self._find_prompts),
            ("GET", p + "prompts/versions/{version_id}", self._get_prompt_version),
            ("GET", p + "prompts/{id}/versions", self._list_prompt_versions),
            ("POST", p + "projects/retrieve", self._retrieve_project),
            ("POST", p + "projects", self._create_project),
            ("GET", p + "projects", self._find_projects),
            ("GET", p + "projects/{id}", self._get_project),
        ]
        return [(m, path.split("/"), h) for m, path, h in table]

    @staticmethod
    def _no_content() -> web.Response:
        return web.Response(status=204)

    @staticmethod
    def _ndjson(items: list[dict[str, Any]], body: Any, limit: int | None) -> web.Response:
        """Opik's streamed reads: one JSON object per line, paged by last_retrieved_id."""
        ordered = sorted(items, key=lambda item: item["id"])
        after = body.get("last_retrieved_id")
        if after:
            ordered = [item for item in ordered if item["id"] > after]
        if limit:
            ordered = ordered[:limit]
        lines = "".join(json.dumps(item) + "\n" for item in ordered)
        return web.Response(body=lines.encode(), content_type="application/octet-stream")

    @staticmethod
    def _not_found(what: str) -> web.Response:
        return web.json_response({"errors": [f"{what} not found"]}, status=404)

    @staticmethod
    def _page(items: list[dict[str, Any]], request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        size = int(request.query.get("size", "100"))
        chunk = items[(page - 1) * size : page * size]
        return web.json_response(
            {"content": chunk, "page": page, "size": len(chunk), "total": len(items)}
        )

    def _project(self, name: str | None) -> dict[str, Any]:
        name = name or "Default Project"
        if name not in self.projects:
            self.projects[name] = {"id": _new_id(), "name": name, "created_at": _now()}
        return self.projects[name]

    # --------------------------------------------------------------- health
    async def _ping(self, request: web.Request, body: Any) -> web.Response:
        return web.json_response({"healthy": True})

    async def _version(self, request: web.Request, body: Any) -> web.Response:
        return web.json_response({"version": SERVER_VERSION})

    async def _auth_check(self, request: web.Request, body: Any) -> web.Response:
        return self._no_content()

    async def _workspace_name(self, request: web.Request, body: Any) -> web.Response:
        return web.json_response({"workspace_name": WORKSPACE})

    # -------------------------------------------------------- traces/spans
    def _upsert(self, kind: str, store: dict[str, dict[str, Any]], item: dict[str, Any]) -> None:
        item_id = item["id"]
        if item_id in store:
            self.duplicates[kind] += 1
        self._project(item.get("project_name"))
        _merge(store.setdefault(item_id, {}), item)

    async def _create_traces(self, request: web.Request, body: Any) -> web.Response:
        for trace in body.get("traces", []):
            self._upsert("traces", self.traces, trace)
        return self._no_content()

    async def _create_trace(self, request: web.Request, body: Any) -> web.Response:
        self._upsert("traces", self.traces, body)
        return web.Response(status=201)

    async def _update_trace(self, request: web.Request, body: Any) -> web.Response:
        record = self.traces.setdefault(request[_PARAMS]["id"], {"id": request[_PARAMS]["id"]})
        _merge(record, body or {})
        return self._no_content()

    async def _get_trace(self, request: web.Request, body: Any) -> web.Response:
        trace = self.traces.get(request[_PARAMS]["id"])
        if trace is None:
            return self._not_found("trace")
        spans = [s for s in self.spans.values() if s.get("trace_id") == trace["id"]]
        return web.json_response(
            {
                **trace,
                "feedback_scores": list(self.trace_scores(trace["id"]).values()),
                "span_count": len(spans),
            }
        )

    async def _create_spans(self, request: web.Request, body: Any) -> web.Response:
        for span in body.get("spans", []):
            self._upsert("spans", self.spans, span)
        return self._no_content()

    async def _create_span(self, request: web.Request, body: Any) -> web.Response:
        self._upsert("spans", self.spans, body)
        return web.Response(status=201)

    async def _update_span(self, request: web.Request, body: Any) -> web.Response:
        record = self.spans.setdefault(request[_PARAMS]["id"], {"id": request[_PARAMS]["id"]})
        _merge(record, body or {})
        return self._no_content()

    async def _get_span(self, request: web.Request, body: Any) -> web.Response:
        span = self.spans.get(request[_PARAMS]["id"])
        if span is None:
            return self._not_found("span")
        return web.json_response(
            {**span, "feedback_scores": list(self.span_scores(span["id"]).values())}
        )

    def _record_scores(self, entity: str, body: Any) -> None:
        for score in body.get("scores", []):
            self.scores.append({**score, "entity": entity})
            # An upsert keyed by (entity id, name), as in Opik. Kept apart from the entity
            # because the SDK's score batches can land before the trace batch does.
            named = self.feedback[entity].setdefault(score["id"], {})
            if score["name"] in named:
                self.duplicates[f"{entity}_scores"] += 1
            named[score["name"]] = score

    async def _trace_scores(self, request: web.Request, body: Any) -> web.Response:
        self._record_scores("trace", body)
        return self._no_content()

    async def _span_scores(self, request: web.Request, body: Any) -> web.Response:
        self._record_scores("span", body)
        return self._no_content()

    # ------------------------------------------------------------ datasets
    def _dataset_public(self, dataset: dict[str, Any]) -> dict[str, Any]:
        items = self.dataset_items.get(dataset["name"], {})
        return {**dataset, "dataset_items_count": len(items)}

    def _dataset_by_id(self, dataset_id: str) -> dict[str, Any] | None:
        return next((d for d in self.datasets.values() if d["id"] == dataset_id), None)

    async def _retrieve_dataset(self, request: web.Request, body: Any) -> web.Response:
        dataset = self.datasets.get(body.get("dataset_name"))
        if dataset is None:
            return self._not_found("dataset")
        return web.json_response(self._dataset_public(dataset))

    async def _create_dataset(self, request: web.Request, body: Any) -> web.Response:
        name = body["name"]
        if name in self.datasets:
            self.duplicates["datasets"] += 1
            return web.json_response({"errors": ["dataset already exists"]}, status=409)
        project = self._project(body.get("project_name"))
        self.datasets[name] = {
            "id": body.get("id") or _new_id(),
            "name": name,
            "description": body.get("description"),
            "project_id": project["id"],
            "created_at": _now(),
        }
        self.dataset_items.setdefault(name, {})
        return web.Response(status=201)

    async def _get_dataset_by_id(self, request: web.Request, body: Any) -> web.Response:
        dataset = self._dataset_by_id(request[_PARAMS]["id"])
        if dataset is None:
            return self._not_found("dataset")
        return web.json_response(self._dataset_public(dataset))

    async def _put_dataset_items(self, request: web.Request, body: Any) -> web.Response:
        name = body.get("dataset_name")
        if name is None and body.get("dataset_id"):
            dataset = self._dataset_by_id(body["dataset_id"])
            name = dataset["name"] if dataset else None
        if name not in self.datasets:
            return self._not_found("dataset")
        items = self.dataset_items.setdefault(name, {})
        for item in body.get("items", []):
            item_id = item.get("id") or _new_id()
            if item_id in items:
                self.duplicates["dataset_items"] += 1
            items[item_id] = {**item, "id": item_id, "dataset_name": name}
        return self._no_content()

    async def _stream_dataset_items(self, request: web.Request, body: Any) -> web.Response:
        items = list(self.dataset_items.get(body.get("dataset_name"), {}).values())
        return self._ndjson(items, body, body.get("steam_limit"))

    async def _page_dataset_items(self, request: web.Request, body: Any) -> web.Response:
        dataset = self._dataset_by_id(request[_PARAMS]["id"])
        if dataset is None:
            return self._not_found("dataset")
        return self._page(list(self.dataset_items.get(dataset["name"], {}).values()), request)

    async def _compare_items(self, request: web.Request, body: Any) -> web.Response:
        """The experiment Compare view: dataset items, each with its experiment items."""
        dataset = self._dataset_by_id(request[_PARAMS]["id"])
        if dataset is None:
            return self._not_found("dataset")
        wanted = set(json.loads(request.query.get("experiment_ids", "[]")))
        rows = []
        for item in self.dataset_items.get(dataset["name"], {}).values():
            linked = [
                {**e, "feedback_scores": list(self.trace_scores(e["trace_id"]).values())}
                for e in self.experiment_items.values()
                if e["dataset_item_id"] == item["id"] and e["experiment_id"] in wanted
            ]
            if linked:
                rows.append(
                    {"id": item["id"], "data": item.get("data"), "experiment_items": linked}
                )
        return self._page(rows, request)

    # --------------------------------------------------------- experiments
    def _experiment_public(self, experiment: dict[str, Any]) -> dict[str, Any]:
        items = [
            e for e in self.experiment_items.values() if e["experiment_id"] == experiment["id"]
        ]
        return {**experiment, "trace_count": len({e["trace_id"] for e in items})}

    async def _create_experiment(self, request: web.Request, body: Any) -> web.Response:
        experiment_id = body.get("id") or _new_id()
        if experiment_id in self.experiments:
            # Opik rejects a second create of the same id; the SDK treats 409 as done.
            self.duplicates["experiments"] += 1
            return web.json_response({"errors": ["experiment already exists"]}, status=409)
        dataset = self.datasets.get(body.get("dataset_name"))
        if dataset is None:
            # Opik creates the dataset on demand when an experiment names an unknown one.
            await self._create_dataset(request, {"name": body.get("dataset_name")})
            dataset = self.datasets[body["dataset_name"]]
        self.experiments[experiment_id] = {
            **body,
            "id": experiment_id,
            "dataset_id": dataset["id"],
            "created_at": _now(),
        }
        return web.Response(status=201)

    async def _find_experiments(self, request: web.Request, body: Any) -> web.Response:
        name = request.query.get("name", "").lower()
        found = [
            self._experiment_public(e)
            for e in self.experiments.values()
            if name in (e.get("name") or "").lower()
        ]
        return self._page(found, request)

    async def _stream_experiments(self, request: web.Request, body: Any) -> web.Response:
        name = (body.get("name") or "").lower()
        found = [
            self._experiment_public(e)
            for e in self.experiments.values()
            if name in (e.get("name") or "").lower()
        ]
        return self._ndjson(found, body, body.get("limit"))

    async def _get_experiment(self, request: web.Request, body: Any) -> web.Response:
        experiment = self.experiments.get(request[_PARAMS]["id"])
        if experiment is None:
            return self._not_found("experiment")
        return web.json_response(self._experiment_public(experiment))

    async def _update_experiment(self, request: web.Request, body: Any) -> web.Response:
        experiment = self.experiments.get(request[_PARAMS]["id"])
        if experiment is None:
            return self._not_found("experiment")
        _merge(experiment, body or {})
        return self._no_content()

    def _add_experiment_item(self, item: dict[str, Any]) -> None:
        item_id = item.get("id") or _new_id()
        if item_id in self.experiment_items:
            self.duplicates["experiment_items"] += 1
        self.experiment_items[item_id] = {**item, "id": item_id}

    async def _create_experiment_items(self, request: web.Request, body: Any) -> web.Response:
        for item in body.get("experiment_items", []):
            self._add_experiment_item(item)
        return self._no_content()

    async def _bulk_experiment_items(self, request: web.Request, body: Any) -> web.Response:
        experiment_id = body.get("experiment_id")
        if experiment_id not in self.experiments:
            await self._create_experiment(
                request,
                {
                    "id": experiment_id,
                    "name": body.get("experiment_name"),
                    "dataset_name": body.get("dataset_name"),
                },
            )
        for record in body.get("items", []):
            trace = record.get("trace") or {
                "id": _new_id(),
                "output": record.get("evaluate_task_result"),
            }
            trace.setdefault("id", _new_id())
            self._upsert("traces", self.traces, trace)
            for span in record.get("spans") or []:
                self._upsert("spans", self.spans, {**span, "trace_id": trace["id"]})
            for score in record.get("feedback_scores") or []:
                self._record_scores("trace", {"scores": [{**score, "id": trace["id"]}]})
            self._add_experiment_item(
                {
                    "experiment_id": experiment_id,
                    "dataset_item_id": record["dataset_item_id"],
                    "trace_id": trace["id"],
                }
            )
        return self._no_content()

    # -------------------------------------------------------------- prompts
    def _latest_version(self, name: str) -> dict[str, Any] | None:
        versions = self.prompt_versions.get(name)
        return versions[-1] if versions else None

    def _add_prompt_version(
        self, name: str, body: dict[str, Any], template_structure: str
    ) -> dict[str, Any]:
        prompt = self.prompts.get(name)
        if prompt is None:
            project = self._project(body.get("project_name"))
            prompt = self.prompts[name] = {
                "id": body.get("id") or _new_id(),
                "name": name,
                "description": body.get("description"),
                "tags": body.get("tags"),
                "template_structure": template_structure,
                "project_id": project["id"],
                "created_at": _now(),
            }
        versions = self.prompt_versions.setdefault(name, [])
        if any(
            v["template"] == body.get("template") and v.get("metadata") == body.get("metadata")
            for v in versions
        ):
            # A second identical version is legal in Opik but is what idempotent callers avoid.
            self.duplicates["prompt_versions"] += 1
        version_id = _new_id()
        version = {
            "id": version_id,
            "prompt_id": prompt["id"],
            "commit": version_id.replace("-", "")[-8:],
            "version_number": f"v{len(versions) + 1}",
            "template": body.get("template"),
            "metadata": body.get("metadata"),
            "type": body.get("type") or "mustache",
            "change_description": body.get("change_description"),
            "tags": body.get("tags"),
            "template_structure": prompt["template_structure"],
            "created_at": _now(),
        }
        versions.append(version)
        prompt["version_count"] = len(versions)
        return version

    async def _retrieve_prompt_version(self, request: web.Request, body: Any) -> web.Response:
        versions = self.prompt_versions.get(body.get("name"), [])
        commit, number = body.get("commit"), body.get("version_number")
        if commit:
            versions = [v for v in versions if v["commit"] == commit]
        if number:
            versions = [v for v in versions if v["version_number"] == number]
        if not versions:
            return self._not_found("prompt version")
        return web.json_response(versions[-1])

    async def _create_prompt(self, request: web.Request, body: Any) -> web.Response:
        if body["name"] in self.prompts:
            self.duplicates["prompts"] += 1
            return web.json_response({"errors": ["prompt already exists"]}, status=409)
        self._add_prompt_version(body["name"], body, body.get("template_structure") or "text")
        return web.Response(status=201)

    async def _create_prompt_version(self, request: web.Request, body: Any) -> web.Response:
        version = {**body.get("version", {}), "project_name": body.get("project_name")}
        created = self._add_prompt_version(
            body["name"], version, body.get("template_structure") or "text"
        )
        return web.json_response(created)

    async def _find_prompts(self, request: web.Request, body: Any) -> web.Response:
        name = request.query.get("name", "").lower()
        found = [p for p in self.prompts.values() if name in p["name"].lower()]
        return self._page(found, request)

    async def _get_prompt_version(self, request: web.Request, body: Any) -> web.Response:
        for versions in self.prompt_versions.values():
            for version in versions:
                if version["id"] == request[_PARAMS]["version_id"]:
                    return web.json_response(version)
        return self._not_found("prompt version")

    async def _list_prompt_versions(self, request: web.Request, body: Any) -> web.Response:
        prompt = next((p for p in self.prompts.values() if p["id"] == request[_PARAMS]["id"]), None)
        if prompt is None:
            return self._not_found("prompt")
        # Newest first, as Opik lists them.
        return self._page(list(reversed(self.prompt_versions[prompt["name"]])), request)

    # ------------------------------------------------------------- projects
    async def _retrieve_project(self, request: web.Request, body: Any) -> web.Response:
        project = self.projects.get(body.get("name"))
        if project is None:
            return self._not_found("project")
        return web.json_response(project)

    async def _create_project(self, request: web.Request, body: Any) -> web.Response:
        if body["name"] in self.projects:
            return web.json_response({"errors": ["project already exists"]}, status=409)
        self._project(body["name"])
        return web.Response(status=201)

    async def _find_projects(self, request: web.Request, body: Any) -> web.Response:
        name = request.query.get("name", "").lower()
        return self._page([p for p in self.projects.values() if name in p["name"].lower()], request)

    async def _get_project(self, request: web.Request, body: Any) -> web.Response:
        project = next(
            (p for p in self.projects.values() if p["id"] == request[_PARAMS]["id"]), None
        )
        if project is None:
            return self._not_found("project")
        return web.json_response(project)
