"""Mirror the store's traces, datasets, prompts and experiments to Comet Opik.

Everything goes through the public ``opik.Opik`` client and the objects it returns
(``Dataset``, ``Experiment``, ``Prompt``); no private REST helpers. Ids are ours (UUIDv7), so a
trace id in the store opens the same trace in Opik, and re-sending anything is harmless:
traces, spans, dataset items and feedback scores are upserts by id (or id + name) in Opik.

How delivery is known (the outbox marks a row sent only on ``flush() is True``):

* Traces, spans, feedback scores and experiment items are sent by the SDK's background
  threads. ``Opik.flush()`` alone does not prove delivery, which we measured against the
  local server in ``tests/servers/opik_server.py``:

  - on 429/5xx the SDK retries 3 times (about 5 s then 6 s apart), then drops the batch
    and ``flush()`` returns False (``last_flush_result.dropped_messages`` > 0); it is
    never re-sent;
  - on a refused connection or a timeout the batch is parked in the SDK's replay store
    (a temp SQLite file that lives as long as the process), the drop is *not* counted,
    and ``flush()`` returns **True** although nothing reached the server. The parked batch
    is only replayed after the SDK's health monitor sees ``is-alive/ping`` succeed again
    (every 10 s), so even a ``flush()`` right after the server came back reports True
    before the data is there.

  So ``flush()`` here is SDK flush *plus read-back*: each trace exported since the last
  flush is fetched with ``Opik.get_trace_content`` (one GET: the trace, its feedback
  scores and its ``span_count``), and each experiment's items with
  ``Experiment.get_items``. Only when everything is there does it return True. The
  read-back uses documented, public methods; ``Opik.rest_client`` would give synchronous
  writes instead, but its own docstring says it is not a stable contract.
* Datasets, prompts and experiments themselves are created by synchronous SDK calls,
  which raise when the server refuses them; those raise ``OpikExportError`` here.

Every call into the SDK runs with a deadline (``call_timeout_s``, or what is left of a
``flush`` timeout): the SDK's own retries can otherwise block for 11 s or more per call
while Opik is down, and a CLI must not hang on an optional mirror.

Configuration: ``host``, ``api_key``, ``workspace`` and ``project_name`` left as None fall
through to the SDK's own resolution (``OPIK_URL_OVERRIDE``, ``OPIK_API_KEY``,
``OPIK_WORKSPACE``, ``OPIK_PROJECT_NAME``, ``~/.opik.config``). The api key is handed to
the SDK and never logged or put in an error message.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import opik
from opik.api_objects.dataset.dataset_item import DatasetItem
from opik.api_objects.experiment.experiment_item import ExperimentItemReferences
from opik.api_objects.prompt.base_prompt import BasePrompt
from opik.exceptions import ExperimentNotFound
from opik.rest_api.core.api_error import ApiError
from opik.types import BatchFeedbackScoreDict, ErrorInfoDict

from codi_eval.store.records import SpanRecord, TraceTree

__all__ = [
    "DatasetExport",
    "ExperimentExport",
    "OpikExportError",
    "OpikExporter",
    "PromptExport",
    "TraceExport",
]

LOGGER = logging.getLogger(__name__)

T = TypeVar("T")

# Opik accepts only these span types; ours that it lacks keep their name in metadata.
_OPIK_SPAN_TYPES = {"general", "tool", "llm", "guardrail"}
_SPAN_TYPE_MAP = {"judge": "general", "metric": "general"}
# Provider names as Opik's cost tracking knows them (opik.LLMProvider); track_genai
# records Gemini calls as "google_ai".
_PROVIDER_MAP = {"gemini": "google_ai", "google": "google_ai", "google_genai": "google_ai"}
# A DatasetItem's own fields; data keys with these names must not be read as them.
_DATASET_ITEM_FIELDS = set(DatasetItem.model_fields)


class OpikExportError(RuntimeError):
    """Opik did not accept an export (down, refused, timed out). Safe to retry later."""


@dataclasses.dataclass(frozen=True)
class TraceExport:
    trace_id: str
    span_ids: tuple[str, ...]
    scores: tuple[str, ...]
    """Names of the feedback scores sent on the trace."""
    skipped: tuple[str, ...]
    """Evaluations not sent (failed judgements without a score), as "name: why"."""


@dataclasses.dataclass(frozen=True)
class DatasetExport:
    name: str
    item_ids: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class PromptExport:
    name: str
    version_id: str
    """What an experiment links (``prompt_versions: [{"id": version_id}]``)."""
    commit: str | None
    version: str | None
    """Opik's sequential label, e.g. "v3"."""
    created: bool
    """False when an identical version already existed and was reused."""


