"""prices: USD per million tokens from configs/prices.yaml; unknown means None, never 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from codi_eval.models import Usage, cost_for, load_prices, price_for
from codi_eval.models.prices import PriceError

REQUIRED = [
    "gemini-2.5-flash",
    "gemini-2.5-pro",
    "gemini-2.5-flash-lite",
    "gemini-3-flash-preview",
    "offline",
]


def test_repo_prices_cover_the_models_we_name() -> None:
    prices = load_prices()
    for name in REQUIRED:
        assert name in prices
    assert prices["offline"].input_per_million == 0 and prices["offline"].output_per_million == 0
    assert (
        prices["gemini-2.5-pro"].output_per_million > prices["gemini-2.5-flash"].output_per_million
    )


def test_cost_is_per_million_tokens() -> None:
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=2_000_000)
    assert cost_for("gemini-2.5-flash", usage) == pytest.approx(0.30 + 2 * 2.50)
    assert cost_for("offline", usage) == 0.0
    assert cost_for("offline?latency_ms=50", usage) == 0.0


def test_unknown_model_or_usage_costs_none() -> None:
    assert cost_for("openai:llama3.1", Usage(10, 10)) is None
    assert (
        cost_for("gemini-2.5-flash-image", Usage(10, 10)) is None
    )  # no borrowing a sibling's price
    assert cost_for("gemini-2.5-flash", Usage()) is None


def test_release_suffix_and_resource_names_find_the_price() -> None:
    assert price_for("gemini-2.5-flash-001") == price_for("gemini-2.5-flash")
    assert price_for("models/gemini-2.5-pro") == price_for("gemini-2.5-pro")
    assert price_for("gemini-2.5-flash-lite") != price_for("gemini-2.5-flash")


def test_long_context_tier(tmp_path: Path) -> None:
    file = tmp_path / "prices.yaml"
    file.write_text(
        "models:\n  big: {input: 1, output: 2, long_context: {above_prompt_tokens: 100, input: 10, output: 20}}\n"
    )
    assert cost_for("big", Usage(100, 1_000_000), file) == pytest.approx(2.0001)
    assert cost_for("big", Usage(101, 1_000_000), file) == pytest.approx(20.00101)


def test_config_dir_env_selects_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "prices.yaml").write_text("models:\n  house-model: {input: 4, output: 8}\n")
    monkeypatch.setenv("CODI_EVAL_CONFIG_DIR", str(tmp_path))
    assert cost_for("house-model", Usage(1_000_000, 0)) == 4.0
    assert cost_for("gemini-2.5-flash", Usage(1, 1)) is None


def test_bad_prices_file_is_reported(tmp_path: Path) -> None:
    file = tmp_path / "prices.yaml"
    file.write_text("models:\n  m: {input: -1, output: 2}\n")
    with pytest.raises(PriceError, match="models.m.input"):
        load_prices(file)
    assert load_prices(tmp_path / "absent.yaml") == {}
