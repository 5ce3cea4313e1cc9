"""``codi-eval users``: API users and the lifecycle of their bearer tokens."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta

import click
from rich.table import Table

from codi_eval.cli import console, emit_json, open_store, out, run_async
from codi_eval.errors import InputError

_DURATION = re.compile(r"^\s*(\d{1,6})\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str | None) -> timedelta | None:
    """``30d``, ``12h``, ``90m`` or ``2w`` as a timedelta (None when not given)."""
    if text is None:
        return None
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise InputError(
            f"{text!r} is not a duration such as 30d, 12h, 90m or 2w", field="--expires"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _expiry(expires: str | None) -> datetime | None:
    from codi_eval.store.models import utcnow

    span = parse_duration(expires)
    return None if span is None else utcnow() + span


def _print_token(token: str, name: str, expires_at: datetime | None, verb: str) -> None:
    out.print(token)
    until = f", valid until {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else ""
    console.print(
        f"{verb} the token of {name}{until}. It is shown only once: send it as "
        "'Authorization: Bearer <token>'."
    )


_EXPIRES = click.option(
    "--expires",
    metavar="DURATION",
    default=None,
    help="Token lifetime such as 30d, 12h, 90m or 2w [default: no expiry].",
)


@click.group()
def users() -> None:
    """Create API users and manage their tokens (create, rotate, revoke, list)."""


@users.command()
@click.argument("name")
@_EXPIRES
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def create(name: str, expires: str | None, as_json: bool) -> None:
    """Create user NAME and print their API token (shown once; only its hash is stored)."""
    from codi_eval.api import queries
    from codi_eval.secrets import hash_token

    name = name.strip()
    if not name or len(name) > 255:
        raise InputError("a user name is 1 to 255 characters", field="NAME")
    expires_at = _expiry(expires)
    token = secrets.token_urlsafe(32)
    async with open_store() as store, store.engine.begin() as conn:
        user_id = await queries.create_user(conn, name, hash_token(token), expires_at=expires_at)
    if user_id is None:
        raise InputError(f"a user named {name!r} already exists", field="NAME")
    if as_json:
        emit_json({"id": user_id, "name": name, "token": token, "expires_at": expires_at})
        return
    _print_token(token, name, expires_at, f"created user {name} (id {user_id}) with")


@users.command()
@click.argument("name")
@_EXPIRES
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def rotate(name: str, expires: str | None, as_json: bool) -> None:
    """Give NAME a new token (printed once); the old one stops working at once.

    Rotating a revoked user's token gives them access again.
    """
    from codi_eval.api import queries
    from codi_eval.secrets import hash_token

    expires_at = _expiry(expires)
    token = secrets.token_urlsafe(32)
    async with open_store() as store, store.engine.begin() as conn:
        found = await queries.rotate_token(conn, name, hash_token(token), expires_at=expires_at)
    if not found:
        raise InputError(f"no user named {name!r}", field="NAME")
    if as_json:
        emit_json({"name": name, "token": token, "expires_at": expires_at})
        return
    _print_token(token, name, expires_at, "rotated")


@users.command()
@click.argument("name")
@run_async
async def revoke(name: str) -> None:
    """Revoke NAME's token at once (every request with it gets 401)."""
    from codi_eval.api import queries

    async with open_store() as store, store.engine.begin() as conn:
        found = await queries.revoke_token(conn, name)
    if not found:
        raise InputError(f"no user named {name!r}", field="NAME")
    console.print(f"revoked the token of {name}; `codi-eval users rotate {name}` issues a new one")


def _token_state(revoked: datetime | None, expires: datetime | None, now: datetime) -> str:
    if revoked is not None:
        return "revoked"
    if expires is not None and expires <= now:
        return "expired"
    return "active"


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def list_(as_json: bool) -> None:
    """List users, their tokens' state (created, last used, expiry) and Opik preferences.

    Never tokens or keys.
    """
    from codi_eval.api import queries
    from codi_eval.store.models import utcnow

    now = utcnow()
    async with open_store() as store, store.engine.connect() as conn:
        rows = await queries.all_users(conn)

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    data = [
        {
            "id": r.id,
            "name": r.name,
            "token": _token_state(r.revoked_at, r.token_expires_at, now),
            "created_at": iso(r.created_at),
            "token_created_at": iso(r.token_created_at),
            "expires_at": iso(r.token_expires_at),
            "last_used_at": iso(r.last_used_at),
            "opik_enabled": bool(r.opik_enabled),
            "opik_workspace": r.opik_workspace,
            "has_api_key": bool(r.has_api_key),
        }
        for r in rows
    ]
    if as_json:
        emit_json(data)
        return
    table = Table("id", "name", "token", "created", "last used", "expires", "tracing", "workspace")
    for u in data:
        table.add_row(
            str(u["id"]),
            u["name"],
            u["token"],
            (u["token_created_at"] or u["created_at"] or "")[:16],
            (u["last_used_at"] or "never")[:16],
            (u["expires_at"] or "never")[:16],
            "on" if u["opik_enabled"] else "off",
            (u["opik_workspace"] or "") + (" (own key)" if u["has_api_key"] else ""),
        )
    out.print(table)
    if not data:
        out.print("no users yet: codi-eval users create NAME")


commands = [users]
