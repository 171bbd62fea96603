"""The demo's log tools: what they serve, and that nothing a model passes in reaches a file outside the root."""

from __future__ import annotations

import inspect
import os
import re
import typing
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leanloop.demo import logs
from leanloop.demo.logs import SEARCH_MATCH_LIMIT, LogTools, ToolInputError
from leanloop.errors import ConfigError

SECRET = "SECRET-MARKER-outside-the-root"


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _build_tree(base: Path, *, unreadable: bool) -> Path:
    """A log root next to a directory that must never be served, reached by every trick the tests try."""
    outside = base / "outside"
    _write(outside / "secret.log", [SECRET])
    _write(outside / "checkout" / "api.log", [SECRET])
    root = base / "root"
    _write(root / "checkout" / "api.log", [f"2025-03-14T01:00:{i:02d}Z INFO http request {i}" for i in range(30)])
    _write(root / "checkout" / "web.txt", ["2025-03-14T01:00:00Z ERROR http boom", "second line"])
    _write(root / "checkout" / "api.txt", ["shadowed by api.log"])
    _write(root / "checkout" / ".hidden.log", ["hidden"])
    _write(root / "checkout" / "rotated.log.1", ["not a pod: unknown suffix"])
    _write(root / "other" / "notes", ["an extension-less file is a pod too"])
    os.symlink(outside, root / "escape")  # a namespace that leaves the root
    os.symlink(outside / "secret.log", root / "checkout" / "leak.log")  # a pod that leaves the root
    os.symlink(root / "checkout" / "api.log", root / "other" / "alias.log")  # a link that stays inside is fine
    if unreadable:
        os.chmod(_write(root / "payments" / "ledger-7d9f.log", ["2025-03-14T01:00:00Z INFO journal ok"]), 0)
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return _build_tree(tmp_path, unreadable=True)


@pytest.fixture(scope="module")
def confined_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_tree(tmp_path_factory.mktemp("confined"), unreadable=False)


def test_listings_show_only_log_files_inside_the_root(root: Path) -> None:
    tools = LogTools(root)
    assert tools.list_namespaces() == ["checkout", "other", "payments"]
    assert tools.list_pods("checkout") == ["api", "web"]
    assert tools.list_pods("other") == ["alias", "notes"]


def test_read_returns_the_tail_after_a_header(root: Path) -> None:
    tools = LogTools(root)
    text = tools.read_pod_logs("checkout", "api", tail_lines=3)
    assert text.splitlines() == [
        "==> checkout/api: lines 28-30 of 30 <==",
        "2025-03-14T01:00:27Z INFO http request 27",
        "2025-03-14T01:00:28Z INFO http request 28",
        "2025-03-14T01:00:29Z INFO http request 29",
    ]
    assert len(tools.read_pod_logs("checkout", "api").splitlines()) == 31  # default tail covers the whole file
    assert "request" in tools.read_pod_logs("other", "alias")


def test_log_suffix_wins_over_txt_and_empty_logs_say_so(root: Path) -> None:
    tools = LogTools(root)
    assert "shadowed" not in tools.read_pod_logs("checkout", "api")
    (root / "checkout" / "empty.log").write_text("")
    assert tools.read_pod_logs("checkout", "empty") == "==> checkout/empty: the log is empty <=="


@pytest.mark.parametrize("tail_lines", [0, -1, 10_001, True, "100", 1.5])
def test_tail_lines_out_of_range_or_not_an_integer(root: Path, tail_lines: object) -> None:
    with pytest.raises(ToolInputError, match="tail_lines"):
        LogTools(root).read_pod_logs("checkout", "api", tail_lines=tail_lines)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("namespace", "pod", "reason"),
    [
        ("..", "api", r"namespace '\.\.' contains '\.\.'"),
        ("../outside", "secret", "contains '..'"),
        ("checkout/../payments", "api", "contains '..'"),
        ("/etc", "passwd", "absolute path"),
        ("\\windows", "x", "absolute path"),
        ("C:", "x", "absolute path"),
        ("~root", "x", "absolute path"),
        ("checkout/api", "x", "path separator"),
        ("checkout\\api", "x", "path separator"),
        ("check\x00out", "api", "control character"),
        (".git", "config", "hidden"),
        ("", "api", "namespace is empty"),
        ("checkout", "..", r"pod '\.\.' contains '\.\.'"),
        ("checkout", "../../outside/secret", "contains '..'"),
        ("checkout", "/etc/passwd", "absolute path"),
        ("checkout", "api/x", "path separator"),
        ("checkout", "api\x00", "control character"),
        ("checkout", ".hidden", "hidden"),
        ("checkout", "x" * 300, "at most 255"),
    ],
)
def test_names_that_could_leave_the_root_are_refused_with_the_reason(
    root: Path, namespace: str, pod: str, reason: str
) -> None:
    with pytest.raises(ToolInputError, match=reason) as caught:
        LogTools(root).read_pod_logs(namespace, pod)
    assert "list_namespaces" in str(caught.value) or "list_pods" in str(caught.value)


