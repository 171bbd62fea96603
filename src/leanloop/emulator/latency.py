"""How long a response takes, in emulated seconds: a pure function of its usage.

time to first token = ``base_s`` + uncached prompt tokens x ``uncached_s_per_token``
                      + cache-read tokens x ``cached_s_per_token``
generation           = output tokens / ``output_tokens_per_s``

Uncached tokens are ``input_tokens + cache_creation_input_tokens``: a cache write is a full prefill. The defaults come
from public measurements:

- Prefill, uncached vs cached: Anthropic's prompt-caching announcement (anthropic.com/news/prompt-caching,
  2024-08-14) reports a 100,000-token prompt at 11.5 s uncached and 2.4 s cached ("chat with a book", -79 %), and a
  10,000-token prompt at 1.6 s vs 1.1 s ("many-shot prompting", -31 %). With a 0.6 s base that is about 109 us per
  uncached token (~9,000 tokens/s) and 18 us per cached token.
- Base and output speed: Artificial Analysis measured Claude Sonnet 4.5 at a 1.80 s TTFT and 63 output tokens/s
  (artificialanalysis.ai, late 2025); BridgeBench's speedbench measured Sonnet 4.6 at a 1.2 s median TTFT and
  86-95 tokens/s (bridgebench.ai/speedbench/claude-sonnet-4-6). Both TTFTs include a network round trip and a
  ~1K-token prompt; 0.6 s base + prefill lands inside that range. 63 tokens/s is the conservative figure.

``time_scale`` turns emulated seconds into real sleeping: 1.0 is real time, 0.01 is 100x faster, 0 never sleeps
(the modeled times are still reported and still decide when a cache entry becomes readable).
"""

from __future__ import annotations

from dataclasses import dataclass

from leanloop.usage import Usage

__all__ = ["LatencyModel", "Timing"]


@dataclass(frozen=True, slots=True)
class Timing:
    """Modeled durations of one response, in emulated seconds."""

    ttft_s: float
    generation_s: float

    @property
    def total_s(self) -> float:
        return self.ttft_s + self.generation_s


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """TTFT and output speed of an emulated model (defaults and their sources in the module docstring)."""

    base_s: float = 0.6
    uncached_s_per_token: float = 109e-6
    cached_s_per_token: float = 18e-6
    output_tokens_per_s: float = 63.0
    time_scale: float = 0.0

    def __post_init__(self) -> None:
        if self.time_scale < 0 or self.output_tokens_per_s <= 0:
            raise ValueError("time_scale must be >= 0 and output_tokens_per_s > 0")

    def ttft(self, usage: Usage) -> float:
        uncached = usage.input_tokens + usage.cache_write_tokens
        return self.base_s + uncached * self.uncached_s_per_token + usage.cache_read_tokens * self.cached_s_per_token

    def generation(self, output_tokens: int) -> float:
        return output_tokens / self.output_tokens_per_s

    def timing(self, usage: Usage, output_tokens: int) -> Timing:
        return Timing(self.ttft(usage), self.generation(output_tokens))

    def real(self, emulated_s: float) -> float:
        """Real seconds to sleep for ``emulated_s`` emulated seconds."""
        return emulated_s * self.time_scale
