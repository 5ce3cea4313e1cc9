"""The package's public face: every advertised name resolves, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import codi_eval


def test_every_public_name_resolves() -> None:
    for name in codi_eval.__all__:
        assert getattr(codi_eval, name) is not None, name


def test_importing_the_package_does_not_load_pandas_or_the_sdks() -> None:
    code = "import sys, codi_eval, codi_eval.cli; print(sorted(m for m in ('pandas', 'matplotlib', 'opik', 'google.genai', 'openai') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
