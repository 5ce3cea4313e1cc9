"""code_facts: what codi-eval counts as the entities of a piece of code."""

from __future__ import annotations

import inspect
import json
import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st

from codi_eval.code_facts import CodeFacts, analyze, entities, entity_density, mentioned, word_count

RECURSIVE = '''
def walk(node, depth=0, *children, key=None, **options):
    """Docstrings are not entities."""
    if node is None:
        raise ValueError("no node")
    for child in node.children:
        walk(child, depth + 1)
    total = sum(x.size for x in node.children)
    log.debug("visited %s", node)
    return os.path.join(node.name, str(total))
'''


def test_python_function_facts() -> None:
    facts = analyze(RECURSIVE)
    assert isinstance(facts, CodeFacts) and facts.parse_ok
    assert (facts.name, facts.kind) == ("walk", "function")
    assert facts.params == ["node", "depth", "children", "key", "options"]
    assert facts.calls == ["ValueError", "walk", "sum", "log.debug", "os.path.join", "str"]
    assert facts.returns and not facts.yields and facts.recursive
    assert facts.loops == ["for", "comprehension"]
    assert facts.raises == ["ValueError"]
    assert facts.identifiers[:3] == ["walk", "node", "depth"]
    assert "None" not in facts.identifiers and "if" not in facts.identifiers


def test_method_drops_self_and_indented_source_parses() -> None:
    facts = analyze(inspect.getsource(json.JSONEncoder.encode))
    assert facts.parse_ok and facts.kind == "method" and facts.name == "encode"
    assert facts.params == ["o"]
    assert "self.iterencode" in facts.calls


def test_generator_and_nested_return_are_told_apart() -> None:
    facts = analyze("def gen(xs):\n    def inner():\n        return 1\n    yield from xs\n")
    assert facts.yields and not facts.returns


def test_class_and_module_kinds() -> None:
    assert analyze("class Foo:\n    def bar(self):\n        pass\n").kind == "class"
    assert analyze("import os\nx = os.getcwd()\n").kind == "module"


def test_entities_are_ordered_by_salience_without_noise() -> None:
    ents = entities(RECURSIVE)
    assert ents[:6] == ["walk", "node", "depth", "children", "key", "options"]
    assert ents.index("os.path.join") < ents.index("total")
    assert "ValueError" in ents and "log.debug" in ents
    for noise in ("self", "None", "True", "str", "sum", "if", "return", "x"):
        assert noise not in ents


def test_entities_strip_receivers() -> None:
    ents = entities(inspect.getsource(json.JSONEncoder.encode))
    assert "iterencode" in ents and "self.iterencode" not in ents


def test_syntax_error_falls_back_to_tokens() -> None:
    facts = analyze("def broken(a, b:\n    return helper(a)")
    assert not facts.parse_ok and facts.name == "broken"
    assert "helper" in facts.calls and "return" not in facts.identifiers


def test_other_languages_use_the_token_fallback() -> None:
    js = analyze(
        "function add(a, b) { // sum\n  return Math.max(a, b) + add(b, 0); }", "javascript"
    )
    assert (js.name, js.kind, js.params) == ("add", "function", ["a", "b"])
    assert js.calls == ["Math.max", "add"] and js.recursive and js.returns
    go = analyze('func Scale(v float64, by int) error { for { panic("x") } }', "go")
    assert go.params == ["v", "by"] and go.loops == ["for"]
    java = analyze(
        "public int size(List<String> items) { throw new IllegalStateException(); }", "java"
    )
    assert (
        java.name == "size"
        and java.params == ["items"]
        and java.raises == ["IllegalStateException"]
    )


def test_mentioned_handles_case_dotted_names_snake_case_and_backticks() -> None:
    ents = ["os.path.join", "max_retries", "parseHeader", "ValueError", "s", "missing"]
    summary = "Calls `join`, honours max retries, may raise valueerror; it's parse header logic."
    assert mentioned(summary, ents) == ["os.path.join", "max_retries", "parseHeader", "ValueError"]
    assert mentioned("", ents) == []
    assert mentioned("rejoin the joint", ["os.path.join"]) == []


def test_word_count_and_density() -> None:
    assert word_count("") == 0 and word_count(" - — ") == 0
    assert word_count("`walk(node)` recurses, then returns.") == 4
    assert entity_density("walk recurses over node", ["walk", "node", "depth"]) == 0.5
    assert entity_density("", ["walk"]) == 0.0


def test_stdlib_sources_never_raise() -> None:
    for fn in (textwrap.dedent, textwrap.wrap, json.dumps, json.loads):
        src = inspect.getsource(fn)
        assert analyze(src).parse_ok
        assert entities(src)[0] == fn.__name__


@settings(max_examples=200, deadline=None)
@given(st.text(), st.sampled_from(["python", "javascript", "go", "cobol"]))
def test_any_text_never_raises(code: str, language: str) -> None:
    facts = analyze(code, language)
    assert isinstance(facts, CodeFacts)
    ents = entities(code, language)
    assert len(ents) == len(set(ents))
    assert not {"self", "None", "True", "False"} & set(ents)


