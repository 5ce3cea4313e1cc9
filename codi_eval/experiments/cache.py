"""The LLM response cache: model answers stored in the store, keyed by all that determines them."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import update

from codi_eval.models.base import GenerateRequest, Generation, Usage
from codi_eval.store.engine import Store
from codi_eval.store.models import LLMCacheEntry, utcnow
from codi_eval.store.writes import insert_ignore


def prompt_hash(request: GenerateRequest) -> str:
    text = json.dumps({"system": request.system, "prompt": request.prompt}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_params(request: GenerateRequest, repeat: int) -> dict[str, Any]:
    return {
        "temperature": request.temperature,
        "seed": request.seed,
        "max_tokens": request.max_tokens,
        "json_schema": request.json_schema,
        "repeat": repeat,
    }


def cache_key(provider: str, model: str, request: GenerateRequest, repeat: int) -> str:
    """Provider, model, full prompt, generation parameters, repeat index and seed.

    The repeat index is in the key so that repeats stay independent samples.
    """
    payload = json.dumps(
        {
            "provider": provider,
            "model": model,
            "prompt": prompt_hash(request),
            "params": cache_params(request, repeat),
        },
        sort_keys=True,
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
