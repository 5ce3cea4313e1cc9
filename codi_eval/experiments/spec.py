"""Experiment specs: YAML → a validated :class:`Spec` → cells.

Every error names the file, the line and the field (``experiments/x.yaml:7: field
'matrix.model': ...``); unknown keys are refused with a did-you-mean.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from codi_eval.errors import InputError

TOP_KEYS = {
    "name",
    "description",
    "dataset",
    "sample",
    "instruction",
    "matrix",
    "repeats",
    "judge",
    "metrics",
    "run",
    "opik",
    "final_prompt",
    "word_budget",
    "temperature",
    "seed",
    "max_tokens",
}
MATRIX_KEYS = {"prompt", "density_iterations", "model"}
SAMPLE_KEYS = {"n", "seed"}
JUDGE_KEYS = {"model", "prompt"}
RUN_KEYS = {
    "concurrency",
    "requests_per_minute",
    "max_retries",
    "timeout_s",
    "cache",
    "run_deadline_s",
    "models",
    "backoff_s",
}
MODEL_LIMIT_KEYS = {"concurrency", "requests_per_minute"}
OPIK_KEYS = {"enabled", "project"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,120}$")


@dataclass(frozen=True)
class ModelLimits:
    concurrency: int | None = None
    requests_per_minute: float | None = None


@dataclass(frozen=True)
class RunSettings:
    concurrency: int = 16
    requests_per_minute: float = 600.0
    max_retries: int = 4
    timeout_s: float = 60.0
    run_deadline_s: float = 600.0
    backoff_s: float = 1.0
    cache: bool = True
    models: dict[str, ModelLimits] = field(default_factory=dict)


@dataclass(frozen=True)
class Cell:
    prompt: str
    density_iterations: int
    model: str

    @property
    def key(self) -> str:
        return f"{self.prompt}/d{self.density_iterations}/{self.model}"


@dataclass(frozen=True)
class Spec:
    name: str
    dataset: str  # as written in the file
    dataset_path: Path  # resolved
    prompts: list[str]
    density_iterations: list[int]
    models: list[str]
    judge_model: str
    judge_prompt: str
    metrics: list[str]
    run: RunSettings
    path: str = "<spec>"
    description: str | None = None
    sample_n: int | None = None
    sample_seed: int = 0
    instruction: str | None = None
    repeats: int = 1
    final_prompt: str = "cod_final@1"
    word_budget: int = 50
    temperature: float | None = None
    seed: int | None = None
    max_tokens: int = 1024
    opik_enabled: str = "auto"  # auto | true | false
    opik_project: str | None = None

    def cells(self) -> list[Cell]:
        return [
            Cell(p, d, m)
            for p in self.prompts
            for d in self.density_iterations
            for m in self.models
        ]

    def identity(self) -> dict[str, Any]:
        """What determines the results; ``run`` and ``opik`` (how it is executed) are left out."""
        return {
            "name": self.name,
            "dataset": self.dataset,
            "sample": {"n": self.sample_n, "seed": self.sample_seed},
            "instruction": self.instruction,
            "matrix": {
                "prompt": self.prompts,
                "density_iterations": self.density_iterations,
                "model": self.models,
            },
            "repeats": self.repeats,
            "judge": {"model": self.judge_model, "prompt": self.judge_prompt},
            "metrics": self.metrics,
            "final_prompt": self.final_prompt,
            "word_budget": self.word_budget,
            "temperature": self.temperature,
            "seed": self.seed,
            "max_tokens": self.max_tokens,
        }

    def resolved(self) -> dict[str, Any]:
        data = self.identity()
        data["description"] = self.description
        data["run"] = {k: v for k, v in asdict(self.run).items() if k != "models"}
        data["run"]["models"] = {m: asdict(v) for m, v in self.run.models.items()}
        data["opik"] = {"enabled": self.opik_enabled, "project": self.opik_project}
        return data


def spec_hash(identity: dict[str, Any], dataset_hash: str, prompt_hashes: dict[str, str]) -> str:
    payload = json.dumps(
        {"spec": identity, "dataset": dataset_hash, "prompts": prompt_hashes},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class _Lines:
    """Line numbers of keys and values in the YAML file, by dotted path."""

    def __init__(self, node: yaml.Node | None) -> None:
        self.lines: dict[str, int] = {}
        if node is not None:
            self._walk(node, "")

    def _walk(self, node: yaml.Node, path: str) -> None:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = f"{path}.{key.value}" if path else str(key.value)
                self.lines[sub] = key.start_mark.line + 1
                self._walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, f"{path}[{i}]")

    def get(self, path: str) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path.rsplit(".", 1)[0] if "." in path else ""
        return None


class _Reader:
    def __init__(self, path: str, lines: _Lines) -> None:
        self.path = path
        self.lines = lines

    def error(self, field: str, message: str) -> InputError:
        return InputError(message, file=self.path, line=self.lines.get(field), field=field)

    def mapping(self, value: Any, field: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(field, f"must be a mapping, not {_kind(value)}")
        for key in value:
            if key not in allowed:
                sub = f"{field}.{key}" if field else str(key)
                close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                hint = (
                    f"; did you mean '{close[0]}'?"
                    if close
                    else f" (allowed: {', '.join(sorted(allowed))})"
                )
                raise self.error(sub, f"unknown key{hint}")
        return value

    def string(self, value: Any, field: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(field, f"must be a non-empty string, not {_kind(value)}")
        return value.strip()

    def integer(self, value: Any, field: str, low: int, high: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(field, f"must be a whole number, not {_kind(value)}")
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f">= {low}"
            raise self.error(field, f"must be {bound}, not {value}")
        return value

    def number(self, value: Any, field: str, low: float, *, strict: bool = True) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(field, f"must be a number, not {_kind(value)}")
        if value < low or (strict and value == low and low == 0):
            raise self.error(field, f"must be {'>' if strict else '>='} {low}, not {value}")
        return float(value)

    def boolean(self, value: Any, field: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(field, f"must be true or false, not {_kind(value)}")
        return value

    def strings(self, value: Any, field: str) -> list[str]:
        items = value if isinstance(value, list) else [value]
        if not items:
            raise self.error(field, "must list at least one value")
        result = [self.string(v, f"{field}[{i}]") for i, v in enumerate(items)]
        dupes = sorted({v for v in result if result.count(v) > 1})
        if dupes:
            raise self.error(field, f"lists {dupes[0]!r} twice")
        return result


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


def _resolve_dataset(dataset: str, spec_file: Path | None) -> Path:
    candidate = Path(dataset).expanduser()
    if candidate.is_absolute():
        return candidate
    options = [Path.cwd() / candidate]
    if spec_file is not None:
        options += [spec_file.parent / candidate, spec_file.parent.parent / candidate]
    for option in options:
        if option.is_file():
            return option.resolve()
    return options[0]


def parse_spec(text: str, path: str = "<spec>", spec_file: Path | None = None) -> Spec:
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(
            f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
            file=path,
            line=mark.line + 1 if mark else None,
        ) from exc
    r = _Reader(path, _Lines(node))
    if data is None:
        raise InputError("the spec is empty", file=path)
    top = r.mapping(data, "", TOP_KEYS)
    for required in ("name", "dataset", "matrix"):
        if required not in top:
            raise InputError("is required", file=path, field=required, line=None)
    name = r.string(top["name"], "name")
    if not NAME.match(name):
        raise r.error("name", "use letters, digits, '.', '_' or '-' (no spaces)")
    dataset = r.string(top["dataset"], "dataset")
    dataset_path = _resolve_dataset(dataset, spec_file)
    if not dataset_path.is_file():
        raise r.error(
            "dataset",
            f"file not found: {dataset} (looked in {Path.cwd()}"
            + (f" and beside {spec_file}" if spec_file else "")
            + ")",
        )

    matrix = r.mapping(top["matrix"], "matrix", MATRIX_KEYS)
    for required in ("prompt", "model"):
        if required not in matrix:
            raise r.error(f"matrix.{required}", "is required")
    prompts = r.strings(matrix["prompt"], "matrix.prompt")
    for i, ref in enumerate(prompts):
        if not re.match(r"^[a-z][a-z0-9_\-]*@\d+$", ref):
            raise r.error(
                f"matrix.prompt[{i}]", f"must be name@version (e.g. cod_iteration@1), not {ref!r}"
            )
    density_raw = matrix.get("density_iterations", [2])
    density_list = density_raw if isinstance(density_raw, list) else [density_raw]
    if not density_list:
        raise r.error("matrix.density_iterations", "must list at least one value")
    density = [
        r.integer(v, f"matrix.density_iterations[{i}]", 1, 10) for i, v in enumerate(density_list)
    ]
    if len(set(density)) != len(density):
        raise r.error("matrix.density_iterations", "lists a value twice")
    models = r.strings(matrix["model"], "matrix.model")
    for i, model in enumerate(models):
        _check_model_name(r, model, f"matrix.model[{i}]")

    sample_n, sample_seed = None, 0
    if "sample" in top and top["sample"] is not None:
        sample = r.mapping(top["sample"], "sample", SAMPLE_KEYS)
        if "n" in sample:
            sample_n = r.integer(sample["n"], "sample.n", 1)
        if "seed" in sample:
            sample_seed = r.integer(sample["seed"], "sample.seed", 0)

    judge_model, judge_prompt = "offline", "summary_judge@1"
    if "judge" in top and top["judge"] is not None:
        judge = r.mapping(top["judge"], "judge", JUDGE_KEYS)
        if "model" in judge:
            judge_model = r.string(judge["model"], "judge.model")
            _check_model_name(r, judge_model, "judge.model")
        if "prompt" in judge:
            judge_prompt = r.string(judge["prompt"], "judge.prompt")

    from codi_eval.judging.metrics import METRICS

    metrics_raw = top.get(
        "metrics",
        ["summary_quality", "entity_density", "identifier_coverage", "rouge_l", "compression"],
    )
    metrics = r.strings(metrics_raw, "metrics")
    for i, metric in enumerate(metrics):
        if metric != "summary_quality" and metric not in METRICS:
            close = difflib.get_close_matches(metric, sorted([*METRICS, "summary_quality"]), n=1)
            hint = (
                f"; did you mean '{close[0]}'?"
                if close
                else f" (known: {', '.join(sorted(METRICS))})"
            )
            raise r.error(f"metrics[{i}]", f"unknown metric {metric!r}{hint}")

    run = RunSettings()
    if "run" in top and top["run"] is not None:
        raw = r.mapping(top["run"], "run", RUN_KEYS)
        limits: dict[str, ModelLimits] = {}
        for model, lim in (raw.get("models") or {}).items():
            lim_map = r.mapping(lim, f"run.models.{model}", MODEL_LIMIT_KEYS)
            limits[str(model)] = ModelLimits(
                concurrency=r.integer(lim_map["concurrency"], f"run.models.{model}.concurrency", 1)
                if "concurrency" in lim_map
                else None,
                requests_per_minute=r.number(
                    lim_map["requests_per_minute"], f"run.models.{model}.requests_per_minute", 0
                )
                if "requests_per_minute" in lim_map
                else None,
            )
        run = RunSettings(
            concurrency=r.integer(
                raw.get("concurrency", run.concurrency), "run.concurrency", 1, 1024
            ),
            requests_per_minute=r.number(
                raw.get("requests_per_minute", run.requests_per_minute),
                "run.requests_per_minute",
                0,
            ),
            max_retries=r.integer(
                raw.get("max_retries", run.max_retries), "run.max_retries", 0, 20
            ),
            timeout_s=r.number(raw.get("timeout_s", run.timeout_s), "run.timeout_s", 0),
            run_deadline_s=r.number(
                raw.get("run_deadline_s", run.run_deadline_s), "run.run_deadline_s", 0
            ),
            backoff_s=r.number(
                raw.get("backoff_s", run.backoff_s), "run.backoff_s", 0, strict=False
            ),
            cache=r.boolean(raw.get("cache", run.cache), "run.cache"),
            models=limits,
        )

    opik_enabled, opik_project = "auto", None
    if "opik" in top and top["opik"] is not None:
        opik = r.mapping(top["opik"], "opik", OPIK_KEYS)
        if "enabled" in opik:
            value = opik["enabled"]
            if value not in (True, False, "auto"):
                raise r.error("opik.enabled", f"must be auto, true or false, not {value!r}")
            opik_enabled = "auto" if value == "auto" else str(value).lower()
        if "project" in opik:
            opik_project = r.string(opik["project"], "opik.project")

    instruction = (
        r.string(top["instruction"], "instruction") if top.get("instruction") is not None else None
    )
    temperature = (
        r.number(top["temperature"], "temperature", 0, strict=False)
        if top.get("temperature") is not None
        else None
    )
    return Spec(
        name=name,
        dataset=dataset,
        dataset_path=dataset_path,
        prompts=prompts,
        density_iterations=density,
        models=models,
        judge_model=judge_model,
        judge_prompt=judge_prompt,
        metrics=metrics,
        run=run,
        path=path,
        description=top.get("description") if isinstance(top.get("description"), str) else None,
        sample_n=sample_n,
        sample_seed=sample_seed,
        instruction=instruction,
        repeats=r.integer(top.get("repeats", 1), "repeats", 1, 100),
        final_prompt=r.string(top.get("final_prompt", "cod_final@1"), "final_prompt"),
        word_budget=r.integer(top.get("word_budget", 50), "word_budget", 5, 1000),
        temperature=temperature,
        seed=r.integer(top["seed"], "seed", 0) if top.get("seed") is not None else None,
        max_tokens=r.integer(top.get("max_tokens", 1024), "max_tokens", 16, 1_000_000),
        opik_enabled=opik_enabled,
        opik_project=opik_project,
    )


def _check_model_name(r: _Reader, model: str, field: str) -> None:
    from codi_eval.models.registry import parse_model_name

    # Checked, not built: building a client may need keys the spec check does not.
    try:
        parse_model_name(model)
    except ValueError as exc:
        raise r.error(field, str(exc)) from None


def load_spec(path: str | Path) -> Spec:
    p = Path(path)
    if not p.is_file():
        raise InputError("spec file not found", file=str(path))
    return parse_spec(p.read_text(encoding="utf-8"), str(path), p.resolve())
