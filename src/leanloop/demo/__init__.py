"""The log-triage demo agent: `leanloop demo` (cli), its runs (run), the tools (logs), the generated cluster
(snapshot), the scripted analyst (analyst) and the naive baseline loop (naive)."""

__all__: list[str] = []
