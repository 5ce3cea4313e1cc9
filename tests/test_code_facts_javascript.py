"""JavaScript code facts (tree-sitter-javascript)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from codi_eval.code_facts import CodeFacts, analyze, entities, mentioned

# lodash 4.17.21, _baseFlatten.js (MIT): a real recursive function.
BASE_FLATTEN = """
function baseFlatten(array, depth, predicate, isStrict, result) {
  var index = -1,
      length = array.length;

  predicate || (predicate = isFlattenable);
  result || (result = []);

  while (++index < length) {
    var value = array[index];
    if (depth > 0 && predicate(value)) {
      if (depth > 1) {
        // Recursively flatten arrays (susceptible to call stack limits).
        baseFlatten(value, depth - 1, predicate, isStrict, result);
      } else {
        arrayPush(result, value);
      }
    } else if (!isStrict) {
      result[result.length] = value;
    }
  }
  return result;
}
"""

# lodash 4.17.21, memoize.js (MIT), without its JSDoc.
MEMOIZE = """
function memoize(func, resolver) {
  if (typeof func != 'function' || (resolver != null && typeof resolver != 'function')) {
    throw new TypeError(FUNC_ERROR_TEXT);
  }
  var memoized = function() {
    var args = arguments,
        key = resolver ? resolver.apply(this, args) : args[0],
        cache = memoized.cache;

    if (cache.has(key)) {
      return cache.get(key);
    }
    var result = func.apply(this, args);
    memoized.cache = cache.set(key, result) || cache;
    return result;
  };
  memoized.cache = new (memoize.Cache || MapCache);
  return memoized;
}
"""


def test_a_recursive_lodash_function() -> None:
    facts = analyze(BASE_FLATTEN, "javascript")
    assert facts.parse_ok and (facts.name, facts.kind) == ("baseFlatten", "function")
    assert facts.params == ["array", "depth", "predicate", "isStrict", "result"]
    assert facts.recursive and facts.loops == ["while"] and facts.returns
    assert facts.calls == ["predicate", "baseFlatten", "arrayPush"]


def test_throws_closures_and_constructors() -> None:
    facts = analyze(MEMOIZE, "js")
    assert facts.language == "javascript" and facts.name == "memoize"
    assert facts.raises == ["TypeError"] and not facts.recursive and not facts.loops
    assert {"resolver.apply", "cache.has", "cache.get", "func.apply", "cache.set"} <= set(
        facts.calls
    )
    assert facts.returns  # its own `return memoized`, not only the closure's returns


def test_methods_async_generators_and_recursion_through_this() -> None:
    code = """
export class Tree extends Node {
  constructor(root) { super(root); this.root = root; }
  async load(url) {
    try { const res = await fetch(url); return res.json(); }
    catch (err) { console.error(err); }
  }
  *walk(node) { yield node; for (const c of node.children) { yield* this.walk(c); } }
  size(node) { return other.size(node) + size(node); }
}
"""
    facts = analyze(code, "javascript")
    assert (facts.name, facts.kind, facts.bases) == ("Tree", "class", ["Node"])
    kinds = {(d.kind, d.qualname) for d in facts.declarations}
    assert {
        ("constructor", "Tree.constructor"),
        ("method", "Tree.load"),
        ("method", "Tree.walk"),
    } <= kinds
    walk = analyze("*walk(node) { for (const c of node.children) { yield* this.walk(c); } }", "js")
    assert walk.parse_ok and (walk.name, walk.kind) == ("walk", "method")
    assert walk.recursive and walk.yields and walk.loops == ["for"]
    # A method is not called by its bare name: `size()` is a different function.
    size = analyze("size(node) { return other.size(node) + size(node); }", "js")
    assert size.kind == "method" and not size.recursive
    load = analyze("async load(url) { const r = await fetch(url); return r.json(); }", "js")
    assert load.is_async and load.awaits and load.returns


def test_arrow_functions_bound_to_names() -> None:
    facts = analyze(
        "const slugify = (title, sep = '-') => title.toLowerCase().split(' ').join(sep);", "js"
    )
    assert (facts.name, facts.params) == ("slugify", ["title", "sep"])
    assert facts.returns and facts.calls == ["title.toLowerCase", "split", "join"]
    destructured = analyze("function draw({ x, y = 0 }, ...rest) { return x + y; }", "js")
    assert destructured.params == ["x", "y", "rest"]


def test_entities_use_javascript_names() -> None:
    code = "function total(items, input) { console.log(items); return items.length + input; }"
    ents = entities(code, "javascript")
    assert ents[:3] == ["total", "items", "input"] and "console.log" in ents
    assert "console" not in ents and "length" not in ents
    assert mentioned("`total` sums 'items' and input's value", ents) == ["total", "items", "input"]


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_any_text_never_raises(code: str) -> None:
    facts = analyze(code, "javascript")
    assert isinstance(facts, CodeFacts)
    ents = entities(code, "javascript")
    assert len(ents) == len(set(ents))
