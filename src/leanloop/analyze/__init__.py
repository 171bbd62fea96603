"""Analysis of recorded traces: report, explain, whatif, estimate (one module each; importers beside them)."""

__all__: list[str] = []
