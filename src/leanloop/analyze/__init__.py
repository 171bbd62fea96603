"""Analysis of recorded traces: report, explain, whatif, estimate."""
