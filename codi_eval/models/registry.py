"""Model names, as a spec writes them, turned into :class:`Model` objects.

Accepted names:

- ``offline`` or ``offline?latency_ms=50`` — the deterministic baseline;
- ``gemini-<version>`` (``gemini-2.5-flash``) — Google's Gemini API;
- ``openai:<model>`` (``openai:llama3.1``) — any OpenAI-compatible server.

A query string carries parameters (``gemini-2.5-flash?timeout_s=30``); the ``settings``
dict supplies defaults that the name's own parameters override.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from codi_eval.models.base import Model

__all__ = ["ACCEPTED_FORMS", "get_model", "parse_model_name"]

ACCEPTED_FORMS = (
    "'offline' (optionally 'offline?latency_ms=50')",
    "'gemini-<version>' such as 'gemini-2.5-flash'",
    "'openai:<model>' such as 'openai:llama3.1'",
)

_PARAMS: dict[str, dict[str, type]] = {
    "offline": {"latency_ms": float},
    "gemini": {"api_key": str, "base_url": str, "timeout_s": float, "prices_file": str},
    "openai": {
        "api_key": str,
        "base_url": str,
        "timeout_s": float,
        "json_mode": str,
        "prices_file": str,
    },
}


def _coerce(
    family: str, settings: dict[str, Any], query: dict[str, str], name: str
) -> dict[str, Any]:
    allowed = _PARAMS[family]
    # Settings are shared across providers, so keys meant for another one are skipped;
    # the name's own parameters are checked strictly, a typo there is an error.
    params = {k: v for k, v in settings.items() if k in allowed}
    params.update(query)
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key not in allowed:
            raise ValueError(
                f"model {name!r}: unknown parameter {key!r}; accepted: {', '.join(sorted(allowed))}"
            )
        if value is None:
            continue
        try:
            out[key] = allowed[key](value)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"model {name!r}: parameter {key!r} must be {allowed[key].__name__}, got {value!r}"
            ) from exc
    return out


def parse_model_name(
    name: str, settings: dict[str, Any] | None = None
) -> tuple[str, str, dict[str, Any]]:
    """``(family, model id, parameters)`` for a model name, checked but not built.

    The one place that knows the accepted forms: a spec is validated with it before anything
    runs (no provider SDK is imported), and :func:`get_model` builds from it.
    ``ValueError`` names the accepted forms, or the parameter that is wrong.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            f"model name must be a non-empty string; accepted: {'; '.join(ACCEPTED_FORMS)}"
        )
    base, _, query = name.strip().partition("?")
    query_params = dict(parse_qsl(query, keep_blank_values=True))
    defaults = dict(settings or {})
    if base == "offline":
        return "offline", base, _coerce("offline", defaults, query_params, name)
    if base.startswith("gemini-") and len(base) > len("gemini-"):
        return "gemini", base, _coerce("gemini", defaults, query_params, name)
    if base.startswith("openai:") and len(base) > len("openai:"):
        return "openai", base[len("openai:") :], _coerce("openai", defaults, query_params, name)
    raise ValueError(f"unknown model {name!r}; accepted: {'; '.join(ACCEPTED_FORMS)}")


def get_model(name: str, settings: dict[str, Any] | None = None) -> Model:
    """The model a spec names; ``ValueError`` naming the accepted forms for anything else."""
    family, model_id, params = parse_model_name(name, settings)
    if family == "offline":
        from codi_eval.models.offline import OfflineModel

        return OfflineModel(name.strip(), **params)
    if family == "gemini":
        from codi_eval.models.gemini import GeminiModel

        model = GeminiModel(model_id, **params)
        model.name = name.strip()
        return model
    from codi_eval.models.openai_compat import OpenAICompatModel

    return OpenAICompatModel(model_id, **params)
