"""``/users/me/opik-settings``: the caller's opt-in to tracing and their Opik credentials."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from codi_eval.api import queries
from codi_eval.api.auth import connection, current_user
from codi_eval.api.errors import ApiError
from codi_eval.api.http import json_ok, read_json
from codi_eval.api.state import SERVICES
from codi_eval.secrets import SecretKeyMissing, encrypt


def _settings_body(row: Any) -> dict[str, Any]:
    # has_api_key, never the key: the key is write-only.
    return {
        "opik_enabled": bool(row.opik_enabled),
        "opik_workspace": row.opik_workspace,
        "has_api_key": bool(row.has_api_key),
    }


async def get_opik_settings(request: web.Request) -> web.Response:
    user = current_user(request)
    return json_ok(
        {
            "opik_enabled": user.opik_enabled,
            "opik_workspace": user.opik_workspace,
            "has_api_key": user.has_api_key,
        }
    )


async def update_opik_settings(request: web.Request) -> web.Response:
    user = current_user(request)
    services = request.app[SERVICES]
    body = await read_json(request, "OpikSettingsUpdate")
    values: dict[str, Any] = {}
    if "opik_enabled" in body:
        values["opik_enabled"] = body["opik_enabled"]
    if "opik_workspace" in body:
        values["opik_workspace"] = body["opik_workspace"]
    if "opik_api_key" in body:
        key = body["opik_api_key"]
        if key is None:
            values["opik_api_key_encrypted"] = None
        else:
            try:
                values["opik_api_key_encrypted"] = encrypt(key, services.settings.secret_key)
            except SecretKeyMissing:
                raise ApiError(
                    400,
                    "secret_key_missing",
                    "this server cannot store Opik API keys: CODI_EVAL_SECRET_KEY is "
                    "not set (ask the operator, or use the server's Opik credentials)",
                    field="opik_api_key",
                ) from None
    conn = connection(request)
    await queries.update_user(conn, user.id, values)
    row = await queries.user_by_id(conn, user.id)
    await conn.commit()
    return json_ok(_settings_body(row))


ROUTES = {"getOpikSettings": get_opik_settings, "updateOpikSettings": update_opik_settings}
