"""A small generated cluster of pod logs for the triage demo, the same bytes for the same seed.

The story the logs tell: the payments database stops answering, so payments-gateway times out on its connection
pool and checkout-api turns the 503/504s it gets from payments-gateway into 502/504s for its callers. Unrelated,
inventory/stock-sync is crash-looping (OOMKilled, exit code 137, CrashLoopBackOff), checkout-web is healthy but
noisy, and payments/ledger cannot be read at all (mode 000: permission denied), which is what the runaway-retry
incident keeps hitting.

Sizes are chosen for the demo's economics: with ``read_pod_logs`` returning 100 lines by default, reading every
pod puts about 17K tokens (``leanloop.tokens`` estimate) in the conversation, well past the 2,048 tokens that
claude-sonnet-4-6 needs before it caches anything, and the analyst's largest request stays near 21K, well under
30K. No single read comes near the agent's default 8K cap on a tool result.

``generate_snapshot`` returns a ``SnapshotInfo`` with what it wrote, including the expected error and warning counts
per pod (for the whole file and for the default tail), so tests can check an analyst's numbers against the truth.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from leanloop.demo.logs import DEFAULT_TAIL_LINES

__all__ = ["ERROR_LEVELS", "WARNING_LEVELS", "PodInfo", "SnapshotInfo", "generate_snapshot"]

ERROR_LEVELS = frozenset({"ERROR", "FATAL"})
WARNING_LEVELS = frozenset({"WARN"})

_START = datetime(2025, 3, 14, 1, 0, 0, tzinfo=UTC)
_WINDOW_SECONDS = 3600.0
_K8S_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses for generated name suffixes
_DB_HOST = "payments-db-primary.payments.svc:5432"
_CERTS = ("checkout-tls", "payments-tls", "inventory-tls")


@dataclass(frozen=True)
class PodInfo:
    """One generated pod: where it is, what it shows, and the error/warning lines it contains."""

    namespace: str
    pod: str
    story: str
    lines: int
    errors: int
    warnings: int
    tail_errors: int  # within the last DEFAULT_TAIL_LINES lines, what read_pod_logs returns by default
    tail_warnings: int
    readable: bool = True

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.pod}"


@dataclass(frozen=True)
class SnapshotInfo:
    """What ``generate_snapshot`` wrote."""

    root: Path
    seed: int
    pods: tuple[PodInfo, ...]

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(sorted({pod.namespace for pod in self.pods}))

    @property
    def unreadable(self) -> PodInfo:
        """The pod whose log file has mode 000."""
        return next(pod for pod in self.pods if not pod.readable)

    def pod(self, key: str) -> PodInfo:
        """The pod called ``namespace/pod``."""
        for pod in self.pods:
            if pod.key == key:
                return pod
        raise KeyError(key)


@dataclass(frozen=True)
class _Line:
    level: str | None  # None for lines without a level (stack trace frames)
    text: str


# A message maker draws the variable parts of one log message from the generator.
_Make = Callable[[random.Random], str]
# (weight, level, component, message maker)
_Mix = Sequence[tuple[int, str, str, _Make]]


class _Clock:
    """Timestamps that move forward by a random step, spreading ``count`` lines over the same hour."""

    def __init__(self, rng: random.Random, count: int) -> None:
        self._rng = rng
        self._mean_step = _WINDOW_SECONDS / max(count, 1)
        self._now = _START + timedelta(seconds=rng.uniform(0, self._mean_step))

    def tick(self) -> str:
        self._now += timedelta(seconds=self._rng.uniform(0.2, 1.8) * self._mean_step)
        return self._now.strftime("%Y-%m-%dT%H:%M:%SZ")


def _hex(rng: random.Random, length: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(length))


def _req(rng: random.Random) -> str:
    return f"req={_hex(rng, 8)}"


def _ms(rng: random.Random, low: int, high: int) -> str:
    return f"{rng.randint(low, high)}ms"


def _sku(rng: random.Random) -> str:
    return f"SKU-{rng.randint(10000, 99999)}"


def _pod_name(rng: random.Random, deployment: str) -> str:
    replica_set = "".join(rng.choice(_K8S_ALPHABET) for _ in range(10))
    return f"{deployment}-{replica_set}-{''.join(rng.choice(_K8S_ALPHABET) for _ in range(5))}"


def _mixed(rng: random.Random, count: int, before: _Mix, after: _Mix, onset: float) -> list[_Line]:
    """``count`` lines drawn from ``before``, then from ``after`` once ``onset`` (a fraction) of them is written."""
    clock = _Clock(rng, count)
    lines: list[_Line] = []
    for index in range(count):
        mix = before if index < onset * count else after
        _, level, component, make = rng.choices(mix, weights=[entry[0] for entry in mix])[0]
        lines.append(_Line(level, f"{clock.tick()} {level} {component} {make(rng)}"))
    return lines


def _checkout_web(rng: random.Random) -> list[_Line]:
    mix: _Mix = [
        (50, "INFO", "http", lambda r: f"GET /products/{_sku(r)} 200 {_ms(r, 8, 90)}"),
        (14, "INFO", "http", lambda r: f"GET /static/app.{_hex(r, 8)}.js 304 {_ms(r, 1, 4)}"),
        (12, "INFO", "http", lambda r: "GET /healthz 200 1ms"),
        (20, "DEBUG", "render", lambda r: f"rendered product page {_sku(r)} in {_ms(r, 3, 40)}"),
        (1, "WARN", "render", lambda r: f"slow render of /checkout in {_ms(r, 900, 1600)} (budget 800ms)"),
    ]
    return _mixed(rng, 420, mix, mix, onset=1.0)


def _checkout_api(rng: random.Random) -> list[_Line]:
    ok: _Mix = [
        (55, "INFO", "http", lambda r: f"POST /api/v1/checkout 200 {_ms(r, 80, 400)}"),
        (25, "INFO", "http", lambda r: f"GET /api/v1/cart/{_hex(r, 8)} 200 {_ms(r, 5, 60)}"),
        (8, "DEBUG", "pricing", lambda r: f"applied promotion SPRING25 to cart {_hex(r, 8)}"),
        (3, "WARN", "http", lambda r: f"slow upstream payments-gateway: {_ms(r, 1200, 2500)} for {_req(r)}"),
    ]
    failing: _Mix = [
        (28, "INFO", "http", lambda r: f"POST /api/v1/checkout 200 {_ms(r, 300, 900)}"),
        (14, "INFO", "http", lambda r: f"GET /api/v1/cart/{_hex(r, 8)} 200 {_ms(r, 5, 60)}"),
        (20, "ERROR", "http", lambda r: f"POST /api/v1/checkout 502 {_req(r)}: upstream payments-gateway returned 503"),
        (
            12,
            "ERROR",
            "http",
            lambda r: f"POST /api/v1/checkout 504 {_req(r)}: upstream payments-gateway timed out after 10000ms",
        ),
        (10, "WARN", "client", lambda r: f"retrying payments-gateway call (attempt 2 of 3) {_req(r)}"),
    ]
    return _mixed(rng, 320, ok, failing, onset=0.5)


def _payments_gateway(rng: random.Random) -> list[_Line]:
    ok: _Mix = [
        (55, "INFO", "api", lambda r: f"POST /v1/authorize 200 {_ms(r, 40, 180)}"),
        (12, "INFO", "db", lambda r: f"pool stats: active={r.randint(2, 8)} idle={r.randint(10, 18)} waiting=0"),
        (2, "WARN", "db", lambda r: f"slow query on payment_intents took {_ms(r, 700, 1900)}"),
    ]
    failing: _Mix = [
        (18, "INFO", "api", lambda r: f"POST /v1/authorize 200 {_ms(r, 900, 4000)}"),
        (34, "ERROR", "db", lambda r: f"connection to {_DB_HOST} timed out after 5000ms (pool 20/20 busy)"),
        (
            16,
            "ERROR",
            "api",
            lambda r: f"POST /v1/authorize 503 {_req(r)}: no database connection available within 10000ms",
        ),
        (9, "WARN", "db", lambda r: f"pool exhausted: active=20 idle=0 waiting={r.randint(5, 60)}"),
        (4, "WARN", "db", lambda r: f"reconnecting to {_DB_HOST} (attempt {r.randint(2, 9)})"),
    ]
    return _mixed(rng, 280, ok, failing, onset=0.45)


def _ledger(rng: random.Random) -> list[_Line]:
    mix: _Mix = [
        (70, "INFO", "journal", lambda r: f"posted journal entry je_{_hex(r, 10)} ({r.randint(5, 400)}.00 EUR)"),
        (6, "WARN", "journal", lambda r: f"payments-gateway callback late by {_ms(r, 2000, 9000)}"),
        (2, "ERROR", "journal", lambda r: "failed to flush journal batch: disk quota exceeded on /var/lib/ledger"),
    ]
    return _mixed(rng, 200, mix, mix, onset=1.0)


def _stock_sync(rng: random.Random) -> list[_Line]:
    """Seven short lives of a container that runs out of heap, each ended by the kubelet."""
    clock = _Clock(rng, 85)
    lines: list[_Line] = []

    def log(level: str, component: str, message: str) -> None:
        lines.append(_Line(level, f"{clock.tick()} {level} {component} {message}"))

    for restart in range(8, 15):
        log("INFO", "main", "starting stock-sync 2.8.1 (max heap 512Mi)")
        log("INFO", "loader", "loading warehouse snapshot s3://acme-inventory/snapshots/latest.parquet")
        for batch in range(1, rng.randint(3, 6)):
            log("INFO", "loader", f"loaded batch {batch} of 40 ({rng.randint(40, 60)}k rows) in {_ms(rng, 300, 900)}")
        for _ in range(rng.randint(1, 3)):
            log("WARN", "gc", f"GC overhead {rng.randint(60, 97)}% over the last 60s; heap nearly full")
        log("ERROR", "main", "java.lang.OutOfMemoryError: Java heap space")
        lines.extend(
            _Line(None, f"\tat com.acme.stock.{frame}")
            for frame in (
                "SnapshotLoader.readBatch(SnapshotLoader.java:214)",
                "SnapshotLoader.load(SnapshotLoader.java:88)",
                "StockSync.main(StockSync.java:41)",
            )
        )
        log(
            "ERROR",
            "kubelet",
            f"container stock-sync terminated: reason=OOMKilled exit code 137 restartCount={restart}",
        )
        log("WARN", "kubelet", "Back-off restarting failed container stock-sync: CrashLoopBackOff (back-off 5m0s)")
    return lines


def _inventory_api(rng: random.Random) -> list[_Line]:
    mix: _Mix = [
        (60, "INFO", "http", lambda r: f"GET /v1/stock/{_sku(r)} 200 {_ms(r, 3, 40)}"),
        (15, "INFO", "http", lambda r: f"POST /v1/reservations 201 {_ms(r, 10, 80)} {_req(r)}"),
        (6, "DEBUG", "cache", lambda r: f"refreshed stock cache: {r.randint(1500, 2100)} items"),
        (4, "WARN", "stock", lambda r: f"stock snapshot is {r.randint(20, 70)}m old; stock-sync has not reported"),
        (1, "ERROR", "db", lambda r: "deadlock detected on stock_levels; transaction rolled back"),
    ]
    return _mixed(rng, 70, mix, mix, onset=1.0)


def _cert_manager(rng: random.Random) -> list[_Line]:
    mix: _Mix = [
        (20, "INFO", "controller", lambda r: f"certificate {r.choice(_CERTS)} is up to date, next check in 1h"),
        (4, "INFO", "acme", lambda r: "ACME account registration verified"),
        (2, "WARN", "controller", lambda r: "certificate checkout-tls expires in 12 days; renewal is scheduled"),
    ]
    return _mixed(rng, 36, mix, mix, onset=1.0)


def _coredns(rng: random.Random) -> list[_Line]:
    hosts = ("payments-db-primary.payments.svc", "payments-gateway.payments.svc", "checkout-api.checkout.svc")
    mix: _Mix = [
        (30, "INFO", "dns", lambda r: f"A {r.choice(hosts)} NOERROR {_ms(r, 0, 2)}"),
        (1, "INFO", "reload", lambda r: "Corefile unchanged, skipping reload"),
    ]
    return _mixed(rng, 40, mix, mix, onset=1.0)


# (namespace, deployment, story, generator); the ledger's pod name is short, as a StatefulSet-like name.
_PODS: tuple[tuple[str, str, str, Callable[[random.Random], list[_Line]]], ...] = (
    ("checkout", "checkout-api", "5xx from upstream payments-gateway", _checkout_api),
    ("checkout", "checkout-web", "healthy, noisy", _checkout_web),
    ("inventory", "inventory-api", "mostly healthy, stale stock warnings", _inventory_api),
    ("inventory", "stock-sync", "crash-looping: OOMKilled, exit code 137, CrashLoopBackOff", _stock_sync),
    ("payments", "ledger", "unreadable: permission denied", _ledger),
    ("payments", "payments-gateway", f"database connection timeouts to {_DB_HOST}", _payments_gateway),
    ("platform", "coredns", "healthy, quiet", _coredns),
    ("platform", "cert-manager", "healthy, one expiry warning", _cert_manager),
)


def _count(lines: Sequence[_Line], levels: frozenset[str]) -> int:
    return sum(1 for line in lines if line.level in levels)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Replace the file (a previous snapshot may have left it unwritable) and set its mode exactly."""
    path.unlink(missing_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


def generate_snapshot(root: Path, seed: int = 7) -> SnapshotInfo:
    """Write the demo cluster under ``root`` (``<root>/<namespace>/<pod>.log``) and say what was written.

    Same seed, same bytes and modes: the demo's cost numbers and the tests depend on it. The ``*.log`` files of the
    snapshot's namespaces are replaced (a stale pod from an older snapshot would show up in the triage); anything
    else under ``root`` is left alone.
    """
    rng = random.Random(seed)
    pods: list[PodInfo] = []
    for namespace in {entry[0] for entry in _PODS}:
        for stale in (root / namespace).glob("*.log"):  # pods of an older snapshot would linger and mislead
            stale.unlink()
    for namespace, deployment, story, generate in _PODS:
        readable = deployment != "ledger"
        pod = _pod_name(rng, deployment) if readable else f"{deployment}-{_hex(rng, 4)}"
        lines = generate(rng)
        directory = root / namespace
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o755)
        text = "".join(line.text + "\n" for line in lines)
        _write(directory / f"{pod}.log", text.encode(), 0o644 if readable else 0o000)
        tail = lines[-DEFAULT_TAIL_LINES:]
        pods.append(
            PodInfo(
                namespace=namespace,
                pod=pod,
                story=story,
                lines=len(lines),
                errors=_count(lines, ERROR_LEVELS),
                warnings=_count(lines, WARNING_LEVELS),
                tail_errors=_count(tail, ERROR_LEVELS),
                tail_warnings=_count(tail, WARNING_LEVELS),
                readable=readable,
            )
        )
    return SnapshotInfo(root=root, seed=seed, pods=tuple(pods))
