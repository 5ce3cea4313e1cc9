"""``/prompts``: the versioned prompt registry (read-only; `codi-eval prompts seed` writes it)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from codi_eval.api import queries
from codi_eval.api.auth import connection
from codi_eval.api.errors import not_found
from codi_eval.api.http import iso, json_ok


def _prompt(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "version": row.version,
        "ref": f"{row.name}@{row.version}",
        "variables": list(row.variables or []),
        "description": row.description,
        "template_hash": row.template_hash,
        "created_at": iso(row.created_at),
        "template": row.template,
    }


async def list_prompts(request: web.Request) -> web.Response:
    conn = connection(request)
    rows = await queries.prompts(conn)
    return json_ok({"prompts": [_prompt(r) for r in rows]})


async def get_prompt(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    conn = connection(request)
    rows = await queries.prompts(conn, name)
    if not rows:
        raise not_found(f"prompt {name!r}", field="name")
    return json_ok({"prompts": [_prompt(r) for r in rows]})


ROUTES = {"listPrompts": list_prompts, "getPrompt": get_prompt}
