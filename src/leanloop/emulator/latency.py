"""How long a response takes, in emulated seconds: a pure function of the model and the response's usage.

time to first token = base (per model family)
                      + uncached prompt tokens x ``uncached_s_per_token``
                      + for cache-read tokens: min(``cache_read_base_s`` + tokens x ``cached_s_per_token``,
                                                   what prefilling them would cost)
generation           = output tokens / output tokens per second (per model family)

Uncached tokens are ``input_tokens + cache_creation_input_tokens``: a cache write is a full prefill. Reading from the
cache has a fixed cost, so it pays off in latency only on longer prefixes (above ~4,500 tokens); it is never slower
than not caching.

Prefill, fitted to both points of Anthropic's prompt-caching announcement (anthropic.com/news/prompt-caching,
2024-08-14, Claude 3.5 Sonnet): a 10,000-token prompt at 1.6 s uncached and 1.1 s cached ("many-shot prompting"), a
100,000-token prompt at 11.5 s and 2.4 s ("chat with a book"). With that model's 0.5 s base the four points come out
exactly: 110 us per uncached token (~9,100 tokens/s); a cache read 0.456 s + 14.4 us per token.

Base and output speed per family, from public measurements (the base is the measured TTFT less the prefill of the
~1,000-token prompt such benchmarks send, 0.11 s):

==================  =========  ==============  ===============================================================
family              base (s)   output (tok/s)  source
==================  =========  ==============  ===============================================================
Haiku               0.79       112             lmspeed.net, Claude Haiku 4.5: 0.90 s to first token, 112 tok/s
Sonnet (4.6, 5.x)   1.10       95              bridgebench.ai speedbench, Sonnet 4.6: 1.21 s median TTFT,
                                               95.3 tok/s median
Sonnet 4.5          1.69       63              Artificial Analysis (via lattice.uptownhr.com): 1.80 s, 63 tok/s
Opus                2.56       45              Artificial Analysis, Opus 4.1 (the latest Opus measured there in
                                               those sources): 2.67 s, 45 tok/s
Fable, Mythos       2.56       77              Artificial Analysis (via swen.ia.br), Fable 5: 77 tok/s; its
                                               measured TTFT includes thinking (emulated as output), so the base
                                               is Opus's
==================  =========  ==============  ===============================================================

A model the table does not name gets Sonnet's speed. ``base_s`` and ``output_tokens_per_s`` override the table for
every model (``leanloop emulator --ttft-base --output-rate``); ``uncached_s_per_token`` sets the prefill rate
(``--prefill-rate``). ``time_scale`` turns emulated seconds into real sleeping: 1.0 is real time, 0.01 is 100x
faster, 0 never sleeps (the modeled times are still reported and still decide when a cache entry becomes readable).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from leanloop.usage import Usage

__all__ = ["SPEEDS", "LatencyModel", "Speed", "Timing"]


@dataclass(frozen=True, slots=True)
class Speed:
    """How fast a model family answers: the fixed part of its time to first token and its output rate."""

    base_s: float
    output_tokens_per_s: float


# By model id prefix, the longest match wins (sources in the module docstring).
SPEEDS: dict[str, Speed] = {
    "claude-haiku": Speed(0.79, 112.0),
    "claude-sonnet": Speed(1.10, 95.0),
    "claude-sonnet-4-5": Speed(1.69, 63.0),
    "claude-opus": Speed(2.56, 45.0),
    "claude-fable": Speed(2.56, 77.0),
    "claude-mythos": Speed(2.56, 77.0),
}
_DEFAULT = SPEEDS["claude-sonnet"]


@lru_cache(maxsize=256)
def speed_of(model: str) -> Speed:
    """The table's speed for ``model`` (longest matching id prefix; Sonnet's for an unknown model)."""
    best = max((prefix for prefix in SPEEDS if model == prefix or model.startswith(prefix + "-")), key=len, default="")
    return SPEEDS.get(best, _DEFAULT)


@dataclass(frozen=True, slots=True)
class Timing:
    """Modeled durations of one response, in emulated seconds, and the output rate that paces its stream."""

    ttft_s: float
    generation_s: float
    output_tokens_per_s: float = _DEFAULT.output_tokens_per_s

    @property
    def total_s(self) -> float:
        return self.ttft_s + self.generation_s


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """TTFT and output speed of the emulated models (defaults and their sources in the module docstring).

    ``base_s`` and ``output_tokens_per_s`` are None to use each model's own (``SPEEDS``), or a value for every model.
    """

    base_s: float | None = None
    uncached_s_per_token: float = 110e-6
    cache_read_base_s: float = 0.456
    cached_s_per_token: float = 14.4e-6
    output_tokens_per_s: float | None = None
    time_scale: float = 0.0

    def __post_init__(self) -> None:
        if self.time_scale < 0:
            raise ValueError(f"time_scale must be >= 0, got {self.time_scale}")
        if self.output_tokens_per_s is not None and self.output_tokens_per_s <= 0:
            raise ValueError(f"output_tokens_per_s must be > 0, got {self.output_tokens_per_s}")
        rates = (self.base_s or 0, self.uncached_s_per_token, self.cache_read_base_s, self.cached_s_per_token)
        if min(rates) < 0:
            raise ValueError("base_s, uncached_s_per_token, cache_read_base_s and cached_s_per_token must be >= 0")

    def speed(self, model: str = "") -> Speed:
        """``model``'s speed, with this model's overrides applied."""
        own = speed_of(model)
        base = own.base_s if self.base_s is None else self.base_s
        rate = own.output_tokens_per_s if self.output_tokens_per_s is None else self.output_tokens_per_s
        return Speed(base, rate)

    def ttft(self, usage: Usage, model: str = "") -> float:
        uncached = (usage.input_tokens + usage.cache_write_tokens) * self.uncached_s_per_token
        read = usage.cache_read_tokens
        cached = min(self.cache_read_base_s + read * self.cached_s_per_token, read * self.uncached_s_per_token)
        return self.speed(model).base_s + uncached + cached

    def generation(self, output_tokens: int, model: str = "") -> float:
        return output_tokens / self.speed(model).output_tokens_per_s

    def timing(self, usage: Usage, output_tokens: int, model: str = "") -> Timing:
        rate = self.speed(model).output_tokens_per_s
        return Timing(self.ttft(usage, model), output_tokens / rate, rate)

    def real(self, emulated_s: float) -> float:
        """Real seconds to sleep for ``emulated_s`` emulated seconds."""
        return emulated_s * self.time_scale