@dataclasses.dataclass(frozen=True)
class ExperimentExport:
    experiment_id: str
    name: str
    created: bool
    items_sent: int
    items_already_present: int
    """Links found on the server, or queued by this exporter and not yet flushed."""


@dataclasses.dataclass
class _TraceExpectation:
    span_ids: set[str]
    score_names: set[str]


class OpikExporter:
    """Sends plain dicts from the store to Opik with our ids; see the module docstring for
    how ``flush()`` knows the server really has them."""

    def __init__(
        self,
        *,
        host: str | None = None,
        api_key: str | None = None,
        workspace: str | None = None,
        project_name: str | None = None,
        call_timeout_s: float = 30.0,
    ) -> None:
        self._call_timeout_s = call_timeout_s
        self._client = opik.Opik(
            host=host, api_key=api_key, workspace=workspace, project_name=project_name
        )
        self._lock = threading.Lock()
        self._pending_traces: dict[str, _TraceExpectation] = {}
        self._pending_experiment_items: dict[str, set[tuple[str, str]]] = {}
        self.last_flush_problems: list[str] = []
        """Why the last ``flush()`` returned False, one line per problem (no secrets)."""

    @property
    def project_name(self) -> str:
        return self._client.project_name

    # ----------------------------------------------------------------- traces
    def export_trace_tree(self, tree: TraceTree, project: str | None = None) -> TraceExport:
        """Queue one trace with its spans and evaluations (as trace feedback scores).

        Returns at once; ``flush()`` tells whether it arrived. Evaluations without a score
        (failed judgements) are skipped and listed in ``TraceExport.skipped``.
        """
        trace = tree.trace
        project = project or tree.export_project or None
        trace_id = str(trace.id)
        self._client.trace(
            id=trace_id,
            name=trace.name,
            start_time=_utc(trace.start_time),
            end_time=_utc(trace.end_time),
            input=_as_object(trace.input_data),
            output=_as_object(trace.output_data),
            metadata={**(trace.meta_data or {}), "trace_type": trace.trace_type},
            tags=list(trace.tags or []) or None,
            error_info=_error_info(trace.error),
            project_name=project,
        )

        span_ids = []
        for span in tree.spans:
            self._send_span(trace_id, span, project)
            span_ids.append(str(span.id))

        scores: dict[str, BatchFeedbackScoreDict] = {}
        skipped = []
        for evaluation in tree.evaluations:
            name = evaluation.metric_name
            if evaluation.score is None or evaluation.status != "ok":
                skipped.append(f"{name}: no score (failed judgement)")
                continue
            if name in scores:
                # Opik keeps one score per (trace, name): the later one replaces it.
                skipped.append(f"{name}: replaced by a later evaluation of the same name")
            scores[name] = {
                "id": trace_id,
                "name": name,
                "value": float(evaluation.score),
                "reason": evaluation.reason,
            }
            if project:
                scores[name]["project_name"] = project
        if scores:
            self._client.log_traces_feedback_scores(list(scores.values()), project_name=project)

        with self._lock:
            self._pending_traces[trace_id] = _TraceExpectation(set(span_ids), set(scores))
        return TraceExport(trace_id, tuple(span_ids), tuple(scores), tuple(skipped))

    def _send_span(self, trace_id: str, span: SpanRecord, project: str | None) -> None:
        our_type = span.type or "general"
        opik_type = _SPAN_TYPE_MAP.get(our_type, our_type)
        if opik_type not in _OPIK_SPAN_TYPES:
            opik_type = "general"
        usage = {
            key: int(value)
            for key, value in (
                ("prompt_tokens", span.prompt_tokens),
                ("completion_tokens", span.completion_tokens),
                ("total_tokens", span.total_tokens),
            )
            if value is not None
        }
        if "total_tokens" not in usage and {"prompt_tokens", "completion_tokens"} <= set(usage):
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        provider = _PROVIDER_MAP.get(span.provider, span.provider) if span.provider else None
        self._client.span(
            trace_id=str(span.trace_id or trace_id),
            id=str(span.id),
            parent_span_id=str(span.parent_span_id) if span.parent_span_id else None,
            name=span.name,
            type=opik_type,  # type: ignore[arg-type]  # checked against _OPIK_SPAN_TYPES
            start_time=_utc(span.start_time),
            end_time=_utc(span.end_time),
            metadata={"codi_span_type": our_type, **(span.meta_data or {})},
            input=_as_object(span.input_data),
            output=_as_object(span.output_data),
            usage=usage or None,
            model=span.model,
            provider=provider,
            error_info=_error_info(span.error),
            total_cost=float(span.cost) if span.cost is not None else None,
            project_name=project,
        )

    # --------------------------------------------------------------- datasets
    def export_dataset(
        self, name: str, items: Iterable[Mapping[str, Any]], *, description: str | None = None
    ) -> DatasetExport:
        """Create the dataset if absent and upsert the items under our ids (synchronous).

        Raises OpikExportError when Opik does not accept them.
        """
        prepared = []
        for item in items:
            dataset_item = DatasetItem(id=str(item["id"]))
            # Data goes in as the item's extra fields. Set them directly rather than as
            # keyword arguments so keys such as "source" or "description" stay data
            # instead of being read as the DatasetItem fields of the same name.
            assert dataset_item.__pydantic_extra__ is not None
            dataset_item.__pydantic_extra__.update(dict(item["data"]))
            prepared.append(dataset_item)

        def send() -> None:
            dataset = self._get_or_create_dataset(name, description)
            # Our ids make a re-export an upsert; the SDK's content-hash dedup would
            # instead silently drop distinct items that happen to have equal data.
            dataset.insert(prepared, deduplication=False)  # type: ignore[arg-type]

        self._bounded(f"export dataset {name!r}", send, self._call_timeout_s)
        return DatasetExport(name, tuple(item.id for item in prepared))

    def _get_or_create_dataset(self, name: str, description: str | None) -> opik.Dataset:
        try:
            return self._client.get_or_create_dataset(name, description=description)
        except ApiError as error:
            if error.status_code != 409:
                raise
            # Another exporter created it between our lookup and our create.
            return self._client.get_dataset(name)

    # ---------------------------------------------------------------- prompts
    def export_prompt(
        self,
        name: str,
        template: str,
        *,
        version_label: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> PromptExport:
        """Ensure Opik's prompt library holds this template as a version of ``name``.

        Idempotent: a version with the same template and metadata (any version, not only
        the latest) is reused instead of creating another. Synchronous; raises
        OpikExportError when Opik does not answer.
        """
        prompt, created = self._bounded(
            f"export prompt {name!r}",
            lambda: self._ensure_prompt(name, template, version_label, metadata),
            self._call_timeout_s,
        )
        return _prompt_export(prompt, created)

    def _ensure_prompt(
        self,
        name: str,
        template: str,
        version_label: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> tuple[opik.Prompt, bool]:
        extra = dict(metadata or {})
        if version_label is not None:
            extra["codi_version"] = version_label
        wanted_metadata = extra or None
        for version in self._client.get_prompt_history(name):
            if version.prompt == template and (version.metadata or None) == wanted_metadata:
                return version, False
        prompt = self._client.create_prompt(name=name, prompt=template, metadata=wanted_metadata)
        return prompt, True

    # ------------------------------------------------------------ experiments
    def export_experiment(
        self,
        name: str,
        dataset_name: str,
        config: Mapping[str, Any],
        prompts: Iterable[Mapping[str, Any] | opik.Prompt],
        items: Iterable[Mapping[str, Any]],
        experiment_id: str | None = None,
        *,
        project: str | None = None,
    ) -> ExperimentExport:
        """Create (or find) one Opik experiment and link dataset items to traces.

        ``prompts`` are dicts ``{name, template, version_label?, metadata?}`` (resolved
        through ``export_prompt``, so no version is duplicated) or ``opik.Prompt`` objects.
        ``items`` are ``{dataset_item_id, trace_id}``. With ``experiment_id`` the experiment
        is created under that id or reused if it exists; without, one with the same name
        and dataset is reused. Only links not already present are sent, so a retry never
        duplicates them. The links are queued; ``flush()`` confirms them.
        """
        pairs = [(str(i["dataset_item_id"]), str(i["trace_id"])) for i in items]
        prompt_list = list(prompts)

        def send() -> ExperimentExport:
            linked = [self._resolve_prompt(p) for p in prompt_list]
            experiment, created = self._find_or_create_experiment(
                name, dataset_name, dict(config), linked, experiment_id, project
            )
            with self._lock:
                # Links queued by this exporter but not yet flushed are not readable on
                # the server yet; sending them again would make a second experiment item.
                present = set(self._pending_experiment_items.get(experiment.id, ()))
            if not created:
                present |= {(i.dataset_item_id, i.trace_id) for i in experiment.get_items()}
            missing = list(dict.fromkeys(p for p in pairs if p not in present))
            if missing:
                experiment.insert(
                    [
                        ExperimentItemReferences(
                            dataset_item_id=d, trace_id=t, project_name=project
                        )
                        for d, t in missing
                    ]
                )
            with self._lock:
                self._pending_experiment_items.setdefault(experiment.id, set()).update(pairs)
            return ExperimentExport(
                experiment.id, name, created, len(missing), len(set(pairs)) - len(missing)
            )

        return self._bounded(f"export experiment {name!r}", send, self._call_timeout_s)

    def _resolve_prompt(self, prompt: Mapping[str, Any] | opik.Prompt) -> opik.Prompt:
        if isinstance(prompt, opik.Prompt):
            return prompt
        resolved, _ = self._ensure_prompt(
            prompt["name"], prompt["template"], prompt.get("version_label"), prompt.get("metadata")
        )
        return resolved

    def _find_or_create_experiment(
        self,
        name: str,
        dataset_name: str,
        config: dict[str, Any],
        prompts: Sequence[BasePrompt],
        experiment_id: str | None,
        project: str | None,
    ) -> tuple[Any, bool]:
        if experiment_id is not None:
            try:
                return self._client.get_experiment_by_id(experiment_id), False
            except ExperimentNotFound:
                pass
        else:
            # The SDK generates an id when none is given, so without ours the name (plus
            # dataset) is the only handle a retry has on an experiment it already made.
            try:
                # A substring search (and it raises rather than return an empty list).
                candidates = self._client.get_experiments_by_name(name, project_name=project)
            except ExperimentNotFound:
                candidates = []
            for candidate in candidates:
                if candidate.name == name and candidate.dataset_name == dataset_name:
                    return candidate, False
        try:
            experiment = self._client.create_experiment(
                dataset_name=dataset_name,
                name=name,
                experiment_config=config,
                prompts=list(prompts) or None,
                project_name=project,
                experiment_id=experiment_id,
            )
        except ApiError as error:
            if error.status_code != 409 or experiment_id is None:
                raise
            # Created concurrently (or by an earlier attempt whose answer was lost).
            return self._client.get_experiment_by_id(experiment_id), False
        return experiment, True

    # ------------------------------------------------------------- delivery
    def flush(self, timeout_s: float = 30.0) -> bool:
        """Send everything queued and confirm by reading it back; never blocks past
        ``timeout_s``.

        True only if every trace (with its spans and scores) and experiment link queued
        since the previous ``flush()`` is on the server. The check covers exactly those
        exports, whatever the outcome: after False, export them again (ids make that safe).
        """
        deadline = time.monotonic() + timeout_s
        with self._lock:
            traces, self._pending_traces = self._pending_traces, {}
            links, self._pending_experiment_items = self._pending_experiment_items, {}
        problems: list[str] = []
        self.last_flush_problems = problems
        try:
            # The SDK's flush takes whole seconds and may overrun them while it waits
            # for uploads, hence the outer deadline as well.
            flushed = self._bounded(
                "flush",
                lambda: self._client.flush(timeout=max(1, int(timeout_s))),
                timeout_s,
            )
            if not flushed:
                problems.append(_describe_flush(self._client.last_flush_result))
                return False
            for trace_id, expected in traces.items():
                problems.extend(self._check_trace(trace_id, expected, deadline))
            for experiment_id, pairs in links.items():
                problems.extend(self._check_links(experiment_id, pairs, deadline))
        except OpikExportError as error:
            problems.append(str(error))
        if problems:
            LOGGER.warning("Opik export not confirmed: %s", "; ".join(problems[:5]))
        return not problems

    def _check_trace(
        self, trace_id: str, expected: _TraceExpectation, deadline: float
    ) -> list[str]:
        try:
            trace = self._bounded(
                f"read back trace {trace_id}",
                lambda: self._client.get_trace_content(trace_id),
                deadline - time.monotonic(),
            )
        except OpikExportError as error:
            if isinstance(error.__cause__, ApiError) and error.__cause__.status_code == 404:
                return [f"trace {trace_id} is not on the server"]
            raise
        problems = []
        if trace.span_count is not None:
            if trace.span_count < len(expected.span_ids):
                problems.append(
                    f"trace {trace_id}: {trace.span_count} of {len(expected.span_ids)} spans"
                )
        else:
            # An older backend without span_count: ask for each span.
            for span_id in expected.span_ids:
                try:
                    self._bounded(
                        f"read back span {span_id}",
                        functools.partial(self._client.get_span_content, span_id),
                        deadline - time.monotonic(),
                    )
                except OpikExportError:
                    problems.append(f"span {span_id} is not on the server")
        present = {score.name for score in trace.feedback_scores or []}
        if missing := expected.score_names - present:
            problems.append(f"trace {trace_id}: scores missing {sorted(missing)}")
        return problems

    def _check_links(
        self, experiment_id: str, pairs: set[tuple[str, str]], deadline: float
    ) -> list[str]:
        def read() -> set[tuple[str, str]]:
            experiment = self._client.get_experiment_by_id(experiment_id)
            return {(i.dataset_item_id, i.trace_id) for i in experiment.get_items()}

        present = self._bounded(
            f"read back experiment {experiment_id}", read, deadline - time.monotonic()
        )
        if missing := pairs - present:
            return [f"experiment {experiment_id}: {len(missing)} of {len(pairs)} items missing"]
        return []

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush what is queued (best effort, bounded) and release the SDK client."""
        try:
            self._bounded(
                "close", lambda: self._client.end(timeout=max(1, int(timeout_s))), timeout_s
            )
        except OpikExportError as error:
            LOGGER.warning("Opik client did not close cleanly: %s", error)

    def __enter__(self) -> OpikExporter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @staticmethod
    def _bounded(what: str, call: Callable[[], T], timeout_s: float) -> T:
        """Run ``call`` on a daemon thread and give up after ``timeout_s``.

        A daemon thread, not an executor: an abandoned call may sit in the SDK's retry
        back-off for a while and must not keep the process from exiting.
        """
        if timeout_s <= 0:
            raise OpikExportError(f"{what}: no time left")
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                outcome["value"] = call()
            except BaseException as error:  # handed to the caller's thread below
                outcome["error"] = error
            finally:
                done.set()

        threading.Thread(target=run, name=f"opik-export: {what}", daemon=True).start()
        if not done.wait(timeout_s):
            raise OpikExportError(f"{what}: no answer from Opik within {timeout_s:.1f}s")
        if "error" in outcome:
            error = outcome["error"]
            if isinstance(error, OpikExportError):
                raise error
            raise OpikExportError(f"{what} failed: {_describe_error(error)}") from error
        return outcome["value"]


def _prompt_export(prompt: opik.Prompt, created: bool) -> PromptExport:
    if prompt.version_id is None:
        raise OpikExportError(f"Opik returned prompt {prompt.name!r} without a version id")
    return PromptExport(
        name=prompt.name,
        version_id=prompt.version_id,
        commit=prompt.commit,
        version=prompt.version,
        created=created,
    )


def _utc(value: datetime.datetime | None) -> datetime.datetime | None:
    if value is None:
        return None
    # The store keeps UTC; a naive value would otherwise be read as local time.
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def _as_object(value: Any) -> dict[str, Any] | None:
    """Opik stores input/output as JSON objects; wrap anything else."""
    if value is None or isinstance(value, dict):
        return value
    return {"value": value}


def _error_info(error: Any) -> ErrorInfoDict | None:
    if not error:
        return None
    if isinstance(error, Mapping):
        return {
            "exception_type": str(error.get("exception_type") or error.get("type") or "Error"),
            "message": str(error.get("message") or ""),
            "traceback": str(error.get("traceback") or ""),
        }
    return {"exception_type": "Error", "message": str(error), "traceback": ""}


def _describe_flush(result: Any) -> str:
    if result is None:
        return "the SDK did not flush"
    if result.dropped_messages:
        reasons = sorted(
            {f"{f.message_type} ({f.status_code or f.reason.value})" for f in result.failures}
        )
        return f"the SDK dropped {result.dropped_messages} message(s): {', '.join(reasons)}"
    return f"the SDK did not drain its queue in time ({result.remaining_queue_size} left)"


def _describe_error(error: BaseException) -> str:
    if isinstance(error, ApiError):
        # Not str(error): that carries every response header; the status says enough.
        return f"HTTP {error.status_code}"
    return f"{type(error).__name__}: {error}"
