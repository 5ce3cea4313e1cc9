"""The ``codi-eval`` command: a thin layer that parses input, calls services, prints.

Exit codes: 0 done, 1 the work failed, 2 bad input (with file, line and field).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from codi_eval.errors import InputError, NotFound
from codi_eval.settings import Settings, SettingsError, get_settings
from codi_eval.store.engine import Store, StoreError, is_sqlite, safe_url

T = TypeVar("T")
console = Console(stderr=True, highlight=False)
# Tables stay readable when piped or captured (rich would otherwise assume 80 columns).
out = Console(highlight=False, width=None if sys.stdout.isatty() else 220)


class Failed(Exception):
    """The work itself failed (exit 1)."""


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str, sort_keys=False))


def error(message: str) -> None:
    """An error line on stderr, never wrapped (paths and URLs in it stay copyable)."""
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)


def run_async(coro_fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run an async command body and map errors onto exit codes with a clear message."""

    @functools.wraps(coro_fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return asyncio.run(coro_fn(*args, **kwargs))
        except (InputError, SettingsError) as exc:
            error(str(exc))
            sys.exit(2)
        except ValueError as exc:
            from codi_eval.datasets import DatasetError

            if not isinstance(exc, DatasetError):
                raise
            error(str(exc))
            sys.exit(2)
        except (StoreError, Failed) as exc:
            error(str(exc))
            sys.exit(1)
        except KeyboardInterrupt:
            console.print("interrupted")
            sys.exit(130)

    return wrapper


# Commands of other modules that only read what a run wrote (cli/analysis.py): they open
# the store with "it must exist", like the read-only commands that say so themselves.
READ_ONLY_COMMANDS = frozenset({"compare", "report", "judge-check"})


class StoreMissing(NotFound):
    """A read-only command was pointed at a SQLite store that does not exist (exit 2)."""


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite store URL (None for PostgreSQL or an in-memory store)."""
    from sqlalchemy.engine import make_url

    if not is_sqlite(url):
        return None
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database).expanduser()


def check_store_exists(url: str) -> None:
    """Raise :class:`StoreMissing` when ``url`` is a SQLite file that does not exist, so a
    read-only command neither creates an empty store nor pretends one was searched."""
    file = sqlite_file(url)
    if file is not None and not file.is_file():
        raise StoreMissing(
            f"there is no store at {safe_url(url)} (nothing has been run with it yet); "
            "run an experiment first (codi-eval run experiments/quickstart.yaml) or set "
            "CODI_EVAL_DATABASE_URL to the store you mean"
        )


def _reads_only() -> bool:
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.info_name in READ_ONLY_COMMANDS


@asynccontextmanager
async def open_store(
    settings: Settings | None = None, *, must_exist: bool | None = None
) -> AsyncIterator[Store]:
    """The configured store. ``must_exist`` (default: whether the running command is one of
    :data:`READ_ONLY_COMMANDS`) refuses a SQLite file that is not there instead of
    creating it."""
    settings = settings or get_settings()
    if must_exist if must_exist is not None else _reads_only():
        check_store_exists(settings.database_url)
    store = await Store.open(settings.database_url)
    try:
        yield store
    finally:
        await store.close()


def iter_commands() -> Iterator[click.Command]:
    for module_name in (
        "db",
        "prompts",
        "datasets",
        "summarize",
        "run",
        "worker",
        "spec",
        "opik",
        "users",
        "serve",
        "analysis",
        "experiments",
        "show",
        "view",
    ):
        try:
            module = __import__(f"codi_eval.cli.{module_name}", fromlist=["commands"])
        except ModuleNotFoundError as exc:
            if exc.name == f"codi_eval.cli.{module_name}":
                continue
            raise
        yield from module.commands


def quiet_libraries(verbose: bool) -> None:
    """Alembic logs every migration step at INFO ("Running upgrade ..."); a user sees those
    lines only with ``-v``."""
    level = logging.INFO if verbose else logging.WARNING
    for name in ("alembic", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(level)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="codi-eval")
@click.option(
    "-v", "--verbose", is_flag=True, help="Show library log lines (database migrations, ...)."
)
def main(verbose: bool) -> None:
    """codi-eval: evaluate Chain-of-Density code summaries with judges, traces and statistics.

    \b
    Store: CODI_EVAL_DATABASE_URL, else codi_eval.db of the nearest project directory (the
    working directory or a parent holding codi_eval.db or .codi-eval/), else one per-user
    store (~/.local/share/codi-eval/codi_eval.db on Linux); PostgreSQL as
    postgresql+psycopg://user@host/db. Gemini: GEMINI_API_KEY. Opik: OPIK_URL_OVERRIDE,
    OPIK_API_KEY, OPIK_WORKSPACE, OPIK_PROJECT_NAME.

    \b
    Start with:  codi-eval run experiments/quickstart.yaml
    Then:        codi-eval experiments list   codi-eval show quickstart   codi-eval view
    """
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    quiet_libraries(verbose)


for _command in iter_commands():
    main.add_command(_command)
