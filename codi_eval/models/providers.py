"""The built-in model providers: offline, Gemini (google-genai) and OpenAI-compatible.

Each is a :class:`ModelParams` subclass registered with :func:`provider`: the parameters
a name may carry are its fields, so a typo or a bad value is refused before any run, and
the provider's SDK is imported only in ``build``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from codi_eval.models.base import Model
from codi_eval.models.params import BaseUrl, ModelParams, provider
from codi_eval.settings import Settings

GEMINI_DEFAULT_ENDPOINT = "https://generativelanguage.googleapis.com"
OPENAI_DEFAULT_ENDPOINT = "https://api.openai.com/v1"
# Per-call timeouts above an hour are a typo, not a plan (and would pin a worker).
_MAX_TIMEOUT_S = 3600.0


@provider
class OfflineParams(ModelParams):
    family = "offline"
    form = "'offline' (optionally 'offline?latency_ms=50')"

    # Simulated latency for benchmarks: finite and at most a minute, so a name can never
    # make a call sleep forever.
    latency_ms: float = Field(default=0.0, ge=0, le=60_000, allow_inf_nan=False)

    @classmethod
    def match(cls, base: str) -> str | None:
        return "offline" if base == "offline" else None

    def build(self, name: str, model_id: str) -> Model:
        from codi_eval.models.offline import OfflineModel

        return OfflineModel(name, latency_ms=self.latency_ms)


@provider
class GeminiParams(ModelParams):
    family = "gemini"
    form = "'gemini-<version>' such as 'gemini-2.5-flash'"

    base_url: BaseUrl = None
    timeout_s: float | None = Field(default=None, gt=0, le=_MAX_TIMEOUT_S, allow_inf_nan=False)

    @classmethod
    def match(cls, base: str) -> str | None:
        return base if base.startswith("gemini-") and len(base) > len("gemini-") else None

    def build(self, name: str, model_id: str) -> Model:
        from codi_eval.models.gemini import GeminiModel

        model = GeminiModel(model_id, base_url=self.base_url, timeout_s=self.timeout_s)
        model.name = name
        return model

    def endpoint(self, settings: Settings) -> str | None:
        return (self.base_url or settings.gemini_base_url or GEMINI_DEFAULT_ENDPOINT).rstrip("/")

    def fix_hint(self, kind: str) -> str:
        if kind == "auth":
            return (
                "set GEMINI_API_KEY to a valid key (and GOOGLE_GEMINI_BASE_URL for a "
                "Gemini-compatible server)"
            )
        return "check the model name: the Gemini API refused it (is the version right?)"


@provider
class OpenAIParams(ModelParams):
    family = "openai"
    form = "'openai:<model>' such as 'openai:llama3.1'"

    base_url: BaseUrl = None
    timeout_s: float | None = Field(default=None, gt=0, le=_MAX_TIMEOUT_S, allow_inf_nan=False)
    json_mode: Literal["json_schema", "json_object"] = "json_schema"

    @classmethod
    def match(cls, base: str) -> str | None:
        prefix = "openai:"
        return base[len(prefix) :] if base.startswith(prefix) and len(base) > len(prefix) else None

    def build(self, name: str, model_id: str) -> Model:
        from codi_eval.models.openai_compat import OpenAICompatModel

        return OpenAICompatModel(
            model_id, base_url=self.base_url, timeout_s=self.timeout_s, json_mode=self.json_mode
        )

    def endpoint(self, settings: Settings) -> str | None:
        return (self.base_url or settings.openai_base_url or OPENAI_DEFAULT_ENDPOINT).rstrip("/")

    def fix_hint(self, kind: str) -> str:
        if kind == "auth":
            return "set OPENAI_API_KEY (and OPENAI_BASE_URL, or ?base_url= in the model name)"
        return "check the model name and the server: it refused the request"

    def identity(self) -> dict[str, Any]:
        # json_object and json_schema ask the server for different things.
        return {"json_mode": self.json_mode}
