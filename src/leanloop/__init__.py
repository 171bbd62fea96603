"""leanloop: cheap, fast, capped Claude agent loops, and a ledger of where every cent went."""

from leanloop.errors import (
    BudgetExceeded,
    ConfigError,
    InvalidRequestError,
    LeanloopError,
    RunError,
    UsageError,
)
from leanloop.usage import Usage

__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "InvalidRequestError",
    "LeanloopError",
    "RunError",
    "Usage",
    "UsageError",
]
