"""Bearer tokens: ``Authorization: Bearer <token>`` → the user whose token hash matches.

Only the SHA-256 of a token is stored (``codi-eval users create`` prints the token once),
so a leaked database does not leak tokens. Neither the token nor its hash is ever logged.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from codi_eval.api import queries
from codi_eval.api.errors import ApiError, Handler
from codi_eval.api.state import CONN, SERVICES, USER, ApiUser
from codi_eval.secrets import hash_token

PUBLIC_PATHS = frozenset({"/api/v1/health", "/api/v1/openapi.json"})
# Operations that must not hold a pooled connection while they run (model calls take
# seconds); every other handler reuses the connection the token lookup used.
RELEASE_CONNECTION = frozenset({"summarizeCode"})
MAX_TOKEN_LENGTH = 512
_CHALLENGE = 'Bearer realm="codi-eval"'


def _unauthorized(message: str, *, invalid: bool) -> ApiError:
    challenge = _CHALLENGE + (', error="invalid_token"' if invalid else "")
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization")
    if not header:
        raise _unauthorized("this endpoint needs 'Authorization: Bearer <token>'", invalid=False)
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
        raise _unauthorized("the Authorization header must be 'Bearer <token>'", invalid=True)
    return token


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Unknown routes and wrong methods answer 404/405 before asking for a token.
    if request.path in PUBLIC_PATHS or request.match_info.http_exception is not None:
        return await handler(request)
    token = bearer_token(request)
    store = request.app[SERVICES].store
    async with store.engine.connect() as conn:
        row = await queries.user_by_token_hash(conn, hash_token(token))
        if row is None:
            raise _unauthorized("the token is not valid", invalid=True)
        request[USER] = ApiUser(
            id=row.id,
            name=row.name,
            opik_enabled=bool(row.opik_enabled),
            opik_workspace=row.opik_workspace,
            has_api_key=bool(row.has_api_key),
        )
        if request.match_info.route.name not in RELEASE_CONNECTION:
            request[CONN] = conn
            return await handler(request)
    return await handler(request)


def current_user(request: web.Request) -> ApiUser:
    return request[USER]


def connection(request: web.Request) -> AsyncConnection:
    """The request's connection (already used for the token lookup)."""
    return request[CONN]
