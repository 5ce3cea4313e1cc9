"""What a model provider declares: the parameters its names may carry, and its registration.

A provider is a pydantic model of those parameters (:class:`ModelParams`) registered by
family with :func:`provider`, the way inspect-ai registers model APIs. The built-in ones
live in :mod:`codi_eval.models.providers`; :mod:`codi_eval.models.registry` turns names
into models with them. This module imports neither, so both can import it.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict

from codi_eval.models.base import Model
from codi_eval.settings import Settings

# Parameter names that would put a secret into a spec, a cell key or a trace tag.
SECRET_PARAMS = frozenset({"api_key", "apikey", "key", "token", "password", "secret"})


class ModelParams(BaseModel):
    """What a model name may carry after ``?``; each provider declares its own subclass.

    ``family`` names the provider, ``form`` is the accepted form shown in errors,
    :meth:`match` recognises the provider's names, :meth:`build` makes the model and
    :meth:`endpoint` says where it answers from (part of the response cache key).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    family: ClassVar[str]
    form: ClassVar[str]

    @classmethod
    def match(cls, base: str) -> str | None:
        """The provider's model id for ``base`` (the name before ``?``), or None."""
        raise NotImplementedError

    def build(self, name: str, model_id: str) -> Model:
        raise NotImplementedError

    def endpoint(self, settings: Settings) -> str | None:
        """The address that answers, as far as the configuration tells (None: in process)."""
        return None

    def identity(self) -> dict[str, Any]:
        """Parameters that can change an answer (timeouts and the like cannot)."""
        return {}

    def fix_hint(self, kind: str) -> str:
        """What to change when calls fail with a configuration error of ``kind``."""
        return "check the model's name and parameters"


P = TypeVar("P", bound=type[ModelParams])
_PROVIDERS: dict[str, type[ModelParams]] = {}


def providers() -> dict[str, type[ModelParams]]:
    """Registered providers by family, in registration order (:mod:`.registry` imports the
    built-in ones, so through it they are always there)."""
    return dict(_PROVIDERS)


def provider(cls: P) -> P:
    """Class decorator: register a provider's parameter model under its ``family``."""
    if cls.family in _PROVIDERS:
        raise ValueError(f"a model provider named {cls.family!r} is already registered")
    _PROVIDERS[cls.family] = cls
    return cls


def check_base_url(value: str | None) -> str | None:
    """An http(s) URL without credentials (a key in a URL would be stored with the name)."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials; keys come from the environment")
    return value


BaseUrl = Annotated[str | None, AfterValidator(check_base_url)]
