"""Model names, as a spec writes them, turned into :class:`Model` objects.

Providers register themselves by name (:func:`provider`), the way inspect-ai registers
model APIs: a provider is a pydantic model of the parameters a name may carry, plus how
to recognise its names and how to build the model. Nothing here imports a provider SDK;
``build`` does, on first use.

Accepted names (see :func:`accepted_forms`):

- ``offline`` or ``offline?latency_ms=50`` — the deterministic baseline;
- ``gemini-<version>`` (``gemini-2.5-flash``) — Google's Gemini API;
- ``openai:<model>`` (``openai:llama3.1``) — any OpenAI-compatible server.

A query string carries parameters (``gemini-2.5-flash?timeout_s=30``); the ``defaults``
dict (the operator's own settings, never a request's) supplies values that the name's
parameters override. Keys never travel in a name: ``api_key=`` is refused, and so is a
URL with credentials in it. Keys come from the environment only.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError

# Importing the built-in providers registers them (the module imports no SDK).
from codi_eval.models import providers as _builtin  # noqa: F401
from codi_eval.models.base import Model
from codi_eval.models.params import (
    SECRET_PARAMS,
    BaseUrl,
    ModelParams,
    provider,
    providers,
)
from codi_eval.settings import Settings, get_settings

__all__ = [
    "ModelParams",
    "ModelRef",
    "accepted_forms",
    "BaseUrl",
    "get_model",
    "parse_model_name",
    "provider",
    "providers",
]


@dataclass(frozen=True)
class ModelRef:
    """A checked model name: provider family, the provider's model id and its parameters."""

    name: str
    family: str
    model_id: str
    params: ModelParams

    def build(self) -> Model:
        return self.params.build(self.name, self.model_id)

    def fix_hint(self, kind: str) -> str:
        return self.params.fix_hint(kind)

    def identity(self, settings: Settings | None = None) -> dict[str, Any]:
        """Everything about this model that decides its answers, and nothing secret."""
        return {
            "provider": self.family,
            "endpoint": self.params.endpoint(settings or get_settings()),
            "model": self.model_id,
            **self.params.identity(),
        }


def accepted_forms() -> tuple[str, ...]:
    return tuple(p.form for p in providers().values())


def _describe(error: ValidationError, name: str, params: ModelParams | type[ModelParams]) -> str:
    first = error.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "?"
    if first["type"] == "extra_forbidden":
        allowed = ", ".join(sorted(params.model_fields)) or "none"
        return f"model {name!r}: unknown parameter {key!r}; accepted: {allowed}"
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"model {name!r}: parameter {key!r} {message[:1].lower()}{message[1:]}"


def parse_model_name(name: str, defaults: dict[str, Any] | None = None) -> ModelRef:
    """A checked :class:`ModelRef` for a model name; nothing is built, no SDK imported.

    The one place that knows the accepted forms: specs are validated with it before
    anything runs and :func:`get_model` builds from it. ``ValueError`` names the
    accepted forms (with a did-you-mean), or the parameter that is wrong.
    """
    forms = accepted_forms()
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"model name must be a non-empty string; accepted: {'; '.join(forms)}")
    text = name.strip()
    base, _, query = text.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False)
    given: dict[str, Any] = {}
    for key, value in pairs:
        if key.lower() in SECRET_PARAMS:
            raise ValueError(
                f"model {text!r}: keys are never part of a model name (it is stored with the "
                "experiment and shown in tables); set the provider's key in the environment "
                "(GEMINI_API_KEY, OPENAI_API_KEY)"
            )
        if key in given:
            raise ValueError(f"model {text!r}: parameter {key!r} is given twice")
        given[key] = value
    for family, cls in providers().items():
        model_id = cls.match(base)
        if model_id is None:
            continue
        # The operator's defaults are shared across providers: keys for another one are skipped.
        values = {k: v for k, v in (defaults or {}).items() if k in cls.model_fields}
        values.update(given)
        try:
            params = cls.model_validate(values)
        except ValidationError as exc:
            raise ValueError(_describe(exc, text, cls)) from None
        return ModelRef(name=text, family=family, model_id=model_id, params=params)
    close = difflib.get_close_matches(base, ["offline", "gemini-2.5-flash", "openai:"], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown model {text!r}{hint}; accepted: {'; '.join(forms)}")


def get_model(name: str, defaults: dict[str, Any] | None = None) -> Model:
    """The model a spec names; ``ValueError`` naming the accepted forms for anything else."""
    return parse_model_name(name, defaults).build()
