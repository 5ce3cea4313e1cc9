"""Environment → :class:`Settings`. The one place in codi-eval that reads ``os.environ``."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite:///codi_eval.db"
_PACKAGE_ROOT = Path(__file__).resolve().parent


def _find_config_dir() -> Path:
    # An editable install or a checkout keeps configs/ beside the package; a user may
    # also run from a checkout with a different install, so the working directory counts.
    for candidate in (_PACKAGE_ROOT.parent / "configs", Path.cwd() / "configs"):
        if candidate.is_dir():
            return candidate
    return _PACKAGE_ROOT.parent / "configs"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    config_dir: Path = field(default_factory=_find_config_dir)
    secret_key: str | None = None
    # Opik: the SDK reads its own variables; we only look at them to decide whether
    # Opik is configured at all (no client is created otherwise).
    opik_url: str | None = None
    opik_api_key: str | None = field(default=None, repr=False)
    opik_workspace: str | None = None
    opik_project: str | None = None
    opik_config_file: Path | None = None
    gemini_api_key: str | None = field(default=None, repr=False)
    default_model: str = "offline"
    default_judge: str = "offline"

    @property
    def prompts_dir(self) -> Path:
        return self.config_dir / "prompts"

    @property
    def prices_file(self) -> Path:
        return self.config_dir / "prices.yaml"

    @property
    def opik_configured(self) -> bool:
        return bool(self.opik_url or self.opik_api_key or self.opik_config_file)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        config_dir = env.get("CODI_EVAL_CONFIG_DIR")
        opik_config = Path(env.get("OPIK_CONFIG_PATH") or Path.home() / ".opik.config")
        return cls(
            database_url=env.get("CODI_EVAL_DATABASE_URL") or DEFAULT_DATABASE_URL,
            config_dir=Path(config_dir) if config_dir else _find_config_dir(),
            secret_key=env.get("CODI_EVAL_SECRET_KEY") or None,
            opik_url=env.get("OPIK_URL_OVERRIDE") or None,
            opik_api_key=env.get("OPIK_API_KEY") or None,
            opik_workspace=env.get("OPIK_WORKSPACE") or None,
            opik_project=env.get("OPIK_PROJECT_NAME") or None,
            opik_config_file=opik_config if opik_config.is_file() else None,
            gemini_api_key=env.get("GEMINI_API_KEY") or env.get("GOOGLE_API_KEY") or None,
            default_model=env.get("CODI_EVAL_DEFAULT_MODEL") or "offline",
            default_judge=env.get("CODI_EVAL_DEFAULT_JUDGE") or "offline",
        )


def get_settings() -> Settings:
    return Settings.from_env()


def prices_file() -> Path:
    """The prices file, cheaply: every model call prices itself."""
    return _prices_file_for(os.environ.get("CODI_EVAL_CONFIG_DIR") or None)


@functools.lru_cache(maxsize=16)
def _prices_file_for(config_dir: str | None) -> Path:
    return (Path(config_dir) if config_dir else _find_config_dir()) / "prices.yaml"