def test_non_string_names_are_refused(root: Path) -> None:
    with pytest.raises(ToolInputError, match="namespace must be a string, got int"):
        LogTools(root).list_pods(7)  # type: ignore[arg-type]


def test_symlinks_out_of_the_root_are_refused(root: Path) -> None:
    tools = LogTools(root)
    with pytest.raises(ToolInputError, match="namespace 'escape' is a link that points outside the log root"):
        tools.list_pods("escape")
    with pytest.raises(ToolInputError, match="pod 'leak' is a link that points outside the log root"):
        tools.read_pod_logs("checkout", "leak")
    with pytest.raises(ToolInputError, match="outside the log root"):
        tools.search_logs("secret", namespace="escape")
    assert SECRET not in tools.search_logs("secret")


def test_unknown_names_list_what_exists(root: Path) -> None:
    tools = LogTools(root)
    with pytest.raises(ToolInputError, match="unknown namespace 'shipping'; namespaces: checkout, other, payments"):
        tools.list_pods("shipping")
    with pytest.raises(ToolInputError, match="unknown pod 'cart' in namespace 'checkout'; pods: api, web"):
        tools.read_pod_logs("checkout", "cart")
    with pytest.raises(ToolInputError, match=r"unknown pod 'rotated\.log'"):
        tools.read_pod_logs("checkout", "rotated.log")


def test_mode_000_is_permission_denied_even_for_root(root: Path) -> None:
    tools = LogTools(root)
    assert tools.list_pods("payments") == ["ledger-7d9f"]
    with pytest.raises(PermissionError) as caught:
        tools.read_pod_logs("payments", "ledger-7d9f")
    assert str(caught.value) == "permission denied: payments/ledger-7d9f.log"
    assert "[skipped: permission denied: payments/ledger-7d9f.log]" in tools.search_logs("journal")


def test_bytes_that_are_not_utf8_are_replaced(root: Path) -> None:
    (root / "checkout" / "bin.log").write_bytes(b"ok \xff\xfe line\nERROR \xc3( bad\n")
    text = LogTools(root).read_pod_logs("checkout", "bin")
    assert "ok \ufffd\ufffd line" in text
    assert "\ufffd" in LogTools(root).search_logs("bad")


def test_search_is_case_insensitive_prefixed_and_capped(root: Path) -> None:
    _write(root / "other" / "busy.log", [f"line {i} Connection REFUSED by db" for i in range(SEARCH_MATCH_LIMIT + 7)])
    result = LogTools(root).search_logs("connection refused").splitlines()
    assert result[0] == f"{SEARCH_MATCH_LIMIT + 7} lines match 'connection refused' in all namespaces"
    assert result[1] == "other/busy:1: line 0 Connection REFUSED by db"
    assert len(result) == 1 + SEARCH_MATCH_LIMIT + 2
    assert result[-2] == "[7 more matching lines not shown; narrow the pattern or pass a namespace]"
    assert result[-1] == "[skipped: permission denied: payments/ledger-7d9f.log]"


def test_search_regex_namespace_and_plain_text_fallback(root: Path) -> None:
    tools = LogTools(root)
    assert tools.search_logs("request (1|2)$", namespace="checkout").splitlines()[1:] == [
        "checkout/api:2: 2025-03-14T01:00:01Z INFO http request 1",
        "checkout/api:3: 2025-03-14T01:00:02Z INFO http request 2",
    ]
    fallback = tools.search_logs("request (1").splitlines()
    assert "not a valid regular expression" in fallback[0]
    assert fallback[0].startswith("0 lines match")
    assert tools.search_logs("nothing like this").startswith("0 lines match")
    with pytest.raises(ToolInputError, match="pattern is empty"):
        tools.search_logs("  ")
    with pytest.raises(ToolInputError, match="at most 200"):
        tools.search_logs("a" * 201)


