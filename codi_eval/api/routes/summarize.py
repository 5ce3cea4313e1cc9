"""``POST /summarize/code``: Chain of Density, judged; traced only for users who opted in."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from codi_eval.api.auth import current_user
from codi_eval.api.errors import ApiError
from codi_eval.api.http import json_ok, read_json
from codi_eval.api.state import SERVICES
from codi_eval.errors import InputError
from codi_eval.models.base import ModelError

# How a failed model call is answered: the provider's trouble is not the client's fault
# (5xx), except rate limiting (429, retry later) and content the provider blocked (422).
_MODEL_ERRORS: dict[str, tuple[int, str]] = {
    "rate_limited": (429, "rate_limited"),
    "timeout": (504, "upstream_timeout"),
    "server_error": (502, "upstream_error"),
    "bad_request": (502, "upstream_rejected"),
    "auth": (502, "upstream_auth"),
    "empty": (502, "upstream_empty"),
    "blocked": (422, "content_blocked"),
}


async def summarize_code(request: web.Request) -> web.Response:
    from codi_eval.summarize import build_summarizer

    user = current_user(request)
    services = request.app[SERVICES]
    settings = services.settings
    body = await read_json(request, "SummarizeRequest")
    # Opik gets a copy only if someone can receive it: the server's credentials or the user's own.
    export = user.opik_enabled and (settings.opik_configured or user.has_api_key)
    try:
        summarizer = await build_summarizer(
            services.store,
            services.tracer,
            model=body.get("model") or settings.default_model,
            judge=settings.default_judge,
            density_iterations=body["density_iterations"],
        )
        outcome = await summarizer.summarize(
            code=body["code"],
            instruction=body.get("instruction"),
            language=body["language"],
            trace_kwargs={
                "user_id": user.id,
                "enabled": user.opik_enabled,
                "export": export,
                "tags": ["api"],
            },
        )
    except InputError as exc:
        raise ApiError(400, "invalid_value", exc.message, field=exc.field or "model") from None
    except ModelError as exc:
        status, code = _MODEL_ERRORS.get(exc.kind, (502, "upstream_error"))
        headers: dict[str, Any] = {}
        if exc.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
        raise ApiError(status, code, f"the model call failed: {exc}", headers=headers) from None
    if export:
        services.schedule_opik_sync()
    judgement = outcome.judgement
    return json_ok(
        {
            "summary": outcome.summary,
            "trace_id": str(outcome.trace_id) if outcome.trace_id is not None else None,
            "quality_score": outcome.quality_score,
            "quality_reason": judgement.reason if judgement is not None else None,
        }
    )


ROUTES = {"summarizeCode": summarize_code}
