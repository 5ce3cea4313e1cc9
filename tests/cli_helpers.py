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
