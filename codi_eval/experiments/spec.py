"""Experiment specs: YAML → a validated :class:`Spec` (a pydantic model) → cells.

The model is the one declaration of the spec: loading validates with it, every error names
the file, the line and the field (``experiments/x.yaml:7: field 'matrix.model[0]': ...``),
unknown keys get a did-you-mean, and ``codi-eval spec schema`` prints its JSON Schema for
editors. A value may be written as a single item where a list is expected
(``model: offline``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from codi_eval.errors import InputError
from codi_eval.inputs import load_yaml, read_text, text_problem, validation_error
from codi_eval.judging.metrics import JUDGE_METRICS, METRICS
from codi_eval.models.registry import parse_model_name

DEFAULT_METRICS = [
    "summary_quality",
    "entity_density",
    "identifier_coverage",
    "rouge_l",
    "compression",
]


def _listed(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


def _no_duplicates(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"lists {value!r} twice")
        seen.add(value)
    return values


def _clean_text(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    if not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def _model_name(value: str) -> str:
    # Checked, not built: building a client may need keys the spec check does not.
    parse_model_name(value)
    return value.strip()


Text = Annotated[str, Field(min_length=1)]
PromptRef = Annotated[
    str, Field(pattern=r"^[a-z][a-z0-9_\-]*@\d+$", description="name@version, e.g. cod_iteration@1")
]


def _metric_name(value: str) -> str:
    known = sorted([*METRICS, *JUDGE_METRICS])
    if value not in known:
        close = difflib.get_close_matches(value, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(known)})"
        raise ValueError(f"unknown metric {value!r}{hint}")
    return value


ModelName = Annotated[
    str,
    AfterValidator(_model_name),
    Field(description="offline, gemini-<version> or openai:<model>, with ?parameters"),
]
MetricName = Annotated[
    str,
    AfterValidator(_metric_name),
    Field(json_schema_extra=lambda schema: schema.update(enum=sorted([*METRICS, *JUDGE_METRICS]))),
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _strings(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _clean_text(value)
        return value


class Sample(_Section):
    """A deterministic sample of the dataset's items."""

    n: int | None = Field(default=None, ge=1)
    seed: int = Field(default=0, ge=0)


class Matrix(_Section):
    """The cells: every prompt × density × model."""

    prompt: Annotated[list[PromptRef], BeforeValidator(_listed), Field(min_length=1)]
    density_iterations: Annotated[
        list[Annotated[int, Field(ge=1, le=10)]], BeforeValidator(_listed), Field(min_length=1)
    ] = [2]
    model: Annotated[list[ModelName], BeforeValidator(_listed), Field(min_length=1)]

    @field_validator("prompt", "density_iterations", "model")
    @classmethod
    def _unique(cls, values: list[Any]) -> list[Any]:
        return _no_duplicates(values)


