"""The LLM response cache: model answers stored in the store, keyed by all that determines them."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import update

from codi_eval.models.base import GenerateRequest, Generation, Usage
from codi_eval.settings import Settings
from codi_eval.store.engine import Store
from codi_eval.store.models import LLMCacheEntry, utcnow
from codi_eval.store.writes import insert_ignore


def prompt_hash(request: GenerateRequest) -> str:
    text = json.dumps({"system": request.system, "prompt": request.prompt}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_identity(name: str, provider: str, settings: Settings | None = None) -> dict[str, Any]:
    """What about model ``name`` decides its answers: provider, endpoint, model and the
    answer-changing parameters (:meth:`~codi_eval.models.registry.ModelRef.identity`).

    Nothing secret: keys never travel in a model name, and the endpoint keeps scheme, host,
    port and path only (credentials or a query in an environment-supplied URL are dropped).
    A name the registry does not know (a test double) is identified by provider and name.
    """
    from codi_eval.models.registry import parse_model_name

    try:
        identity = parse_model_name(name).identity(settings)
    except ValueError:
        return {"provider": provider, "endpoint": None, "model": name}
    endpoint = identity.get("endpoint")
    if isinstance(endpoint, str):
        parts = urlsplit(endpoint)
        netloc = parts.hostname or ""
        if parts.port is not None:
            netloc += f":{parts.port}"
        identity["endpoint"] = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return identity


def cache_params(request: GenerateRequest, repeat: int) -> dict[str, Any]:
    """Every generation parameter that can change an answer (not the timeout), and the repeat."""
    return {
        "temperature": request.temperature,
        "seed": request.seed,
        "max_tokens": request.max_tokens,
        "json_schema": request.json_schema,
        "repeat": repeat,
    }


def cache_key(identity: dict[str, Any], request: GenerateRequest, repeat: int) -> str:
    """The model's identity (provider, endpoint, model, answer-changing parameters; see
    :func:`model_identity`), the full prompt, every generation parameter, the repeat index
    and the seed.

    The endpoint is in the key so that two servers serving the same model name never
    answer for each other; the repeat index so that repeats stay independent samples.
    """
    payload = json.dumps(
        {
            "model": identity,
            "prompt": prompt_hash(request),
            "params": cache_params(request, repeat),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, key: str) -> Generation | None:
        # One round trip: count the hit and read the answer (UPDATE ... RETURNING).
        async with self.store.transaction() as session:
            entry = await session.scalar(
                update(LLMCacheEntry)
                .where(LLMCacheEntry.key == key)
                .values(hits=LLMCacheEntry.hits + 1)
                .returning(LLMCacheEntry.response)
            )
        if entry is None:
            return None
        usage = entry.get("usage") or {}
        return Generation(
            text=entry["text"],
            usage=Usage(**usage),
            model=entry["model"],
            provider=entry["provider"],
            latency_ms=entry.get("latency_ms", 0.0),
            finish_reason=entry.get("finish_reason"),
            cost=entry.get("cost"),
            cached=True,
        )

    async def put(
        self, key: str, request: GenerateRequest, repeat: int, generation: Generation
    ) -> None:
        response = {
            "text": generation.text,
            "model": generation.model,
            "provider": generation.provider,
            "latency_ms": generation.latency_ms,
            "finish_reason": generation.finish_reason,
            "cost": generation.cost,
            "usage": {
                "prompt_tokens": generation.usage.prompt_tokens,
                "completion_tokens": generation.usage.completion_tokens,
                "total_tokens": generation.usage.total_tokens,
            },
        }
        async with self.store.transaction() as session:
            await insert_ignore(
                session,
                LLMCacheEntry,
                [
                    {
                        "key": key,
                        "provider": generation.provider,
                        "model": generation.model,
                        "prompt_hash": prompt_hash(request),
                        "params": cache_params(request, repeat),
                        "response": response,
                        "hits": 0,
                        "created_at": utcnow(),
                    }
                ],
                ("key",),
            )
