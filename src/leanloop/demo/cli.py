"""`leanloop demo` (to be built: issue 4; until then it runs the estimator)."""

from leanloop.analyze.estimate import estimate_command


def demo() -> None:
    """Run the main demo."""
    estimate_command(preset="five-step")
