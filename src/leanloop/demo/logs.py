"""Read-only log tools for the triage demo, over a tree ``<root>/<namespace>/<pod>.log``.

Everything a model passes in is untrusted. Names are checked before they touch the file system, and every path is
resolved and must stay inside the root, so ``..``, absolute paths and symlinks cannot reach other files. A refusal
is a ``ToolInputError`` whose message names the argument and says what to pass instead: the model reads that
message, so it has to be something the model can act on.

A file whose permission bits grant no read access is refused with ``PermissionError`` even when the process could
open it anyway (root can read mode-000 files): the demo's "permission denied" pod must fail the same way for
everyone, or the runaway-retry incident it stages would depend on who runs it.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from leanloop.errors import ConfigError

__all__ = [
    "DEFAULT_TAIL_LINES",
    "LOG_SUFFIXES",
    "MAX_TAIL_LINES",
    "SEARCH_MATCH_LIMIT",
    "LogTools",
    "ToolInputError",
]

DEFAULT_TAIL_LINES = 100
MAX_TAIL_LINES = 10_000
SEARCH_MATCH_LIMIT = 25
# Which files are pods, in the order that wins when two files share a name ("api.log" beats "api.txt").
LOG_SUFFIXES = (".log", ".txt", "")

_MAX_NAME_CHARS = 255
_MAX_PATTERN_CHARS = 200
_MAX_LINE_CHARS = 400  # a search hit longer than this is clipped: one giant line must not flood the context
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SNIFF_BYTES = 8192  # a NUL byte in a file's first 8 KB: binary, not a log (the test git and grep use)


class ToolInputError(ValueError):
    """A tool argument the model got wrong. The message names the argument, says why, and what exists instead."""


def _check_name(value: object, argument: str, lister: str) -> str:
    """Return ``value`` if it is a bare name that cannot leave its directory, else raise ``ToolInputError``."""
    if not isinstance(value, str):
        raise ToolInputError(f"{argument} must be a string, got {type(value).__name__}")
    hint = f"pass a bare {argument} name as returned by {lister}"
    if not value:
        raise ToolInputError(f"{argument} is empty; {hint}")
    if value.startswith(("/", "\\", "~")) or _WINDOWS_DRIVE.match(value):
        raise ToolInputError(f"{argument} {value!r} is an absolute path; {hint}")
    if ".." in re.split(r"[/\\]", value):
        raise ToolInputError(f"{argument} {value!r} contains '..', which would leave the log root; {hint}")
    if "/" in value or "\\" in value:
        raise ToolInputError(f"{argument} {value!r} contains a path separator; {hint}")
    if _CONTROL.search(value):
        raise ToolInputError(f"{argument} {value!r} contains a control character; {hint}")
    if value.startswith("."):
        raise ToolInputError(f"{argument} {value!r} names a hidden entry; {hint}")
    if len(value) > _MAX_NAME_CHARS:
        raise ToolInputError(f"{argument} is {len(value)} characters long (at most {_MAX_NAME_CHARS}); {hint}")
    return value


def _pod_name(path: Path) -> str | None:
    """The pod a file stands for, or None when the file is not a log (hidden, or an unknown suffix)."""
    if path.name.startswith(".") or path.suffix.lower() not in LOG_SUFFIXES:
        return None
    return path.stem if path.suffix else path.name


def _check_readable(path: Path, label: str) -> None:
    """Refuse a file or directory whose mode grants nobody read access, whoever we run as."""
    if not stat.S_IMODE(path.stat().st_mode) & 0o444:
        raise PermissionError(f"permission denied: {label}")


def _text_problem(path: Path, label: str) -> str | None:
    """Why ``path`` cannot be read as a text log, or None when it can."""
    try:
        _check_readable(path, label)
        with path.open("rb") as file:
            head = file.read(_SNIFF_BYTES)
    except PermissionError as exc:
        return str(exc) if str(exc).startswith("permission denied") else f"permission denied: {label}"
    except OSError as exc:
        return f"cannot read {label}: {exc.strerror or exc}"
    return f"{label} is binary" if b"\0" in head else None


def _compile(pattern: object) -> tuple[re.Pattern[str], str]:
    """A case-insensitive regex for ``pattern``, and a note when it had to be taken as plain text."""
    if not isinstance(pattern, str):
        raise ToolInputError(f"pattern must be a string, got {type(pattern).__name__}")
    if not pattern.strip():
        raise ToolInputError("pattern is empty; pass a word or a regular expression such as 'timed out|refused'")
    if len(pattern) > _MAX_PATTERN_CHARS:
        raise ToolInputError(f"pattern is {len(pattern)} characters long (at most {_MAX_PATTERN_CHARS}); shorten it")
    try:
        return re.compile(pattern, re.IGNORECASE), ""
    except re.error as exc:
        note = f" (not a valid regular expression: {exc}; searched as plain text)"
        return re.compile(re.escape(pattern), re.IGNORECASE), note


def _clip(line: str) -> str:
    return line if len(line) <= _MAX_LINE_CHARS else line[:_MAX_LINE_CHARS] + " [...]"


class LogTools:
    """The four demo tools, bound to one log root. Pass the bound methods to an agent as its tools."""

    def __init__(self, root: Path | str, *, namespace: str | None = None) -> None:
        """Serve ``root`` as a tree of namespace directories, or, with ``namespace``, as that one namespace.

        Raises ``ConfigError`` when ``root`` is not a directory: that is the user's mistake, not the model's.
        """
        path = Path(root)
        if not path.is_dir():
            raise ConfigError(f"log root {str(path)!r} is not a directory")
        self.root = path.resolve()
        self.single_namespace = namespace

    @classmethod
    def for_directory(cls, path: Path | str) -> LogTools:
        """Tools for ``--logs DIR``: a directory of subdirectories is a tree; a flat directory is one namespace.

        The flat namespace is named after the directory and each log file in it is a pod, so a folder of loose
        log files (``Apache_2k.log``, ``OpenStack_2k.log``) works without being rearranged.
        """
        directory = Path(path)
        if not directory.is_dir():
            raise ConfigError(f"--logs {str(directory)!r} is not a directory")
        if any(child.is_dir() and not child.name.startswith(".") for child in directory.iterdir()):
            return cls(directory)
        return cls(directory, namespace=directory.resolve().name or "logs")

    def check_logs(self) -> dict[str, str | None]:
        """Each log file the tools serve (``namespace/file``), with why it cannot be read as text, or None when it
        can: binary (a NUL byte early on), or a mode that grants no read access (the file's, or its namespace's).
        ``--logs`` refuses a folder where none can be read."""
        found: dict[str, str | None] = {}
        for namespace in self.list_namespaces():
            try:
                directory = self._namespace_dir(namespace)
            except PermissionError as exc:
                found[f"{namespace}/"] = str(exc)
                continue
            for _, path in sorted(self._pod_files(directory).items()):
                if self._inside(path):
                    found[f"{namespace}/{path.name}"] = _text_problem(path, f"{namespace}/{path.name}")
        return found

    def tools(self) -> list[Callable[..., Any]]:
        """The four tools as bound methods, in a fixed order (a stable order keeps the prompt cache valid)."""
        return [self.list_namespaces, self.list_pods, self.read_pod_logs, self.search_logs]

    # -- the tools ------------------------------------------------------------------------------------------------

    def list_namespaces(self) -> list[str]:
        """List the namespaces that have logs, sorted by name."""
        if self.single_namespace is not None:
            return [self.single_namespace]
        return sorted(
            child.name
            for child in self.root.iterdir()
            if not child.name.startswith(".") and child.is_dir() and self._inside(child)
        )

    def list_pods(self, namespace: str) -> list[str]:
        """List the pods of one namespace that have a log file, sorted by name.

        Args:
            namespace: A namespace name exactly as returned by list_namespaces.
        """
        directory = self._namespace_dir(namespace)
        return sorted(pod for pod, path in self._pod_files(directory).items() if self._inside(path))

    def read_pod_logs(self, namespace: str, pod: str, tail_lines: int = DEFAULT_TAIL_LINES) -> str:
        """Return the last lines of one pod's log, after a header line saying which lines they are.

        Args:
            namespace: A namespace name exactly as returned by list_namespaces.
            pod: A pod name exactly as returned by list_pods for that namespace.
            tail_lines: How many lines to return, counted from the end of the log (1 to 10000).
        """
        given = cast(object, tail_lines)  # models send JSON: it may be a string or a float whatever the annotation says
        if isinstance(given, bool) or not isinstance(given, int):
            raise ToolInputError(f"tail_lines must be an integer, got {type(given).__name__} {given!r}")
        if not 1 <= tail_lines <= MAX_TAIL_LINES:
            raise ToolInputError(f"tail_lines is {tail_lines}; it must be between 1 and {MAX_TAIL_LINES}")
        lines = self._read_lines(namespace, self._pod_file(namespace, pod))
        if not lines:
            return f"==> {namespace}/{pod}: the log is empty <=="
        tail = lines[-tail_lines:]
        first = len(lines) - len(tail) + 1
        header = f"==> {namespace}/{pod}: lines {first}-{len(lines)} of {len(lines)} <=="
        return "\n".join([header, *tail])

    def search_logs(self, pattern: str, namespace: str | None = None) -> str:
        """Find log lines matching a pattern, each prefixed with namespace/pod:line_number.

        Args:
            pattern: A regular expression or plain text, matched case-insensitively against each line.
            namespace: Search only this namespace (as returned by list_namespaces); omit to search all of them.
        """
        regex, note = _compile(pattern)
        namespaces = self.list_namespaces() if namespace is None else [namespace]
        hits: list[str] = []
        total = 0
        skipped: list[str] = []
        for name in namespaces:
            directory = self._namespace_dir(name)
            for pod, path in sorted(self._pod_files(directory).items()):
                if not self._inside(path):
                    continue
                try:
                    lines = self._read_lines(name, path)
                except PermissionError as exc:
                    skipped.append(str(exc))
                    continue
                for number, line in enumerate(lines, start=1):
                    if regex.search(line):
                        total += 1
                        if len(hits) < SEARCH_MATCH_LIMIT:
                            hits.append(f"{name}/{pod}:{number}: {_clip(line)}")
        where = "all namespaces" if namespace is None else f"namespace {namespace}"
        report = [f"{total} lines match '{pattern}' in {where}{note}", *hits]
        if total > len(hits):
            report.append(
                f"[{total - len(hits)} more matching lines not shown; narrow the pattern or pass a namespace]"
            )
        report.extend(f"[skipped: {reason}]" for reason in skipped)
        return "\n".join(report)

    # -- confinement ----------------------------------------------------------------------------------------------

    def _inside(self, path: Path) -> bool:
        """True when ``path``, symlinks resolved, is still under the root."""
        return path.resolve().is_relative_to(self.root)

    def _namespace_dir(self, namespace: str) -> Path:
        _check_name(namespace, "namespace", "list_namespaces")
        if self.single_namespace is not None:
            if namespace != self.single_namespace:
                raise ToolInputError(f"unknown namespace {namespace!r}; namespaces: {self.single_namespace}")
            return self.root
        directory = self.root / namespace
        if not directory.is_dir():
            known = ", ".join(self.list_namespaces()) or "(none)"
            raise ToolInputError(f"unknown namespace {namespace!r}; namespaces: {known}")
        if not self._inside(directory):
            raise ToolInputError(
                f"namespace {namespace!r} is a link that points outside the log root; it is not served"
            )
        _check_readable(directory, namespace)
        return directory

    def _pod_files(self, directory: Path) -> dict[str, Path]:
        """Pod name -> file, the first suffix in ``LOG_SUFFIXES`` winning when two files share a name."""
        ranked: list[tuple[int, str, Path]] = []
        for child in directory.iterdir():
            pod = _pod_name(child)
            if pod is not None and child.is_file():
                ranked.append((LOG_SUFFIXES.index(child.suffix.lower()), pod, child))
        files: dict[str, Path] = {}
        for _, pod, path in sorted(ranked, key=lambda item: item[0]):
            files.setdefault(pod, path)
        return files

    def _pod_file(self, namespace: str, pod: str) -> Path:
        directory = self._namespace_dir(namespace)
        _check_name(pod, "pod", "list_pods")
        files = self._pod_files(directory)
        path = files.get(pod)
        if path is None:
            known = ", ".join(sorted(p for p, f in files.items() if self._inside(f))) or "(none)"
            raise ToolInputError(f"unknown pod {pod!r} in namespace {namespace!r}; pods: {known}")
        if not self._inside(path):
            raise ToolInputError(f"pod {pod!r} is a link that points outside the log root; it is not served")
        return path

    def _read_lines(self, namespace: str, path: Path) -> list[str]:
        """The file's lines; bytes that are not UTF-8 become U+FFFD instead of failing the whole read."""
        label = f"{namespace}/{path.name}"
        _check_readable(path, label)
        try:
            data = path.read_bytes()
        except PermissionError as exc:
            raise PermissionError(f"permission denied: {label}") from exc
        except OSError as exc:
            raise OSError(f"cannot read {label}: {exc.strerror or exc}") from exc
        return data.decode("utf-8", errors="replace").splitlines()
