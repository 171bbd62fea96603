"""The log-triage demo agent."""
