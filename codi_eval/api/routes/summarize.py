"""``POST /summarize/code``: Chain of Density, judged; traced only for users who opted in."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from codi_eval.api.auth import current_user
from codi_eval.api.errors import ApiError
from codi_eval.api.operations import Inputs, operation
from codi_eval.api.schemas import SummarizeRequest, SummarizeResponse
from codi_eval.api.state import SERVICES
from codi_eval.models.base import ModelError
from codi_eval.summarize import CoDSettings, Summarizer

# How a failed model call is answered: the provider's trouble is not the client's fault
# (5xx), except rate limiting (429, retry later) and content the provider blocked (422).
# The messages are ours: a provider's own text can name endpoints and internals.
_MODEL_ERRORS: dict[str, tuple[int, str, str]] = {
    "rate_limited": (429, "rate_limited", "the model provider is rate limiting; retry later"),
    "timeout": (504, "upstream_timeout", "the model provider did not answer in time"),
    "server_error": (502, "upstream_error", "the model provider failed"),
    "bad_request": (502, "upstream_rejected", "the model provider refused the request"),
    "auth": (502, "upstream_auth", "the server's credentials for this model were refused"),
    "empty": (502, "upstream_empty", "the model provider returned no answer"),
    "blocked": (422, "content_blocked", "the model provider blocked this content"),
}


@operation(
    "POST",
    "/summarize/code",
    id="summarizeCode",
    tag="summarize",
    summary="Chain of Density summary of code, judged; traced only for opted-in users.",
    response=SummarizeResponse,
    body=SummarizeRequest,
    errors=(422, 502),
)
async def summarize_code(request: web.Request, inputs: Inputs) -> SummarizeResponse:
    user = current_user(request)
    services = request.app[SERVICES]
    settings = services.settings
    body = inputs.body
    # Opik gets a copy only if someone can receive it: the server's credentials or the user's own.
    export = user.opik_enabled and (settings.opik_configured or user.has_api_key)
    if services.iteration_prompt is None or services.final_prompt is None:
        raise ApiError(503, "not_configured", "this server has no summary prompts configured")
    summarizer = Summarizer(
        model=services.models[body.model or settings.default_model],
        judge=services.judge,
        iteration_prompt=services.iteration_prompt,
        final_prompt=services.final_prompt,
        tracer=services.tracer,
        settings=CoDSettings(density_iterations=body.density_iterations),
    )
    async with services.limits.summary_slot(user.id):
        try:
            outcome = await summarizer.summarize(
                code=body.code,
                instruction=body.instruction,
                language=body.language,
                trace_kwargs={
                    "user_id": user.id,
                    "enabled": user.opik_enabled,
                    "export": export,
                    "tags": ["api"],
                },
            )
        except ModelError as exc:
            status, code, message = _MODEL_ERRORS.get(
                exc.kind, (502, "upstream_error", "the model provider failed")
            )
            headers: dict[str, Any] = {}
            if exc.retry_after_s is not None:
                headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
            raise ApiError(status, code, message, headers=headers) from None
    if export:
        services.schedule_opik_sync()
    judgement = outcome.judgement
    return SummarizeResponse(
        summary=outcome.summary,
        trace_id=outcome.trace_id,
        quality_score=outcome.quality_score,
        quality_reason=judgement.reason if judgement is not None else None,
    )
