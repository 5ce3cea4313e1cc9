"""LLM providers behind one protocol, and the registry that builds them from a name."""

from codi_eval.models.base import (
    RETRYABLE,
    GenerateRequest,
    Generation,
    Model,
    ModelError,
    Usage,
)
from codi_eval.models.prices import cost_for, load_prices, price_for
from codi_eval.models.registry import ModelRef, accepted_forms, get_model, parse_model_name

# The SDK-backed providers load google-genai / openai (about a second); import them on use.
_LAZY = {
    "GeminiModel": "codi_eval.models.gemini",
    "OfflineModel": "codi_eval.models.offline",
    "OpenAICompatModel": "codi_eval.models.openai_compat",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'codi_eval.models' has no attribute {name!r}")


__all__ = [
    "RETRYABLE",
    "GeminiModel",
    "GenerateRequest",
    "Generation",
    "Model",
    "ModelError",
    "ModelRef",
    "OfflineModel",
    "OpenAICompatModel",
    "Usage",
    "accepted_forms",
    "cost_for",
    "get_model",
    "load_prices",
    "parse_model_name",
    "price_for",
]
