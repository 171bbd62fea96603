"""leanloop: cheap, fast, capped Claude agent loops, and a ledger of where every cent went."""

import logging

from leanloop.agent import (
    Agent,
    CacheMissed,
    CallFinished,
    Compacted,
    Event,
    Finished,
    Notice,
    RunResult,
    RunState,
    Stop,
    TextDelta,
    ToolFinished,
    ToolStarted,
    TurnDiscarded,
)
from leanloop.errors import (
    BudgetExceeded,
    ConfigError,
    InvalidRequestError,
    LeanloopError,
    RunError,
    UnknownPriceError,
    UsageError,
)
from leanloop.history import Compaction
from leanloop.limits import Budget, LoopGuard, Spend
from leanloop.pricing import Cost, PriceOverrides, Pricing, cost
from leanloop.request import CachePolicy
from leanloop.tiers import Tiers
from leanloop.tools import Tool, tool
from leanloop.trace import CallRecord, read_trace
from leanloop.usage import Usage

__all__ = [
    "Agent",
    "Budget",
    "BudgetExceeded",
    "CacheMissed",
    "CachePolicy",
    "CallFinished",
    "CallRecord",
    "Compacted",
    "Compaction",
    "ConfigError",
    "Cost",
    "Event",
    "Finished",
    "InvalidRequestError",
    "LeanloopError",
    "LoopGuard",
    "Notice",
    "PriceOverrides",
    "Pricing",
    "RunError",
    "RunResult",
    "RunState",
    "Spend",
    "Stop",
    "TextDelta",
    "Tiers",
    "Tool",
    "ToolFinished",
    "ToolStarted",
    "TurnDiscarded",
    "UnknownPriceError",
    "Usage",
    "UsageError",
    "cost",
    "read_trace",
    "tool",
]

# A library logs, the application decides what to show (warnings also arrive as events and in RunResult.notices).
logging.getLogger("leanloop").addHandler(logging.NullHandler())
