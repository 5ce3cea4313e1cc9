"""Run the real ``codi-eval`` console script in a subprocess with a chosen store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "codi_eval"]


def run_cli(
    *args: str,
    db_url: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "CODI_EVAL_DATABASE_URL": db_url,
        "NO_COLOR": "1",
        "COLUMNS": "200",
        "OPIK_SENTRY_ENABLE": "false",
        "OPIK_ANALYTICS_ENABLE": "false",
    }
    for key in (
        "OPIK_URL_OVERRIDE",
        "OPIK_API_KEY",
        "OPIK_WORKSPACE",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
    ):
        full_env.pop(key, None)
    full_env.update(env or {})
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or ROOT,
        timeout=timeout,
    )


def query(url: str, sql: str, **params: object) -> list[tuple]:  # type: ignore[type-arg]
    """Rows of ``sql`` on the store at ``url``; UUID strings in ``params`` work on both stores."""
    import uuid

    from sqlalchemy import create_engine, text

    if url.startswith("sqlite"):  # SQLAlchemy's Uuid is CHAR(32) hex on SQLite
        params = {
            k: uuid.UUID(v).hex if isinstance(v, str) and len(v) == 36 else v
            for k, v in params.items()
        }
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params).all()]
    finally:
        engine.dispose()


def scalar(url: str, sql: str) -> int:
    """The single number ``sql`` selects (0 for NULL)."""
    return int(query(url, sql)[0][0] or 0)


def execute(url: str, sql: str, **params: object) -> None:
    """Run one statement that changes the store at ``url`` (committed)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params)
    finally:
        engine.dispose()
