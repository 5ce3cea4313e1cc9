"""A judge prompt's declared scale, and the answer type it asks the model for.

A score judge's prompt file declares the scale its rubric asks for::

    scale: {min: 1, max: 5, integer: true}

That one declaration decides three things: the JSON schema sent to the provider as the
structured-output schema (:meth:`Scale.answer_type`; Gemini constrains ``score`` to
``minimum``/``maximum``), the numbers the parser accepts (:meth:`Scale.normalise`: exactly
that range, whole numbers only on an integer scale), and how a score is stored (mapped
linearly to [0, 1]: min → 0, max → 1, the seed's ``score FLOAT 0.0 to 1.0``).
"""

from __future__ import annotations

import functools
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator


class Scale(BaseModel):
    """The range a judge answers on; ``integer`` means only whole numbers are on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: float = 0.0
    max: float = 1.0
    integer: bool = False

    @field_validator("min", "max", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a number")
        if not math.isfinite(value):
            raise ValueError("must be finite")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Scale:
        if not self.min < self.max:
            raise ValueError(f"min must be below max (got {self.min:g} and {self.max:g})")
        if self.integer and not (float(self.min).is_integer() and float(self.max).is_integer()):
            raise ValueError("an integer scale needs whole-number min and max")
        return self

    @property
    def name(self) -> str:
        """``"0-1"``, ``"1-5"``: how a trace and the evaluation metadata name it."""
        return f"{_fmt(self.min)}-{_fmt(self.max)}"

    def describe(self) -> dict[str, Any]:
        """The declaration as stored in an evaluation's metadata."""
        return {"min": _plain(self.min), "max": _plain(self.max), "integer": self.integer}

    def check(self, value: float) -> None:
        """``ValueError`` saying why ``value`` is not on this scale; nothing when it is."""
        if not math.isfinite(value):
            raise ValueError(f"score is not finite: {value}")
        if not self.min <= value <= self.max:
            raise ValueError(f"score {_fmt(value)} is outside the declared {self.name} scale")
        if self.integer and not float(value).is_integer():
            raise ValueError(
                f"score {_fmt(value)} is not a whole number on the declared {self.name} "
                "integer scale"
            )

    def normalise(self, value: float) -> float:
        """``value`` mapped to [0, 1] (min → 0, max → 1); ``ValueError`` when it is off-scale."""
        self.check(value)
        return (value - self.min) / (self.max - self.min)

    def answer_type(self) -> type[BaseModel]:
        """The pydantic type of a judge's answer on this scale: ``{score, reason}``."""
        return _answer_type(self.min, self.max, self.integer)

    def answer_schema(self) -> dict[str, Any]:
        """The answer type's JSON schema: what providers send as the structured-output schema."""
        return self.answer_type().model_json_schema()


@functools.lru_cache(maxsize=32)
def _answer_type(low: float, high: float, integer: bool) -> type[BaseModel]:
    kind: type = int if integer else float
    bounds = (int(low), int(high)) if integer else (low, high)
    return create_model(
        "ScoreAnswer",
        __config__=ConfigDict(extra="ignore"),
        score=(
            kind,
            Field(
                ge=bounds[0],
                le=bounds[1],
                description=f"the overall score, from {_fmt(low)} to {_fmt(high)}"
                + (" (a whole number)" if integer else ""),
            ),
        ),
        reason=(str, Field(description="one or two sentences naming strengths and errors")),
    )


def _plain(x: float) -> float | int:
    return int(x) if float(x).is_integer() and abs(x) < 1e15 else x


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


#: What a score judge whose prompt declares nothing is read on: the scale every shipped
#: judge prompt asks for ("one overall score from 0 to 1").
DEFAULT_SCALE = Scale()
