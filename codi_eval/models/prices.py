"""What a model call costs, from ``configs/prices.yaml`` (USD per million tokens).

An unknown model, or a call without token counts, costs ``None``: a guessed 0 would
make an expensive run look free in every report.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from codi_eval.models.base import Usage
from codi_eval.settings import prices_file

__all__ = ["Price", "PriceError", "cost_for", "load_prices", "price_for"]


class PriceError(ValueError):
    """The prices file exists but cannot be read as prices."""


@dataclass(frozen=True)
class Price:
    input_per_million: float
    output_per_million: float
    # A higher tier for long prompts (Gemini Pro): (prompt tokens above which it applies, in, out).
    long_context: tuple[int, float, float] | None = None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        rate_in, rate_out = self.input_per_million, self.output_per_million
        if self.long_context and prompt_tokens > self.long_context[0]:
            _, rate_in, rate_out = self.long_context
        return (prompt_tokens * rate_in + completion_tokens * rate_out) / 1_000_000


def default_prices_file() -> Path:
    """``prices.yaml`` in the config directory (``CODI_EVAL_CONFIG_DIR`` or the repo's ``configs/``)."""
    return prices_file()


_cache: dict[Path, tuple[float, dict[str, Price]]] = {}
_checked: dict[Path, float] = {}


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise PriceError(f"{where}: expected a non-negative number, got {value!r}")
    return float(value)


def load_prices(path: Path | str | None = None) -> dict[str, Price]:
    """All prices in ``path`` by model name; an absent file means no known prices."""
    file = Path(path) if path is not None else default_prices_file()
    cached = _cache.get(file)
    if cached and time.monotonic() - _checked.get(file, 0.0) < 1.0:
        return cached[1]  # an edit to the file is picked up within a second
    try:
        mtime = file.stat().st_mtime
    except OSError:
        return {}
    _checked[file] = time.monotonic()
    if cached and cached[0] == mtime:
        return cached[1]
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise PriceError(f"{file}: not valid YAML: {exc}") from exc
    models = raw.get("models") if isinstance(raw, dict) else None
    if not isinstance(models, dict):
        raise PriceError(f"{file}: expected a mapping under 'models'")
    prices: dict[str, Price] = {}
    for name, entry in models.items():
        where = f"{file}: models.{name}"
        if not isinstance(entry, dict):
            raise PriceError(f"{where}: expected {{input: ..., output: ...}}")
        long_ctx = entry.get("long_context")
        tier = None
        if long_ctx is not None:
            if not isinstance(long_ctx, dict):
                raise PriceError(f"{where}.long_context: expected a mapping")
            tier = (
                int(
                    _number(
                        long_ctx.get("above_prompt_tokens"),
                        f"{where}.long_context.above_prompt_tokens",
                    )
                ),
                _number(long_ctx.get("input"), f"{where}.long_context.input"),
                _number(long_ctx.get("output"), f"{where}.long_context.output"),
            )
        prices[str(name)] = Price(
            _number(entry.get("input"), f"{where}.input"),
            _number(entry.get("output"), f"{where}.output"),
            tier,
        )
    _cache[file] = (mtime, prices)
    return prices


# "gemini-2.5-flash-001" is a pinned release of "gemini-2.5-flash" at the same price; other
# suffixes ("-lite", "-image") are different models and must not borrow a price.
_RELEASE_SUFFIX = re.compile(r"-\d{3}$")


def price_for(model: str, path: Path | str | None = None) -> Price | None:
    """The price of ``model`` (also as ``models/<name>``, ``openai:<name>`` or a ``-001`` release)."""
    prices = load_prices(path)
    # "offline?latency_ms=50" is priced as "offline": parameters do not change the model.
    name = model.strip().partition("?")[0]
    candidates = [name]
    for prefix in ("models/", "openai:"):
        if name.startswith(prefix):
            candidates.append(name[len(prefix) :])
    candidates += [_RELEASE_SUFFIX.sub("", c) for c in candidates]
    for candidate in candidates:
        if candidate in prices:
            return prices[candidate]
    return None


def cost_for(model: str, usage: Usage, path: Path | str | None = None) -> float | None:
    """USD for one call, or ``None`` when the model's price or the token counts are unknown."""
    price = price_for(model, path)
    if price is None:
        return None
    if usage.prompt_tokens is None and usage.completion_tokens is None:
        return None
    # A provider may omit one side (Gemini drops candidatesTokenCount for an empty answer).
    return price.cost(usage.prompt_tokens or 0, usage.completion_tokens or 0)