def test_for_directory_flat_is_one_namespace_named_after_it(tmp_path: Path) -> None:
    flat = tmp_path / "server-logs"
    for name in ("Apache_2k.log", "notes.txt", "syslog", "archive.gz", ".hidden.log"):
        _write(flat / name, ["2025-03-14T01:00:00Z INFO x"])
    tools = LogTools.for_directory(flat)
    assert tools.list_namespaces() == ["server-logs"]
    assert tools.list_pods("server-logs") == ["Apache_2k", "notes", "syslog"]
    assert "INFO x" in tools.read_pod_logs("server-logs", "Apache_2k")
    with pytest.raises(ToolInputError, match="unknown namespace 'logs'; namespaces: server-logs"):
        tools.list_pods("logs")


def test_for_directory_with_subdirectories_is_a_tree(root: Path) -> None:
    assert LogTools.for_directory(root).list_namespaces() == ["checkout", "other", "payments"]


def test_for_directory_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a directory"):
        LogTools.for_directory(tmp_path / "missing")


def test_for_directory_on_the_real_server_logs(shared_data: Path) -> None:
    directory = shared_data / "server-logs"
    before = sorted(p.name for p in directory.iterdir())
    tools = LogTools.for_directory(directory)
    assert tools.list_namespaces() == ["server-logs"]
    assert tools.list_pods("server-logs") == ["Apache_2k", "OpenStack_2k"]
    apache = tools.read_pod_logs("server-logs", "Apache_2k", tail_lines=5).splitlines()
    assert apache[0] == "==> server-logs/Apache_2k: lines 1996-2000 of 2000 <=="
    assert tools.search_logs("workerEnv in error state 6").startswith("369 lines match")
    assert sorted(p.name for p in directory.iterdir()) == before


def test_tools_are_typed_and_documented_for_schema_generation(root: Path) -> None:
    """The agent builds each tool's JSON schema from its signature and Google-style docstring."""
    tools = LogTools(root).tools()
    assert [tool.__name__ for tool in tools] == ["list_namespaces", "list_pods", "read_pod_logs", "search_logs"]
    json_friendly = {str, int, str | None, list[str]}
    for tool in tools:
        hints = typing.get_type_hints(tool)
        assert set(hints.values()) <= json_friendly, tool.__name__
        doc = inspect.getdoc(tool) or ""
        summary, *rest = doc.split("\n")
        assert summary.endswith("."), tool.__name__
        parameters = list(inspect.signature(tool).parameters)
        if parameters:
            args = "\n".join(rest).split("Args:\n", 1)[1]
            assert re.findall(r"^    (\w+): \S", args, re.MULTILINE) == parameters, tool.__name__


def test_public_names() -> None:
    assert sorted(logs.__all__) == sorted(
        ["DEFAULT_TAIL_LINES", "LOG_SUFFIXES", "MAX_TAIL_LINES", "SEARCH_MATCH_LIMIT", "LogTools", "ToolInputError"]
    )


_PIECES = st.sampled_from(["..", ".", "/", "\\", "\x00", "~", "outside", "secret", "checkout", "api", "é", "名", " "])
_NAMES = st.one_of(st.lists(_PIECES, max_size=6).map("".join), st.text(max_size=12))


def _outcome(call: Callable[[], object]) -> str:
    """What a model would see: the result, or the refusal's message."""
    try:
        return str(call())
    except ToolInputError as error:
        return f"refused: {error}"


@settings(max_examples=150, deadline=None)
@given(namespace=_NAMES, pod=_NAMES)
def test_no_name_reaches_outside_the_root(confined_root: Path, namespace: str, pod: str) -> None:
    tools = LogTools(confined_root)
    for outcome in (
        _outcome(lambda: tools.read_pod_logs(namespace, pod)),
        _outcome(lambda: tools.list_pods(namespace)),
        _outcome(lambda: tools.search_logs("secret|marker", namespace=namespace)),
    ):
        assert SECRET not in outcome