@settings(max_examples=200, deadline=None)
@given(
    st.text(),
    st.lists(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}(\.[a-z_]{1,5})?", fullmatch=True), max_size=8
    ),
)
def test_density_is_bounded(summary: str, ents: list[str]) -> None:
    density = entity_density(summary, ents)
    assert 0.0 <= density <= max(len(set(ents)), 0)
    if word_count(summary) == 0:
        assert density == 0.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{1,10}", fullmatch=True), min_size=1, max_size=6),
    st.text(alphabet=" .,;abc", max_size=30),
)
def test_an_entity_written_in_backticks_is_always_mentioned(ents: list[str], noise: str) -> None:
    summary = noise + " " + " ".join(f"`{e}`" for e in ents) + noise
    assert mentioned(summary, ents) == list(dict.fromkeys(ents))
    assert set(mentioned(noise, ents)) <= set(ents)


# --------------------------------------------------------------------------- entity matching

FETCH = "def fetch(url, timeout, max_retries): return get(url, timeout, max_retries)"


def test_single_quoted_names_count_like_double_quoted_ones() -> None:
    # Reported: single quotes gave coverage 0.0 and density 0.0 (double quotes gave 0.4).
    ents = entities(FETCH)
    assert ents == ["fetch", "url", "timeout", "max_retries", "get"]
    for summary in (
        "Fetches 'url' with the given 'timeout'.",
        'Fetches "url" with the given "timeout".',
        "Fetches \u2018url\u2019 with the given \u201ctimeout\u201d.",
        "Fetches `url` with the given `timeout`.",
    ):
        assert mentioned(summary, ents) == ["url", "timeout"], summary
        assert entity_density(summary, ents) == 2 / 6


def test_possessives_mention_the_name_but_contractions_do_not_mention_their_tail() -> None:
    ents = entities(FETCH) + ["s", "t"]
    assert mentioned("fetch's retries are bounded by max_retries's value", ents) == [
        "fetch",
        "max_retries",
    ]
    assert mentioned("`fetch`'s timeout", ents) == ["fetch", "timeout"]
    assert mentioned("fetch\u2019s url", ents) == ["fetch", "url"]
    assert mentioned("it's what it doesn't do", ents) == []
    assert mentioned("the 'max retries' setting", ents) == ["max_retries"]


def test_dotted_paths_in_a_summary_mention_each_part() -> None:
    cache_code = "def lookup(self, key):\n    return self.cache.get(key) or self.load(key)\n"
    ents = entities(cache_code)
    assert {"lookup", "key", "cache.get", "load"} <= set(ents)
    summary = "Returns `self.cache.get(key)`, falling back to `self.load`."
    assert set(mentioned(summary, ents)) >= {"key", "cache.get", "load"}
    dart = "Text build() => Text(widget.title);"
    assert "title" in mentioned("Shows widget.title in a Text.", entities(dart, "dart"))


def test_realistic_summaries_are_credited_for_every_way_they_write_a_name() -> None:
    code = inspect.getsource(textwrap.dedent)
    ents = entities(code)
    summary = (
        "dedent's job: it collects the 'indents' of all lines of \"text\", blanks "
        "whitespace-only lines with `_whitespace_only_re.sub` and strips the margin."
    )
    found = mentioned(summary, ents)
    assert {"dedent", "indents", "text", "_whitespace_only_re.sub"} <= set(found)


def test_a_call_on_super_or_another_object_is_not_recursion() -> None:
    # Reported for Python too: super().encode() inside encode was called recursion.
    assert not analyze("def encode(self, o):\n    return super().encode(o)\n").recursive
    assert not analyze("def get(self, k):\n    return self.cache.get(k)\n").recursive
    assert not analyze("def get(self, k):\n    return make().get(k)\n").recursive
    assert analyze("def get(self, k):\n    return self.get(k - 1)\n").recursive
    assert analyze("def fact(n):\n    return n * fact(n - 1) if n else 1\n").recursive
    assert not analyze("class Node:\n    def copy(self):\n        return Node()\n").recursive


def test_supported_languages_and_their_aliases() -> None:
    from codi_eval.code_facts import SUPPORTED_LANGUAGES, canonical_language, language_name

    assert SUPPORTED_LANGUAGES == ("python", "dart", "javascript")
    for alias, canonical in [
        ("py", "python"),
        ("Python3", "python"),
        (" Dart ", "dart"),
        ("flutter", "dart"),
        ("js", "javascript"),
        ("JavaScript", "javascript"),
        ("node", "javascript"),
    ]:
        assert canonical_language(alias) == canonical
    for unknown in ("cobol", "", "   ", None, 3, "go"):
        assert canonical_language(unknown) is None
    assert language_name("js") == "JavaScript" and language_name("dart") == "Dart"
    assert analyze("void main() {}", "Flutter").language == "dart"
