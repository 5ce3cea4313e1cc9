"""``/users/me/opik-settings``: the caller's opt-in to tracing and their Opik credentials."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from codi_eval.api import queries
from codi_eval.api.auth import connection, current_user
from codi_eval.api.errors import ApiError
from codi_eval.api.operations import Inputs, operation
from codi_eval.api.schemas import OpikSettings, OpikSettingsUpdate
from codi_eval.api.state import SERVICES
from codi_eval.secrets import SecretKeyMissing, encrypt


@operation(
    "GET",
    "/users/me/opik-settings",
    id="getOpikSettings",
    tag="users",
    summary="The caller's Opik tracing preferences.",
    response=OpikSettings,
)
async def get_opik_settings(request: web.Request, inputs: Inputs) -> OpikSettings:
    user = current_user(request)
    return OpikSettings(
        opik_enabled=user.opik_enabled,
        opik_workspace=user.opik_workspace,
        has_api_key=user.has_api_key,
    )


@operation(
    "PATCH",
    "/users/me/opik-settings",
    id="updateOpikSettings",
    tag="users",
    summary="Opt in or out of tracing; set the Opik workspace or the caller's own API key.",
    response=OpikSettings,
    body=OpikSettingsUpdate,
)
async def update_opik_settings(request: web.Request, inputs: Inputs) -> OpikSettings:
    user = current_user(request)
    settings = request.app[SERVICES].settings
    body: OpikSettingsUpdate = inputs.body
    given = body.model_fields_set
    values: dict[str, Any] = {}
    if "opik_enabled" in given:
        values["opik_enabled"] = body.opik_enabled
    if "opik_workspace" in given:
        values["opik_workspace"] = body.opik_workspace
    if "opik_api_key" in given:
        if body.opik_api_key is None:
            values["opik_api_key_encrypted"] = None
        else:
            try:
                values["opik_api_key_encrypted"] = encrypt(body.opik_api_key, settings.secret_key)
            except SecretKeyMissing:
                raise ApiError(
                    400,
                    "secret_key_missing",
                    "this server cannot store Opik API keys: CODI_EVAL_SECRET_KEY is "
                    "not set (ask the operator, or use the server's Opik credentials)",
                    field="opik_api_key",
                ) from None
    conn = await connection(request)
    await queries.update_user(conn, user.id, values)
    row = await queries.user_by_id(conn, user.id)
    await conn.commit()
    return OpikSettings(
        opik_enabled=bool(row.opik_enabled),
        opik_workspace=row.opik_workspace,
        has_api_key=bool(row.has_api_key),
    )
