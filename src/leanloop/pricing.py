"""What one model call cost, split the way Anthropic bills it.

Prices come from genai-prices (per-model cache-read multipliers, tier thresholds, batch and fast-mode variants),
never from a table in this code. An override table (``PriceOverrides``: from code, a TOML or a JSON file, or the
file named by ``LEANLOOP_PRICES``) takes precedence, for negotiated rates or models genai-prices does not know yet.

A Batch API result (``service_tier: "batch"``) is priced at the batch rate; web searches
(``server_tool_use.web_search_requests``) add their per-search fee (``Cost.web_search``).

Each request is priced on its own: tier thresholds (for example Haiku 5.5 above 100K prompt tokens) apply per
request, so pricing a sum of requests gives a wrong, higher number.

An unknown model costs "unknown" (``Cost.is_known`` is False) and raises an ``UnknownModelWarning`` naming it,
once per model. It is never $0.
"""

from __future__ import annotations

import json
import os
import tomllib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from genai_prices import data_snapshot
from genai_prices.types import ModelPrice, TieredPrices, calc_unit_price

from leanloop.cachesim import register_min_cacheable_tokens
from leanloop.errors import ConfigError, UnknownModelWarning, UnknownPriceError
from leanloop.usage import Usage

__all__ = [
    "WEB_SEARCH_USD_PER_1000_UNLISTED_MODEL",
    "Cost",
    "ModelPrices",
    "PriceOverrides",
    "Pricing",
    "UnknownModelWarning",
    "cost",
    "default_pricing",
]

_PER_MTOK = 1_000_000
_ZERO = Decimal(0)
_US_GEO_MULTIPLIER = Decimal("1.1")  # inference_geo="us" data residency (API-FACTS 2)
# Web search is a fee per search, not a token price. genai-prices has it per model (``web_searches_kcount``); this
# is used only for a model genai-prices does not know (priced by an override file): Anthropic's published fee,
# "$10 per 1,000 searches" (https://platform.claude.com/docs/en/about-claude/pricing, API-FACTS 2).
WEB_SEARCH_USD_PER_1000_UNLISTED_MODEL = Decimal(10)


@dataclass(frozen=True, slots=True)
class ModelPrices:
    """USD per million tokens for one model, as resolved for one request (tier and batch applied)."""

    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal

    @classmethod
    def from_mapping(cls, model: str, data: Mapping[str, Any]) -> ModelPrices:
        """From ``{"input": 3, "output": 15, ...}``. Missing cache prices follow Anthropic's multipliers of input
        (5m write 1.25x, 1h write 2x, read 0.1x)."""
        for needed in ("input", "output"):
            if needed not in data:
                raise ConfigError(f"price override for {model!r} needs {needed!r} (USD per MTok)")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"price override for {model!r} has unknown keys {sorted(unknown)}")
        values = {name: _override_price(model, name, value) for name, value in data.items()}
        base = values["input"]
        values.setdefault("cache_write_5m", base * Decimal("1.25"))
        values.setdefault("cache_write_1h", base * 2)
        values.setdefault("cache_read", base * Decimal("0.1"))
        return cls(**values)


def _min_cacheable(model: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"price override for {model!r}: 'min_cacheable_tokens' is {value!r}: a whole number > 0")
    return value


def _override_price(model: str, name: str, value: Any) -> Decimal:
    """One price of an override table: a finite number >= 0, or a ConfigError naming the model and the key."""
    where = f"price override for {model!r}: {name!r} is {value!r}"
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ConfigError(f"{where}: prices must be finite numbers >= 0 (USD per MTok)")
    try:
        price = Decimal(str(value).strip())
    except ArithmeticError:
        raise ConfigError(f"{where}, not a number (USD per MTok)") from None
    if not price.is_finite() or price < 0:
        raise ConfigError(f"{where}: prices must be finite numbers >= 0 (USD per MTok)")
    return price


