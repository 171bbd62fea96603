"""Token counts of one model call, in the Messages API's own terms.

``input_tokens`` is only the uncached tail after the last cache breakpoint; the whole prompt is
``input_tokens + cache_write_tokens + cache_read_tokens`` (API-FACTS section 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, cast

from leanloop.errors import ConfigError

__all__ = ["Usage"]


_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class _Fields:
    """An object's attributes read as a mapping's ``get`` (the SDK's usage objects are pydantic models)."""

    __slots__ = ("_source",)

    def __init__(self, source: Any) -> None:
        self._source = source

    def get(self, name: str) -> Any:
        return getattr(self._source, name, None)

    @property
    def source(self) -> object:
        return cast(object, self._source)


_NOT_A_MODEL = object()


def _fields(source: Any) -> Mapping[str, Any] | _Fields:
    """``source`` as something with ``get``: checked once, not once per field (an ABC check is slow on a model).
    A pydantic model without extra fields (the SDK's usage objects) is read from its ``__dict__``, which holds every
    field it declares."""
    if isinstance(source, dict):
        return cast(dict[str, Any], source)
    extra = getattr(source, "__pydantic_extra__", _NOT_A_MODEL)  # a dict of the extra fields (None: not allowed)
    values = getattr(source, "__dict__", None)
    if extra is not _NOT_A_MODEL and not extra and isinstance(values, dict):
        return cast(dict[str, Any], values)
    return cast(Mapping[str, Any], source) if isinstance(source, Mapping) else _Fields(source)


def _not_a_usage(source: object) -> None:
    text = repr(source.source if isinstance(source, _Fields) else source)
    shown = text if len(text) <= 80 else text[:77] + "..."
    raise ConfigError(
        f"usage {shown} is not a Messages API usage: expected the SDK's Usage or a dict with input_tokens, "
        "output_tokens, cache_creation_input_tokens or cache_read_input_tokens"
    )


def _count(source: Mapping[str, Any] | _Fields, name: str, where: str = "usage") -> int:
    value = source.get(name)
    if type(value) is int and value >= 0:  # the usual value: checked once
        return value
    if value is None:
        return 0
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or value < 0:
        raise ConfigError(f"{where}.{name} must be a non-negative whole number, got {value!r}")
    return int(value)


def _text(source: Mapping[str, Any] | _Fields, name: str) -> str | None:
    value = source.get(name)
    return value if isinstance(value, str) else None


def _tier(source: Mapping[str, Any] | _Fields) -> str | None:
    """``service_tier``, None for the standard tier (the usual case, priced as such)."""
    tier = _text(source, "service_tier")
    return None if tier == "standard" else tier


@dataclass(frozen=True, slots=True)
class Usage:
    """One call's tokens, split the way they are billed, and its server tool requests.

    ``split_estimated`` is True when the source gave only ``cache_creation_input_tokens`` without the 5m/1h
    breakdown: the writes are then counted as 5m (the cheaper rate) and the cost is marked as estimated.
    ``service_tier`` is ``"batch"`` for Batch API results (priced at the batch rate), None for the standard tier;
    ``web_search_requests``
    comes from ``server_tool_use`` (billed per search, not per token).
    """

    input_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0
    output_tokens: int = 0
    split_estimated: bool = False
    speed: str | None = None
    inference_geo: str | None = None
    service_tier: str | None = None
    web_search_requests: int = 0

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def prompt_tokens(self) -> int:
        """Every input token of the request: uncached tail, cache writes and cache reads."""
        return self.input_tokens + self.cache_write_tokens + self.cache_read_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            cache_write_5m_tokens=self.cache_write_5m_tokens + other.cache_write_5m_tokens,
            cache_write_1h_tokens=self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            split_estimated=self.split_estimated or other.split_estimated,
            web_search_requests=self.web_search_requests + other.web_search_requests,
        )

    def with_output(self, output_tokens: int) -> Usage:
        return replace(self, output_tokens=output_tokens)

    @classmethod
    def from_api(cls, source: Any) -> Usage:
        """From the SDK's ``Usage``/``MessageDeltaUsage``, a plain dict of the same shape, or a ``Usage``.

        >>> Usage.from_api({"input_tokens": 3, "cache_creation_input_tokens": 418, "output_tokens": 33}).split_estimated
        True
        """
        if isinstance(source, Usage):
            return source
        if source is None:
            raise ConfigError("usage is missing (got None)")
        if isinstance(source, str | bytes | int | float | list | tuple):
            _not_a_usage(cast(object, source))
        source = _fields(source)
        if all(source.get(name) is None for name in _TOKEN_FIELDS):
            _not_a_usage(source)
        creation_total = _count(source, "cache_creation_input_tokens")
        split = source.get("cache_creation")
        write_5m = write_1h = 0
        estimated = False
        if split is not None:
            split = _fields(split)
            write_5m = _count(split, "ephemeral_5m_input_tokens")
            write_1h = _count(split, "ephemeral_1h_input_tokens")
        if write_5m + write_1h < creation_total:
            # No split, or a split that does not add up: the remainder is priced at the 5m rate, flagged.
            estimated = True
            write_5m = creation_total - write_1h
        server_tools = source.get("server_tool_use")
        return cls(
            input_tokens=_count(source, "input_tokens"),
            cache_write_5m_tokens=write_5m,
            cache_write_1h_tokens=write_1h,
            cache_read_tokens=_count(source, "cache_read_input_tokens"),
            output_tokens=_count(source, "output_tokens"),
            split_estimated=estimated,
            speed=_text(source, "speed"),
            inference_geo=_text(source, "inference_geo"),
            service_tier=_tier(source),
            web_search_requests=(
                _count(_fields(server_tools), "web_search_requests", "usage.server_tool_use")
                if server_tools is not None
                else 0
            ),
        )

    def to_api(self) -> dict[str, Any]:
        """The Messages API's ``usage`` shape."""
        data: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_write_tokens,
            "cache_read_input_tokens": self.cache_read_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_write_5m_tokens,
                "ephemeral_1h_input_tokens": self.cache_write_1h_tokens,
            },
            "output_tokens": self.output_tokens,
        }
        if self.web_search_requests:
            data["server_tool_use"] = {"web_search_requests": self.web_search_requests}
        if self.service_tier:
            data["service_tier"] = self.service_tier
        return data

    def to_dict(self) -> dict[str, Any]:
        """leanloop's flat shape, as written to traces."""
        data: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "cache_write_5m_tokens": self.cache_write_5m_tokens,
            "cache_write_1h_tokens": self.cache_write_1h_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "output_tokens": self.output_tokens,
        }
        if self.split_estimated:
            data["split_estimated"] = True
        if self.speed:
            data["speed"] = self.speed
        if self.inference_geo:
            data["inference_geo"] = self.inference_geo
        if self.service_tier:
            data["service_tier"] = self.service_tier
        if self.web_search_requests:
            data["web_search_requests"] = self.web_search_requests
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """Inverse of ``to_dict``."""
        return cls(
            input_tokens=_count(data, "input_tokens"),
            cache_write_5m_tokens=_count(data, "cache_write_5m_tokens"),
            cache_write_1h_tokens=_count(data, "cache_write_1h_tokens"),
            cache_read_tokens=_count(data, "cache_read_tokens"),
            output_tokens=_count(data, "output_tokens"),
            split_estimated=bool(data.get("split_estimated", False)),
            speed=_text(data, "speed"),
            inference_geo=_text(data, "inference_geo"),
            service_tier=_tier(data),
            web_search_requests=_count(data, "web_search_requests"),
        )
