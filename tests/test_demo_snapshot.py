"""The generated cluster: deterministic, realistic enough to triage, and sized for the demo's cache economics."""

from __future__ import annotations

import re
import stat
from datetime import datetime
from pathlib import Path

import pytest

from leanloop.demo import snapshot
from leanloop.demo.logs import DEFAULT_TAIL_LINES, LogTools
from leanloop.demo.snapshot import generate_snapshot
from leanloop.tokens import count_text

# A line of the snapshot: ISO timestamp, level, component, message. Stack frames start with a tab.
_LINE = re.compile(r"^(\S+) (DEBUG|INFO|WARN|ERROR|FATAL) [\w-]+ \S")


def _files(root: Path) -> dict[str, tuple[int, bytes]]:
    """Relative path -> (mode, bytes); mode-000 files are made readable after their mode is recorded."""
    found: dict[str, tuple[int, bytes]] = {}
    for path in sorted(root.rglob("*.log")):
        mode = stat.S_IMODE(path.stat().st_mode)
        path.chmod(0o644)
        found[path.relative_to(root).as_posix()] = (mode, path.read_bytes())
        path.chmod(mode)
    return found


def _levels(lines: list[str]) -> tuple[int, int]:
    levels = [match.group(2) for line in lines if (match := _LINE.match(line))]
    return sum(level in ("ERROR", "FATAL") for level in levels), levels.count("WARN")


def test_same_seed_same_bytes_and_modes(tmp_path: Path) -> None:
    first = generate_snapshot(tmp_path / "a")
    second = generate_snapshot(tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert first.pods == second.pods
    assert _files(tmp_path / "a") != _files(generate_snapshot(tmp_path / "c", seed=8).root)


def test_regenerating_replaces_the_unreadable_file_and_stale_pods(tmp_path: Path) -> None:
    info = generate_snapshot(tmp_path)
    stale = tmp_path / "checkout" / "checkout-api-old-replica.log"
    stale.write_text("from an older snapshot\n")
    keep = tmp_path / "README.md"
    keep.write_text("not ours\n")
    assert generate_snapshot(tmp_path) == info
    assert not stale.exists()
    assert keep.exists()


def test_the_cluster_has_the_failures_the_demo_needs(tmp_path: Path) -> None:
    info = generate_snapshot(tmp_path)
    assert info.namespaces == ("checkout", "inventory", "payments", "platform")
    assert 8 <= len(info.pods) <= 12
    texts = {pod.key: (tmp_path / pod.namespace / f"{pod.pod}.log") for pod in info.pods}

    def pods_with(*needles: str) -> list[str]:
        return [
            key for key, path in texts.items() if info.pod(key).readable and all(n in path.read_text() for n in needles)
        ]

    def deployment(key: str) -> str:
        return key.split("/")[1].rsplit("-", 2)[0]

    assert [deployment(k) for k in pods_with("OOMKilled", "exit code 137", "CrashLoopBackOff")] == ["stock-sync"]
    assert [deployment(k) for k in pods_with("payments-db-primary", "timed out")] == ["payments-gateway"]
    assert [deployment(k) for k in pods_with(" 502 ", "upstream payments-gateway returned 503")] == ["checkout-api"]
    noisy = [pod.key for pod in info.pods if pod.readable and pod.errors == 0 and pod.lines >= 300]
    assert [deployment(k) for k in noisy] == ["checkout-web"]

    unreadable = info.unreadable
    assert unreadable.key.startswith("payments/ledger-")
    assert stat.S_IMODE(texts[unreadable.key].stat().st_mode) == 0
    with pytest.raises(PermissionError, match=f"permission denied: {unreadable.key}.log"):
        LogTools(tmp_path).read_pod_logs(unreadable.namespace, unreadable.pod)


def test_recorded_counts_match_the_files(tmp_path: Path) -> None:
    info = generate_snapshot(tmp_path)
    for pod in info.pods:
        path = tmp_path / pod.namespace / f"{pod.pod}.log"
        path.chmod(0o644)
        lines = path.read_text().splitlines()
        assert pod.lines == len(lines)
        assert (pod.errors, pod.warnings) == _levels(lines), pod.key
        assert (pod.tail_errors, pod.tail_warnings) == _levels(lines[-DEFAULT_TAIL_LINES:]), pod.key
        for line in lines:
            match = _LINE.match(line)
            assert match is not None or line.startswith("\tat "), line
            if match:
                datetime.fromisoformat(match.group(1))  # ISO 8601, or this raises


def test_sized_to_cross_the_cache_minimum_but_stay_small(tmp_path: Path) -> None:
    """Reading every pod once must put well over 2,048 tokens in the conversation and well under 30K."""
    info = generate_snapshot(tmp_path)
    tools = LogTools(tmp_path)
    reads = [tools.read_pod_logs(pod.namespace, pod.pod) for pod in info.pods if pod.readable]
    total = sum(count_text(text) for text in reads)
    assert 12_000 < total < 20_000
    assert max(count_text(text) for text in reads) < 8_000  # under the agent's default cap per tool result


def test_public_names() -> None:
    assert sorted(snapshot.__all__) == sorted(
        ["ERROR_LEVELS", "WARNING_LEVELS", "PodInfo", "SnapshotInfo", "generate_snapshot"]
    )
