"""Environment → :class:`Settings`. The one place in codi-eval that reads ``os.environ``."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

#: The store's file name, in a project directory or the per-user data directory.
STORE_FILE = "codi_eval.db"
#: A directory that marks a project with its own store (``.codi-eval/codi_eval.db``).
PROJECT_DIR = ".codi-eval"
_PACKAGE_ROOT = Path(__file__).resolve().parent


def user_store_path() -> Path:
    """The per-user store: ``$XDG_DATA_HOME/codi-eval/codi_eval.db`` on Linux
    (``~/.local/share/...``), ``~/Library/Application Support/codi-eval/...`` on macOS."""
    import platformdirs

    return platformdirs.user_data_path("codi-eval", appauthor=False) / STORE_FILE


def project_store_path(start: Path | None = None) -> Path | None:
    """The store of the nearest project directory: the first of ``start`` (default: the
    working directory) and its parents that holds ``codi_eval.db`` or a ``.codi-eval/``
    directory (whose ``codi_eval.db`` is then the store, created on first use)."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / STORE_FILE).is_file():
            return directory / STORE_FILE
        if (directory / PROJECT_DIR).is_dir():
            return directory / PROJECT_DIR / STORE_FILE
    return None


def default_database_url(start: Path | None = None) -> str:
    """Where the store is when ``CODI_EVAL_DATABASE_URL`` is not set: the nearest project
    directory's, else the per-user one. The same store wherever in a project you stand, and
    the same per-user store from any directory outside one."""
    return f"sqlite:///{project_store_path(start) or user_store_path()}"


