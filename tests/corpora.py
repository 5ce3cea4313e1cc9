"""Where the real source corpora are: ``../shared/corpora`` beside the checkout (or
``CODI_EVAL_CORPORA``). Tests that read them skip when they are absent, except with
CI=true, where they fail: CI machines have them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# Beside the checkout first; then where this workplace keeps them, for a clean clone made
# elsewhere (CI clones main into a directory of its own).
_CANDIDATES = (ROOT.parent / "shared" / "corpora", Path("/work/shared/corpora"))


def corpora_dir() -> Path:
    configured = os.environ.get("CODI_EVAL_CORPORA")
    found = [p for p in _CANDIDATES if (p / "flutter-samples").is_dir()]
    path = Path(configured) if configured else (found[0] if found else _CANDIDATES[0])
    if not (path / "flutter-samples").is_dir():
        message = f"the source corpora are not at {path} (set CODI_EVAL_CORPORA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: corpus tests must run)", pytrace=False)
        pytest.skip(message)
    return path


def read(relpath: str) -> str:
    """A corpus file's text, e.g. ``read("flutter-samples/animations/lib/main.dart")``."""
    return (corpora_dir() / relpath).read_text(encoding="utf-8")
