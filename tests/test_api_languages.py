"""POST /summarize/code in the languages codi-eval supports (Dart for the Flutter app)."""

from __future__ import annotations

import pytest

from codi_eval.code_facts import SUPPORTED_LANGUAGES
from tests.test_api import Api, api, assert_error, opik_syncs  # noqa: F401 - fixtures

COUNTER = """
class Counter extends StatefulWidget {
  const Counter({super.key, required this.title});
  final String title;
  @override
  State<Counter> createState() => _CounterState();
}

class _CounterState extends State<Counter> {
  int _count = 0;
  void _increment() {
    setState(() { _count++; });
  }
  @override
  Widget build(BuildContext context) {
    return Column(children: [
      Text('${widget.title}: $_count'),
      ElevatedButton(onPressed: _increment, child: const Text('+')),
    ]);
  }
}
"""


async def test_a_flutter_widget_summary_names_the_widget_and_its_state(api: Api) -> None:  # noqa: F811
    alice = await api.user("alice")
    status, body = await api.call(
        "POST", "/summarize/code", alice, json={"code": COUNTER, "language": "dart"}
    )
    assert status == 200, body
    summary = body["summary"]
    assert "`Counter`" in summary and "`_count`" in summary and "widget" in summary
    assert "recurs" not in summary


@pytest.mark.parametrize("language", [*SUPPORTED_LANGUAGES, "Dart", "js"])
async def test_supported_languages_are_accepted(api: Api, language: str) -> None:  # noqa: F811
    alice = await api.user("alice")
    status, body = await api.call(
        "POST", "/summarize/code", alice, json={"code": "x = 1\n", "language": language}
    )
    assert status == 200, body


async def test_an_unsupported_language_is_refused_naming_the_field(api: Api) -> None:  # noqa: F811
    alice = await api.user("alice")
    status, body = await api.call(
        "POST",
        "/summarize/code",
        alice,
        json={"code": "IDENTIFICATION DIVISION.", "language": "cobol"},
    )
    assert_error(status, body, 400, field="language")
