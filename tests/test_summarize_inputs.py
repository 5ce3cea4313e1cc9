"""`summarize` refuses what has nothing to summarize (it used to "succeed" on README.md
with quality 1.00): exit 2 naming the file, and no store is touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from codi_eval.cli.summarize import require_something_to_summarize
from codi_eval.errors import InputError
from tests.cli_helpers import ROOT, run_cli


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("notes.md", "# Notes\n\nSome prose.\n", "not a source file"),
        ("consts.py", "LIMIT = 10\nNAMES = ['a']\n", "no function or class"),
    ],
)
def test_a_file_with_no_function_is_bad_input(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    db = tmp_path / "s.db"
    result = run_cli("summarize", str(path), db_url=f"sqlite:///{db}")
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and str(path) in result.stderr
    assert not db.exists()


def test_what_counts_as_something_to_summarize() -> None:
    require_something_to_summarize("def f():\n    return 1\n", "python", "f.py")
    require_something_to_summarize("class A:\n    pass\n", "python", "a.py")
    require_something_to_summarize("function f(a) { return a }", "javascript", "f.js")
    require_something_to_summarize("void main() {}", "dart", "main.dart")
    require_something_to_summarize("fn main() {}", "rust", "main.rs")  # no parser: allowed
    with pytest.raises(InputError, match="no function or class"):
        require_something_to_summarize("const x = 1;", "javascript", "x.js")
    with pytest.raises(InputError, match="not a source file"):
        require_something_to_summarize((ROOT / "README.md").read_text(), "text", "README.md")