class Judge(_Section):
    """Who judges the summaries, built by the judge registry from these three fields.

    ``mode: score`` scores every summary with the ``prompt``'s rubric, on the scale the
    prompt file declares (default ``summary_judge@1``). ``mode: pairwise`` scores no
    summary alone: ``codi-eval compare`` then shows the judge two cells' summaries of the
    same item, in both orders (default prompt ``pairwise_judge@1``).
    """

    model: ModelName = "offline"
    prompt: PromptRef = "summary_judge@1"
    mode: Literal["score", "pairwise"] = "score"

    @model_validator(mode="before")
    @classmethod
    def _pairwise_prompt(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("mode") == "pairwise" and "prompt" not in data:
            return {**data, "prompt": "pairwise_judge@1"}
        return data

    @model_validator(mode="after")
    def _buildable(self) -> Judge:
        from codi_eval.judging.registry import check_judge

        check_judge(self.model, self.prompt, self.mode)
        return self

    def identity(self) -> dict[str, Any]:
        """What of the judge decides results; ``mode`` only when not the default, so the
        spec hashes of experiments stored before modes existed do not change."""
        out: dict[str, Any] = {"model": self.model, "prompt": self.prompt}
        if self.mode != "score":
            out["mode"] = self.mode
        return out


class ModelLimits(_Section):
    """Limits for one model name (they hold across every run of this process)."""

    concurrency: int | None = Field(default=None, ge=1)
    requests_per_minute: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class RunSettings(_Section):
    """How the runs are executed; none of it changes a result (not in the spec hash)."""

    concurrency: int = Field(default=16, ge=1, le=1024)
    requests_per_minute: float = Field(default=600.0, gt=0, allow_inf_nan=False)
    max_retries: int = Field(default=4, ge=0, le=20)
    timeout_s: float = Field(default=60.0, gt=0, le=3600, allow_inf_nan=False)
    run_deadline_s: float = Field(default=600.0, gt=0, allow_inf_nan=False)
    backoff_s: float = Field(default=1.0, ge=0, le=600, allow_inf_nan=False)
    cache: bool = True
    # Identical calls in one experiment are made once (in flight and recent answers), so
    # the density cells of an item share their iterations. Off only to measure the saving.
    share_calls: bool = True
    models: dict[str, ModelLimits] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _numbers(cls, data: Any) -> Any:
        # YAML writes 5 for 5.0: whole numbers are fine where a number is expected.
        if isinstance(data, dict):
            for key in ("requests_per_minute", "timeout_s", "run_deadline_s", "backoff_s"):
                if isinstance(data.get(key), int) and not isinstance(data.get(key), bool):
                    data = {**data, key: float(data[key])}
        return data


class OpikSettings(_Section):
    enabled: Literal["auto", True, False] = "auto"
    project: str | None = None


class Cell(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt: str
    density_iterations: int
    model: str

    @property
    def key(self) -> str:
        return f"{self.prompt}/d{self.density_iterations}/{self.model}"


class Spec(_Section):
    """An experiment spec (``experiments/*.yaml``)."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,120}$",
        description="letters, digits, '.', '_' or '-' (no spaces)",
    )
    description: str | None = None
    dataset: Text = Field(description="a JSONL file, from the working directory or the spec's")
    sample: Sample = Sample()
    instruction: str | None = Field(default=None, description="used when an item has none")
    matrix: Matrix
    repeats: int = Field(default=1, ge=1, le=100)
    judge: Judge = Judge()
    metrics: Annotated[list[MetricName], BeforeValidator(_listed), Field(min_length=1)] = Field(
        default_factory=lambda: list(DEFAULT_METRICS)
    )
    run: RunSettings = RunSettings()
    opik: OpikSettings = OpikSettings()
    final_prompt: PromptRef = "cod_final@1"
    word_budget: int = Field(default=50, ge=5, le=1000)
    temperature: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    seed: int | None = Field(default=None, ge=0)
    max_tokens: int = Field(default=1024, ge=16, le=1_000_000)

    _path: str = PrivateAttr(default="<spec>")
    _dataset_path: Path = PrivateAttr(default=Path())

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_defaults(cls, data: Any) -> Any:
        # `sample:` with nothing after it means "the default", as it always has.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or k == "instruction"}
        return data

    @field_validator("temperature", mode="before")
    @classmethod
    def _temperature(cls, value: Any) -> Any:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, values: list[str]) -> list[str]:
        return _no_duplicates(values)

    # ------------------------------------------------------------------ derived views

    @property
    def path(self) -> str:
        return self._path

    @property
    def dataset_path(self) -> Path:
        return self._dataset_path

    def cells(self) -> list[Cell]:
        m = self.matrix
        return [
            Cell(prompt=p, density_iterations=d, model=model)
            for p in m.prompt
            for d in m.density_iterations
            for model in m.model
        ]

    def identity(self) -> dict[str, Any]:
        """What determines the results; ``run`` and ``opik`` (how it is executed) are left out.

        The shape is fixed: it is hashed into the spec hash of every stored experiment.
        """
        return {
            "name": self.name,
            "dataset": self.dataset,
            "sample": {"n": self.sample.n, "seed": self.sample.seed},
            "instruction": self.instruction,
            "matrix": {
                "prompt": list(self.matrix.prompt),
                "density_iterations": list(self.matrix.density_iterations),
                "model": list(self.matrix.model),
            },
            "repeats": self.repeats,
            "judge": self.judge.identity(),
            "metrics": list(self.metrics),
            "final_prompt": self.final_prompt,
            "word_budget": self.word_budget,
            "temperature": self.temperature,
            "seed": self.seed,
            "max_tokens": self.max_tokens,
        }

    def resolved(self) -> dict[str, Any]:
        data = self.identity()
        data["description"] = self.description
        data["run"] = self.run.model_dump(exclude={"models"})
        data["run"]["models"] = {m: v.model_dump() for m, v in self.run.models.items()}
        enabled = self.opik.enabled
        data["opik"] = {
            "enabled": enabled if enabled == "auto" else str(enabled).lower(),
            "project": self.opik.project,
        }
        return data


def spec_from_stored(resolved: dict[str, Any], path: str = "<stored spec>") -> Spec:
    """The :class:`Spec` an experiment was created from, rebuilt from its stored
    :meth:`Spec.resolved` (a worker joining an experiment has the store, not the file)."""
    data = dict(resolved)
    opik = dict(data.get("opik") or {})
    enabled = opik.get("enabled")
    opik["enabled"] = {"true": True, "false": False}.get(str(enabled), enabled)
    data["opik"] = {k: v for k, v in opik.items() if v is not None}
    data = {k: v for k, v in data.items() if v is not None}
    spec = Spec.model_validate(data)
    spec._path = path
    return spec


def spec_hash(identity: dict[str, Any], dataset_hash: str, prompt_hashes: dict[str, str]) -> str:
    payload = json.dumps(
        {"spec": identity, "dataset": dataset_hash, "prompts": prompt_hashes},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


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
    data, lines = load_yaml(text, path)
    if data is None:
        raise InputError("the spec is empty", file=path)
    if not isinstance(data, dict):
        raise InputError("a spec is a mapping of keys (name, dataset, matrix, ...)", file=path)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, Spec, file=path, lines=lines) from None
    dataset_path = _resolve_dataset(spec.dataset, spec_file)
    if not dataset_path.is_file():
        raise InputError(
            f"file not found: {spec.dataset} (looked in {Path.cwd()}"
            + (f" and beside {spec_file}" if spec_file else "")
            + ")",
            file=path,
            line=lines.get("dataset"),
            field="dataset",
        )
    spec._path = path
    spec._dataset_path = dataset_path
    return spec


def load_spec(path: str | Path) -> Spec:
    p = Path(path)
    text = read_text(p)
    return parse_spec(text, str(path), p.resolve())


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of an experiment spec (for editors: yaml-language-server and kin)."""
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "codi-eval experiment spec"
    return schema
