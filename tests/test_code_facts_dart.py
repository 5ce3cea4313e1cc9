"""Dart and Flutter code facts, on real files from the corpora (tree-sitter-dart)."""

from __future__ import annotations

import textwrap

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codi_eval.code_facts import CodeFacts, analyze, entities, mentioned
from codi_eval.code_facts import dart as dart_facts
from tests.corpora import corpora_dir, read

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


def declaration(relpath: str, qualname: str) -> str:
    """The source of one declaration in a corpus file, with its annotations, dedented."""
    data = (corpora_dir() / relpath).read_bytes()
    outline = dart_facts.outline(data)
    assert outline is not None
    for decl in outline.declarations:
        if decl.qualname == qualname:
            start = data.rfind(b"\n", 0, decl.start_byte) + 1
            return textwrap.dedent(data[start : decl.end_byte].decode("utf-8"))
    raise AssertionError(f"{qualname} is not declared in {relpath}")


def test_every_corpus_file_parses_without_a_syntax_error() -> None:
    files = sorted(corpora_dir().rglob("*.dart"))
    assert len(files) >= 400
    for path in files:
        facts = analyze(path.read_text(encoding="utf-8"), "dart")
        assert facts.parse_ok, path


def test_a_stateful_widget_is_a_widget_with_state_and_what_it_builds_not_recursion() -> None:
    # Reported: the offline summary of this widget said it "recurses".
    facts = analyze(COUNTER, "dart")
    assert (facts.name, facts.kind, facts.widget) == ("Counter", "class", "stateful widget")
    assert facts.state == ["_count"] and facts.fields == ["title"]
    assert facts.builds == ["Column", "Text", "ElevatedButton"]
    assert not facts.recursive and not facts.loops and not facts.raises
    assert "setState" in facts.calls and facts.bases == ["StatefulWidget"]
    ents = entities(COUNTER, "dart")
    assert ents[:2] == ["Counter", "_count"]
    for boilerplate in ("State", "StatefulWidget", "Widget", "BuildContext", "key", "widget"):
        assert boilerplate not in ents


def test_a_stateless_widget_from_the_corpus_builds_widgets_not_value_types() -> None:
    code = declaration(
        "flutter-samples/dynamic_theme/lib/widgets/message_widget.dart", "MessageWidget"
    )
    facts = analyze(code, "dart")
    assert facts.parse_ok and facts.widget == "stateless widget"
    assert facts.fields == ["image", "text", "isFromUser"] and facts.state == []
    assert facts.builds[:3] == ["Row", "Flexible", "Container"]
    assert "MarkdownBody" in facts.builds  # inside `if (text case final text?)`
    assert not {"BoxDecoration", "EdgeInsets.symmetric", "BoxConstraints"} & set(facts.builds)


def test_a_state_class_keeps_its_mutable_fields_as_state() -> None:
    code = declaration(
        "flutter-samples/animations/lib/src/misc/card_swipe.dart", "_SwipeableCardState"
    )
    facts = analyze(code, "dart")
    assert (facts.widget, facts.state_of) == ("widget state", "SwipeableCard")
    assert {"_dragStartX", "_isSwipingLeft", "_controller"} <= set(facts.state)
    assert "SlideTransition" in facts.builds and "GestureDetector" in facts.builds
    assert facts.bases == ["State", "SingleTickerProviderStateMixin"]


def test_records_async_await_and_interpolation_in_a_view_model_method() -> None:
    code = declaration(
        "flutter-samples/compass_app/app/lib/ui/auth/login/view_models/login_viewmodel.dart",
        "LoginViewModel._login",
    )
    facts = analyze(code, "dart")
    assert facts.parse_ok and (facts.name, facts.kind) == ("_login", "function")
    assert facts.params == ["credentials"]  # a record-typed parameter
    assert facts.is_async and facts.awaits and facts.returns and not facts.yields
    assert facts.calls == ["_authRepository.login", "_log.warning"]
    # Names used inside string interpolation are identifiers of the code.
    assert {"email", "password", "result", "error"} <= set(facts.identifiers)
    assert not facts.recursive and not facts.loops


def test_a_method_cut_out_of_its_class_parses_with_the_same_facts() -> None:
    code = declaration(
        "flutter-samples/background_isolate_channels/lib/simple_database.dart",
        "SimpleDatabase.open",
    )
    assert code.startswith("static Future<SimpleDatabase> open(")
    facts = analyze(code, "dart")
    assert facts.parse_ok and (facts.name, facts.kind) == ("open", "method")
    assert facts.params == ["path"] and facts.is_async and facts.awaits and facts.returns
    assert "Isolate.spawn" in facts.calls and "receivePort.listen" in facts.calls
    assert facts.streams  # it listens to a port's stream