def _find_config_dir() -> Path:
    # An editable install or a checkout keeps configs/ beside the package; a user may
    # also run from a checkout with a different install, so the working directory counts.
    for candidate in (_PACKAGE_ROOT.parent / "configs", Path.cwd() / "configs"):
        if candidate.is_dir():
            return candidate
    return _PACKAGE_ROOT.parent / "configs"


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=default_database_url)
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
    # Where the SDKs send calls when a model name does not say (part of the cache key).
    gemini_base_url: str | None = None
    openai_base_url: str | None = None
    default_model: str = "offline"
    default_judge: str = "offline"
    # The API (DESIGN.md "Trust boundaries"): what a request may choose among, and its limits.
    # ``api_models`` maps the names a request may send to the operator's model names
    # (CODI_EVAL_API_MODELS="offline,gemini-2.5-flash,fast=gemini-2.5-flash?timeout_s=10").
    api_models: tuple[tuple[str, str], ...] = ()
    api_max_in_flight: int = 256
    api_user_requests_per_minute: float = 600.0
    api_user_summaries_per_minute: float = 30.0
    api_user_concurrent_summaries: int = 4
    api_summary_workers: int = 16
    api_request_timeout_s: float = 120.0
    api_body_timeout_s: float = 10.0
    # Database connections ``serve`` may open in all, shared out among its worker processes.
    api_db_connections: int = 20
    # Runs: a lease's length (renewed at a third of it), and how long a store may be away.
    lease_s: float = 60.0
    store_outage_s: float = 60.0
    # Workspaces a user may send traces to with the server's Opik key (the server's own
    # OPIK_WORKSPACE is always allowed); any workspace with the user's own key.
    opik_workspaces: tuple[str, ...] = ()

    @property
    def prompts_dir(self) -> Path:
        return self.config_dir / "prompts"

    @property
    def prices_file(self) -> Path:
        return self.config_dir / "prices.yaml"

    @property
    def offered_models(self) -> dict[str, str]:
        """The models a request may name, each mapped to the operator's model name."""
        offered = dict(self.api_models) if self.api_models else {"offline": "offline"}
        offered.setdefault(self.default_model, self.default_model)
        return offered

    def server_opik_workspaces(self) -> frozenset[str]:
        """Workspaces that may receive traces sent with the server's own Opik key."""
        return frozenset(
            {*self.opik_workspaces, *([self.opik_workspace] if self.opik_workspace else [])}
        )

    @property
    def opik_configured(self) -> bool:
        return bool(self.opik_url or self.opik_api_key or self.opik_config_file)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        config_dir = env.get("CODI_EVAL_CONFIG_DIR")
        opik_config = Path(env.get("OPIK_CONFIG_PATH") or Path.home() / ".opik.config")
        return cls(
            database_url=env.get("CODI_EVAL_DATABASE_URL") or default_database_url(),
            config_dir=Path(config_dir) if config_dir else _find_config_dir(),
            secret_key=env.get("CODI_EVAL_SECRET_KEY") or None,
            opik_url=env.get("OPIK_URL_OVERRIDE") or None,
            opik_api_key=env.get("OPIK_API_KEY") or None,
            opik_workspace=env.get("OPIK_WORKSPACE") or None,
            opik_project=env.get("OPIK_PROJECT_NAME") or None,
            opik_config_file=opik_config if opik_config.is_file() else None,
            gemini_api_key=env.get("GEMINI_API_KEY") or env.get("GOOGLE_API_KEY") or None,
            gemini_base_url=env.get("GOOGLE_GEMINI_BASE_URL") or None,
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            default_model=env.get("CODI_EVAL_DEFAULT_MODEL") or "offline",
            default_judge=env.get("CODI_EVAL_DEFAULT_JUDGE") or "offline",
            api_models=_aliases(env.get("CODI_EVAL_API_MODELS")),
            api_max_in_flight=_number(env, "CODI_EVAL_API_MAX_IN_FLIGHT", 256, int),
            api_user_requests_per_minute=_number(env, "CODI_EVAL_API_USER_RPM", 600.0, float),
            api_user_summaries_per_minute=_number(
                env, "CODI_EVAL_API_USER_SUMMARIES_PER_MINUTE", 30.0, float
            ),
            api_user_concurrent_summaries=_number(
                env, "CODI_EVAL_API_USER_CONCURRENT_SUMMARIES", 4, int
            ),
            api_summary_workers=_number(env, "CODI_EVAL_API_SUMMARY_WORKERS", 16, int),
            api_request_timeout_s=_number(env, "CODI_EVAL_API_REQUEST_TIMEOUT_S", 120.0, float),
            api_body_timeout_s=_number(env, "CODI_EVAL_API_BODY_TIMEOUT_S", 10.0, float),
            api_db_connections=_number(env, "CODI_EVAL_API_DB_CONNECTIONS", 20, int),
            lease_s=_number(env, "CODI_EVAL_LEASE_S", 60.0, float),
            store_outage_s=_number(env, "CODI_EVAL_STORE_OUTAGE_S", 60.0, float),
            opik_workspaces=tuple(
                w.strip()
                for w in (env.get("CODI_EVAL_OPIK_WORKSPACES") or "").split(",")
                if w.strip()
            ),
        )


class SettingsError(ValueError):
    """An environment variable holds something codi-eval cannot use."""


N = TypeVar("N", int, float)


def _number(env: Mapping[str, str], name: str, default: N, kind: type[N]) -> N:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a {kind.__name__}, not {raw!r}") from None
    if not (value > 0 and value < float("inf")):
        raise SettingsError(f"{name} must be above 0, not {raw!r}")
    return value


def _aliases(raw: str | None) -> tuple[tuple[str, str], ...]:
    """``"offline,fast=gemini-2.5-flash?timeout_s=10"`` → ((offline, offline), (fast, ...))."""
    out = []
    for entry in (raw or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        alias, sep, target = entry.partition("=")
        alias, target = alias.strip(), (target.strip() if sep else alias.strip())
        if not alias or not target or "?" in alias:
            raise SettingsError(
                f"CODI_EVAL_API_MODELS: {entry!r} is not NAME or ALIAS=MODEL (an alias has no '?')"
            )
        out.append((alias, target))
    return tuple(out)


def get_settings() -> Settings:
    return Settings.from_env()


def prices_file() -> Path:
    """The prices file, cheaply: every model call prices itself."""
    return _prices_file_for(os.environ.get("CODI_EVAL_CONFIG_DIR") or None)


@functools.lru_cache(maxsize=16)
def _prices_file_for(config_dir: str | None) -> Path:
    return (Path(config_dir) if config_dir else _find_config_dir()) / "prices.yaml"
