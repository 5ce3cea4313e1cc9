"""``codi-eval users``: API users and their bearer tokens."""

from __future__ import annotations

import secrets

import click
from rich.table import Table

from codi_eval.cli import console, emit_json, open_store, out, run_async
from codi_eval.errors import InputError


@click.group()
def users() -> None:
    """Create and list API users (tokens for the HTTP API)."""


@users.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def create(name: str, as_json: bool) -> None:
    """Create user NAME and print their API token (shown once; only its hash is stored)."""
    from codi_eval.api import queries
    from codi_eval.secrets import hash_token

    name = name.strip()
    if not name or len(name) > 255:
        raise InputError("a user name is 1 to 255 characters", field="NAME")
    token = secrets.token_urlsafe(32)
    async with open_store() as store, store.engine.begin() as conn:
        user_id = await queries.create_user(conn, name, hash_token(token))
    if user_id is None:
        raise InputError(f"a user named {name!r} already exists", field="NAME")
    if as_json:
        emit_json({"id": user_id, "name": name, "token": token})
        return
    out.print(token)
    console.print(
        f"created user {name} (id {user_id}). The token above is shown only once: "
        "send it as 'Authorization: Bearer <token>'."
    )


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def list_(as_json: bool) -> None:
    """List users and their Opik tracing preferences (never tokens or keys)."""
    from codi_eval.api import queries

    async with open_store() as store, store.engine.connect() as conn:
        rows = await queries.all_users(conn)
    data = [
        {
            "id": r.id,
            "name": r.name,
            "opik_enabled": bool(r.opik_enabled),
            "opik_workspace": r.opik_workspace,
            "has_api_key": bool(r.has_api_key),
            "created_at": r.created_at.isoformat() if r.created_at else None,
        }
        for r in rows
    ]
    if as_json:
        emit_json(data)
        return
    table = Table("id", "name", "tracing", "workspace", "own Opik key", "created")
    for u in data:
        table.add_row(
            str(u["id"]),
            u["name"],
            "on" if u["opik_enabled"] else "off",
            u["opik_workspace"] or "",
            "yes" if u["has_api_key"] else "no",
            (u["created_at"] or "")[:19],
        )
    out.print(table)
    if not data:
        out.print("no users yet: codi-eval users create NAME")


commands = [users]
