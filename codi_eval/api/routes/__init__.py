"""Route handlers, one module per concern; importing them declares their operations."""

from __future__ import annotations

from codi_eval.api.routes import experiments, meta, prompts, summarize, traces, users

__all__ = ["experiments", "meta", "prompts", "summarize", "traces", "users"]