def test_switch_expressions_extension_types_and_cascades() -> None:
    getter = declaration("flutter-samples/material_3_demo/lib/main.dart", "_AppState._useLightMode")
    facts = analyze(getter, "dart")
    assert facts.parse_ok and facts.kind == "getter" and facts.returns
    platform = analyze(read("dart-core/pkgs/platform/lib/src/platform_apis.dart"), "dart")
    assert platform.parse_ok
    assert ("extension type", "_PlatformHelper") in {
        (d.kind, d.name) for d in platform.declarations
    }
    viewmodel = analyze(
        declaration(
            "flutter-samples/compass_app/app/lib/ui/activities/view_models/activities_viewmodel.dart",
            "ActivitiesViewModel",
        ),
        "dart",
    )
    assert {"Command0", "execute"} <= set(viewmodel.calls)  # Command0(...)..execute()


def test_null_safety_and_patterns_parse() -> None:
    code = """
String describe(Object? value, List<int>? xs) {
  late final String label;
  final first = xs?.first ?? 0;
  if (value case (int a, String b) when a > 0) {
    label = '$b:$a';
  } else {
    label = switch (value) { int n => 'int $n', [var h, ...] => 'list $h', _ => 'other' };
  }
  return '${label.trim()}!${first!}';
}
"""
    facts = analyze(code, "dart")
    assert facts.parse_ok and facts.name == "describe" and facts.returns
    assert facts.params == ["value", "xs"] and "label.trim" in facts.calls


def test_recursion_only_when_a_function_calls_itself() -> None:
    recursive = [
        "int fact(int n) => n <= 1 ? 1 : n * fact(n - 1);",
        "void walk(Node n) { for (final c in n.children) { walk(c); } }",
        "void walk(Node n) { this.walk(n.next); }",
        "void visit(Node n) { n.children.forEach((c) => visit(c)); }",
    ]
    not_recursive = [
        "Widget build(BuildContext context) { return super.build(context); }",
        "void go() { other.go(); }",
        "void go() { make().go(); }",
        "void go() { final s = StringBuffer()..go(); }",
        "void go() { print('go(1)'); }",
        "void go() { void go() {} go(); }",
        "void go() { final go = other; go(); }",
        "class Counter extends StatefulWidget { Counter(); Counter copy() => Counter(); }",
    ]
    for code in recursive:
        assert analyze(code, "dart").recursive, code
    for code in not_recursive:
        assert not analyze(code, "dart").recursive, code


def test_loops_exceptions_and_streams() -> None:
    code = """
Stream<int> numbers(List<int> xs) async* {
  var i = 0;
  while (i < xs.length) { i++; }
  do { i--; } while (i > 0);
  await for (final x in source()) { yield x; }
  try {
    throw ArgumentError.value(i, 'i');
  } on FormatException catch (e) {
    rethrow;
  } catch (e) {
    throw StateError('bad');
  }
}
"""
    facts = analyze(code, "dart")
    assert facts.loops == ["while", "do-while", "await for"]
    assert facts.raises == ["ArgumentError", "StateError"] and facts.catches == ["FormatException"]
    assert facts.handles_errors and facts.yields and facts.streams and facts.is_async


def test_entities_are_dart_identifiers_not_python_builtins() -> None:
    code = "String format(String input, int max) { return input.substring(0, max); }"
    ents = entities(code, "dart")
    # `input` and `max` are Python builtins, but here they are this function's parameters.
    assert ents[:3] == ["format", "input", "max"]
    assert "String" not in ents and "int" not in ents
    assert mentioned("Cuts `input` to `max` characters with substring.", ents) == [
        "input",
        "max",
        "input.substring",
    ]


def test_junk_nul_bytes_and_deep_nesting_never_raise() -> None:
    for code in (
        "\x00\x01\xff" * 100,
        "class { void ( => ; }}}" * 50,
        "void f() { x = " + "(" * 5000 + "1" + ")" * 5000 + "; }",
        "{" * 20000,
        "\ud800 lone surrogate",
        "void f() {}" * 100000,  # larger than the tree-sitter bound: token fallback
    ):
        facts = analyze(code, "dart")
        assert isinstance(facts, CodeFacts)
        assert len(entities(code, "dart")) == len(set(entities(code, "dart")))


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_any_text_never_raises(code: str) -> None:
    facts = analyze(code, "dart")
    assert isinstance(facts, CodeFacts) and facts.language == "dart"
    ents = entities(code, "dart")
    assert len(ents) == len(set(ents))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_corpus_files_never_raise(data: st.DataObject) -> None:
    files = sorted((corpora_dir() / "flutter-samples").rglob("*.dart"))
    text = data.draw(st.sampled_from(files)).read_text(encoding="utf-8")
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, min(len(text), start + 400)))
    junk = data.draw(st.text(max_size=20))
    damaged = text[:start] + junk + text[end:]
    facts = analyze(damaged, "dart")
    assert isinstance(facts, CodeFacts)
    assert not (facts.recursive and facts.kind == "module")
