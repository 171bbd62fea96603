"""The public names are pinned: adding or removing one is a decision, not an accident."""

from __future__ import annotations

import importlib
import pkgutil

import leanloop

EXPECTED = {
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
}


def test_top_level_names() -> None:
    assert set(leanloop.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(leanloop, name) is not None


def test_every_module_declares_its_public_names() -> None:
    missing = []
    for info in pkgutil.walk_packages(leanloop.__path__, "leanloop."):
        module = importlib.import_module(info.name)
        if info.name.endswith(".cli") or info.name.endswith("__main__"):
            continue
        exported = getattr(module, "__all__", None)
        if exported is None:
            missing.append(info.name)
            continue
        for name in exported:
            assert hasattr(module, name), f"{info.name}.__all__ names {name!r}, which does not exist"
    assert not missing, f"modules without __all__: {missing}"
