"""Every exception leanloop raises, under one root.

    LeanloopError
     ├── UsageError                  you called leanloop wrongly; fix the call
     │    ├── ConfigError             a bad argument, file or environment value (names which, and what is wrong)
     │    ├── InvalidRequestError     a request the Messages API would reject with 400 (carries the API's message)
     │    └── UnknownPriceError       the total of a cost that includes a model without a price
     └── RunError                    a run stopped or failed; carries what it had so far
          └── BudgetExceeded          a budget cap would be crossed by the next call

    UserWarning
     └── UnknownModelWarning         a model leanloop has no data for: its price is unknown (never $0), or
          └── UnknownMinimumWarning   its minimum cacheable length is assumed (cachesim)

Constructors never log; the data travels on the exception.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "InvalidRequestError",
    "LeanloopError",
    "RunError",
    "UnknownModelWarning",
    "UnknownPriceError",
    "UsageError",
]


class LeanloopError(Exception):
    """Root of every leanloop exception."""


class UsageError(LeanloopError):
    """leanloop was used wrongly: the message says what to change."""


class ConfigError(UsageError, ValueError):
    """A bad argument, file or environment value. The message names it and says what is wrong."""


class InvalidRequestError(UsageError):
    """A request the Messages API would reject with HTTP 400 ``invalid_request_error``.

    ``message`` is the text the API would put in ``error.message``; ``status`` the HTTP status it would use.
    """

    def __init__(self, message: str, *, status: int = 400, error_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type


class UnknownPriceError(UsageError, LookupError):
    """``Cost.total`` of usage that includes a model with no known price: unknown, never $0."""


class RunError(LeanloopError):
    """A run stopped or failed. ``partial`` is whatever the run had produced (a ``RunResult`` for the agent)."""

    def __init__(self, message: str, *, partial: Any = None) -> None:
        super().__init__(message)
        self.partial = partial


class BudgetExceeded(RunError):
    """The next call could cross a budget cap. ``cap`` names it (``usd``, ``max_input_tokens``, ...)."""

    def __init__(self, message: str, *, cap: str, partial: Any = None) -> None:
        super().__init__(message, partial=partial)
        self.cap = cap


class UnknownModelWarning(UserWarning):
    """A model leanloop has no data for. As such (``pricing``): no price in genai-prices nor in the override
    table, so its cost is reported as unknown. Filtering this class also filters its subclasses."""