@dataclass(frozen=True, slots=True)
class Cost:
    """USD of one call or of many, by component. ``web_search`` is the per-search fee of the web search server
    tool. ``unknown_models`` lists models that could not be priced: when it is not empty the totals cover only the
    calls that could be. ``estimated`` marks costs that assumed the 5m rate for cache writes whose TTL split was not
    recorded."""

    input: Decimal = _ZERO
    cache_write_5m: Decimal = _ZERO
    cache_write_1h: Decimal = _ZERO
    cache_read: Decimal = _ZERO
    output: Decimal = _ZERO
    web_search: Decimal = _ZERO
    unknown_models: frozenset[str] = field(default_factory=frozenset[str])
    estimated: bool = False

    @property
    def priced_total(self) -> Decimal:
        """USD of everything that could be priced (all of it when ``is_known``)."""
        tokens = self.input + self.cache_write_5m + self.cache_write_1h + self.cache_read + self.output
        return tokens + self.web_search

    @property
    def total(self) -> Decimal:
        """USD in all. Raises ``UnknownPriceError`` when a model could not be priced: an unknown cost is never $0.
        ``priced_total`` is the part that could be priced."""
        if self.unknown_models:
            raise UnknownPriceError(
                f"no price known for {', '.join(sorted(self.unknown_models))}, so the total is unknown (the priced "
                f"part is ${self.priced_total:.4f}): add the model to a price override file (LEANLOOP_PRICES), or "
                "use Cost.priced_total"
            )
        return self.priced_total

    @property
    def is_known(self) -> bool:
        return not self.unknown_models

    @property
    def usd(self) -> float | None:
        """Total in USD, or None when some model was unknown."""
        return float(self.priced_total) if self.is_known else None

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            input=self.input + other.input,
            cache_write_5m=self.cache_write_5m + other.cache_write_5m,
            cache_write_1h=self.cache_write_1h + other.cache_write_1h,
            cache_read=self.cache_read + other.cache_read,
            output=self.output + other.output,
            web_search=self.web_search + other.web_search,
            unknown_models=self.unknown_models | other.unknown_models,
            estimated=self.estimated or other.estimated,
        )

    def __str__(self) -> str:
        if not self.is_known:
            priced = f"${self.priced_total:.4f} + " if self.priced_total else ""
            return f"{priced}unknown ({', '.join(sorted(self.unknown_models))})"
        return f"${self.total:.4f}{' (est.)' if self.estimated else ''}"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "input_usd": float(self.input),
            "cache_write_5m_usd": float(self.cache_write_5m),
            "cache_write_1h_usd": float(self.cache_write_1h),
            "cache_read_usd": float(self.cache_read),
            "output_usd": float(self.output),
            "total_usd": self.usd,
        }
        if self.web_search:
            data["web_search_usd"] = float(self.web_search)
        if self.unknown_models:
            data["unknown_models"] = sorted(self.unknown_models)
        if self.estimated:
            data["estimated"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cost:
        return cls(
            input=Decimal(str(data.get("input_usd", 0))),
            cache_write_5m=Decimal(str(data.get("cache_write_5m_usd", 0))),
            cache_write_1h=Decimal(str(data.get("cache_write_1h_usd", 0))),
            cache_read=Decimal(str(data.get("cache_read_usd", 0))),
            output=Decimal(str(data.get("output_usd", 0))),
            web_search=Decimal(str(data.get("web_search_usd", 0))),
            unknown_models=frozenset(data.get("unknown_models", ())),
            estimated=bool(data.get("estimated", False)),
        )


class PriceOverrides(dict[str, ModelPrices]):
    """Model id -> ``ModelPrices``; wins over genai-prices. Ids match exactly or without a date suffix.

    A model's table may also set ``min_cacheable_tokens`` (alone, or with prices): ``min_cacheable`` holds those,
    and the default pricing (``LEANLOOP_PRICES``) registers them for the whole process (``cachesim``).
    """

    min_cacheable: dict[str, int]

    def __init__(self, prices: Mapping[str, ModelPrices] | None = None, min_cacheable: Mapping[str, int] | None = None):
        super().__init__(prices or {})
        self.min_cacheable = dict(min_cacheable or {})

    @classmethod
    def from_mapping(cls, data: Mapping[str, Mapping[str, Any]]) -> PriceOverrides:
        prices: dict[str, ModelPrices] = {}
        minimums: dict[str, int] = {}
        for model, table in data.items():
            rest = {k: v for k, v in table.items() if k != "min_cacheable_tokens"}
            if "min_cacheable_tokens" in table:
                minimums[model] = _min_cacheable(model, table["min_cacheable_tokens"])
            if rest or "min_cacheable_tokens" not in table:
                prices[model] = ModelPrices.from_mapping(model, rest)
        return cls(prices, minimums)

    @classmethod
    def load(cls, path: str | Path) -> PriceOverrides:
        """From a TOML file (``[claude-x]`` tables) or a JSON file (an object of objects), USD per MTok."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as error:
            raise ConfigError(f"price override file {path}: {error.strerror}") from None
        suffix = path.suffix.lower()
        if suffix in (".yaml", ".yml"):
            raise ConfigError(f"price override file {path}: YAML is not supported: use TOML (.toml) or JSON (.json)")
        try:
            data = json.loads(text) if suffix == ".json" else tomllib.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"price override file {path} is not valid {path.suffix[1:] or 'TOML'}: {error}") from None
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):  # pyright: ignore[reportUnknownVariableType]
            raise ConfigError(f"price override file {path}: expected a table per model id, e.g. [claude-x] input = 3")
        try:
            return cls.from_mapping(data)  # pyright: ignore[reportUnknownArgumentType]
        except ConfigError as error:
            raise ConfigError(f"price override file {path}: {error}") from None


def _strip_date(model: str) -> str:
    head, _, tail = model.rpartition("-")
    return head if tail.isdigit() and len(tail) == 8 else model


@lru_cache(maxsize=512)
def _model_info(model: str) -> Any:
    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(model, None, "anthropic", None)
    except LookupError:
        return None
    return info


@lru_cache(maxsize=1024)
def _resolved_prices(model: str, batch: bool, speed: str | None, day: date) -> ModelPrice | None:
    """genai-prices' price set for the model on that day (prices change by date; resolving them is not free)."""
    info = _model_info(model)
    if info is None:
        return None
    context = {k: v for k, v in (("processing", "batch" if batch else None), ("speed", speed)) if v}
    at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    return info.get_prices(at, context or None)


@lru_cache(maxsize=1024)
def _tier_starts(model: str, batch: bool, speed: str | None, day: date) -> tuple[int, ...]:
    """Prompt sizes above which the model's prices change (none for most models)."""
    resolved = _resolved_prices(model, batch, speed, day)
    if resolved is None:
        return ()
    names = ("input", "output", "cache_write", "cache_write_1h", "cache_read")
    prices = [getattr(resolved, f"{name}_mtok") for name in names]
    return tuple(sorted({t.start for p in prices if isinstance(p, TieredPrices) for t in p.tiers}))


@lru_cache(maxsize=4096)
def _prices_for(model: str, batch: bool, speed: str | None, day: date, tier: int) -> ModelPrices | None:
    """Per-MTok prices of one tier (requests in the same tier cost the same per token: resolve them once)."""
    resolved = _resolved_prices(model, batch, speed, day)
    if resolved is None:
        return None
    starts = _tier_starts(model, batch, speed, day)
    prompt_tokens = starts[tier - 1] + 1 if tier else 0  # any size inside that tier
    # genai-prices has batch rates only from the date it learned them (2026-10-14 for most models); before that
    # the Batch API still cost half (API-FACTS 8), so apply the documented discount rather than full price.
    discount = Decimal("0.5") if batch and resolved == _resolved_prices(model, False, speed, day) else Decimal(1)
    return ModelPrices(
        input=_tier_price(resolved.input_mtok, prompt_tokens) * discount,
        output=_tier_price(resolved.output_mtok, prompt_tokens) * discount,
        cache_write_5m=_tier_price(resolved.cache_write_mtok, prompt_tokens) * discount,
        cache_write_1h=_tier_price(resolved.cache_write_1h_mtok, prompt_tokens) * discount,
        cache_read=_tier_price(resolved.cache_read_mtok, prompt_tokens) * discount,
    )


def _tier_price(price: Decimal | TieredPrices | None, prompt_tokens: int) -> Decimal:
    return calc_unit_price(price, _PER_MTOK, prompt_tokens, _PER_MTOK) if price is not None else _ZERO


class Pricing:
    """Prices calls: genai-prices, with ``overrides`` first."""

    def __init__(self, overrides: Mapping[str, ModelPrices] | None = None) -> None:
        self.overrides = PriceOverrides(overrides or {})
        self._warned: set[str] = set()

    def prices(
        self,
        model: str,
        *,
        prompt_tokens: int = 0,
        batch: bool = False,
        speed: str | None = None,
        inference_geo: str | None = None,
        at: datetime | None = None,
    ) -> ModelPrices | None:
        """Per-MTok prices for one request of ``prompt_tokens`` total input tokens, or None if the model is unknown.

        ``speed="fast"`` and ``inference_geo="us"`` give the rates ``cost`` bills a usage reporting them at.
        """
        prices = self._base_prices(model, prompt_tokens=prompt_tokens, batch=batch, speed=speed, at=at)
        if prices is None or inference_geo != "us":
            return prices
        return _in_us(prices)

    def _base_prices(
        self, model: str, *, prompt_tokens: int, batch: bool, speed: str | None, at: datetime | None
    ) -> ModelPrices | None:
        override = self.overrides.get(model) or self.overrides.get(_strip_date(model))
        if override is not None:
            if not batch:
                return override
            half = Decimal("0.5")
            return ModelPrices(*(getattr(override, f.name) * half for f in fields(ModelPrices)))
        day = (at or datetime.now(tz=UTC)).astimezone(UTC).date()
        key = (model, batch, speed, day)
        return _prices_for(*key, sum(1 for start in _tier_starts(*key) if prompt_tokens > start))

    def cost(self, model: str, usage: Any, *, batch: bool = False, at: datetime | None = None) -> Cost:
        """Cost of one request. ``usage``: the SDK's Usage, a dict of the same shape, or a ``leanloop.Usage``.

        ``batch``, or a usage whose ``service_tier`` is ``"batch"`` (a Batch API result), prices at the batch rate.
        The Batch API has no fast mode, so ``speed="fast"`` in a batch is priced at the batch rate, which is how
        genai-prices resolves that combination. Web searches add their per-search fee.
        """
        if not isinstance(model, str) or not model.strip():  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ConfigError(f"cost(model={model!r}): a model id is required, e.g. 'claude-sonnet-4-6'")
        usage = Usage.from_api(usage)
        batch = batch or usage.service_tier == "batch"
        prices = self.prices(
            model,
            prompt_tokens=usage.prompt_tokens,
            batch=batch,
            speed=usage.speed if usage.speed == "fast" and not batch else None,
            at=at,
        )
        if prices is None:
            if model not in self._warned:
                self._warned.add(model)
                warnings.warn(
                    f"no price known for model {model!r}: its cost is reported as unknown. Add it to a price "
                    "override file (see leanloop.pricing.PriceOverrides) if it is a real model.",
                    UnknownModelWarning,
                    stacklevel=2,
                )
            return Cost(unknown_models=frozenset({model}), estimated=usage.split_estimated)
        if usage.inference_geo == "us":
            prices = _in_us(prices)
        return Cost(
            input=usage.input_tokens * prices.input / _PER_MTOK,
            cache_write_5m=usage.cache_write_5m_tokens * prices.cache_write_5m / _PER_MTOK,
            cache_write_1h=usage.cache_write_1h_tokens * prices.cache_write_1h / _PER_MTOK,
            cache_read=usage.cache_read_tokens * prices.cache_read / _PER_MTOK,
            output=usage.output_tokens * prices.output / _PER_MTOK,
            web_search=_web_search_fee(model, usage.web_search_requests, at),
            estimated=usage.split_estimated,
        )


def _in_us(prices: ModelPrices) -> ModelPrices:
    """The rates of a request with ``inference_geo="us"`` (data residency)."""
    return ModelPrices(*(getattr(prices, f.name) * _US_GEO_MULTIPLIER for f in fields(ModelPrices)))


def _web_search_fee(model: str, searches: int, at: datetime | None) -> Decimal:
    """The per-search fee (the same in batch, per genai-prices; not a token price, so no geo multiplier)."""
    if not searches:
        return _ZERO
    day = (at or datetime.now(tz=UTC)).astimezone(UTC).date()
    return searches * _web_search_per_1000(model, day) / 1000


@lru_cache(maxsize=256)
def _web_search_per_1000(model: str, day: date) -> Decimal:
    resolved = _resolved_prices(model, False, None, day)
    listed = getattr(resolved, "web_searches_kcount", None) if resolved is not None else None
    return listed if isinstance(listed, Decimal) else WEB_SEARCH_USD_PER_1000_UNLISTED_MODEL


@lru_cache(maxsize=1)
def default_pricing() -> Pricing:
    """genai-prices plus the override file named by ``LEANLOOP_PRICES``, if set (its minimum cacheable lengths are
    registered for the process)."""
    path = os.environ.get("LEANLOOP_PRICES")
    overrides = PriceOverrides.load(path) if path else PriceOverrides()
    for model, tokens in overrides.min_cacheable.items():
        register_min_cacheable_tokens(model, tokens)
    return Pricing(overrides)


def cost(model: str, usage: Any, *, batch: bool = False, at: datetime | None = None) -> Cost:
    """Cost of one request with the default pricing. See ``Pricing.cost``.

    >>> cost("claude-sonnet-4-6", {"input_tokens": 8810, "output_tokens": 900}).total
    Decimal('0.03993')
    """
    return default_pricing().cost(model, usage, batch=batch, at=at)
