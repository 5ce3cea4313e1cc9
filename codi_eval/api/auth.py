"""Bearer tokens: ``Authorization: Bearer <token>`` → the user whose token hash matches.

Only the SHA-256 of a token is stored (``codi-eval users create`` prints the token once),
so a leaked database does not leak tokens. Neither the token nor its hash is ever logged.
A revoked token, an expired one and an unknown one are all 401. After authentication
the user's request quota is charged (429 when it is spent).

The token lookup's connection (in autocommit: reads need no transaction) is reused by the
handler of a body-less request (one pool checkout per request); a request with a body
gives it back first, so no connection is held while a slow client trickles its body in.
"""

from __future__ import annotations

import time
from datetime import datetime

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from codi_eval.api import queries
from codi_eval.api.errors import ApiError, Handler
from codi_eval.api.state import CONN, SERVICES, USER, ApiUser
from codi_eval.secrets import hash_token
from codi_eval.store.models import utcnow

MAX_TOKEN_LENGTH = 512
_CHALLENGE = 'Bearer realm="codi-eval"'
# last_used_at is a courtesy for `users list`, not an audit log: one write a minute at most.
LAST_USED_EVERY_S = 60.0


def _unauthorized(message: str, *, invalid: bool) -> ApiError:
    challenge = _CHALLENGE + (', error="invalid_token"' if invalid else "")
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization")
    if not header:
        raise _unauthorized("this endpoint needs 'Authorization: Bearer <token>'", invalid=False)
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    # Tokens are URL-safe ASCII; anything else (a non-UTF-8 header arrives as surrogate
    # escapes) cannot be one, and must not reach the hash.
    if (
        scheme.lower() != "bearer"
        or not token
        or len(token) > MAX_TOKEN_LENGTH
        or not token.isascii()
        or not token.isprintable()
    ):
        raise _unauthorized("the Authorization header must be 'Bearer <token>'", invalid=True)
    return token


def _check_lifecycle(row: object, now: datetime) -> None:
    if getattr(row, "revoked_at", None) is not None:
        raise _unauthorized("the token has been revoked", invalid=True)
    expires = getattr(row, "token_expires_at", None)
    if expires is not None and expires <= now:
        raise _unauthorized("the token has expired; ask for a new one", invalid=True)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    services = request.app[SERVICES]
    op = services.operation_of(request)
    # Unknown routes and wrong methods answer 404/405 before asking for a token.
    if op is None or op.public:
        return await handler(request)
    token = bearer_token(request)
    conn = await services.store.engine.connect()
    # Each statement commits on its own: the API's reads need no transaction (each would
    # see its own snapshot under READ COMMITTED anyway), and BEGIN and the ROLLBACK on the
    # way back to the pool were two of a GET's six round trips. A handler that writes
    # after reading a body gets a new, transactional connection from connection().
    await conn.execution_options(isolation_level="AUTOCOMMIT")
    try:
        row = await queries.user_by_token_hash(conn, hash_token(token))
        if row is None:
            raise _unauthorized("the token is not valid", invalid=True)
        now = utcnow()
        _check_lifecycle(row, now)
        user = ApiUser(
            id=row.id,
            name=row.name,
            opik_enabled=bool(row.opik_enabled),
            opik_workspace=row.opik_workspace,
            has_api_key=bool(row.has_api_key),
        )
        request[USER] = user
        services.limits.requests.take(user.id)
        if services.due_for_last_used(user.id, time.monotonic(), LAST_USED_EVERY_S):
            await queries.touch_user(conn, user.id, now)
            await conn.commit()
        if op.reads_body:
            await conn.close()
        else:
            request[CONN] = conn
        return await handler(request)
    finally:
        await conn.close()
        held = request.get(CONN)
        if held is not None and held is not conn:
            await held.close()


def current_user(request: web.Request) -> ApiUser:
    return request[USER]


async def connection(request: web.Request) -> AsyncConnection:
    """The request's connection: the token lookup's, or a new one after a body was read."""
    conn = request.get(CONN)
    if conn is None or conn.closed:
        conn = await request.app[SERVICES].store.engine.connect()
        request[CONN] = conn
    return conn
