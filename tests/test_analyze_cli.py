"""report, explain and whatif at the command line: unreadable paths are one warning each, an import without a model
call is one line and exit 1, a bad price file is one line and exit 2."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leanloop import cli
from leanloop.pricing import default_pricing
from test_importers import AS_ROOT, projects_with_unreadable_paths, refuse_to_read, session_lines, write_jsonl

runner = CliRunner()
COMMANDS = ("report", "explain", "whatif")


def lines_naming(text: str, path: Path) -> list[str]:
    return [line for line in text.splitlines() if str(path) in line]


@pytest.mark.parametrize("command", COMMANDS)
def test_each_unreadable_path_is_one_warning_and_the_rest_is_imported(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    projects, locked_dir, locked_file = projects_with_unreadable_paths(tmp_path)
    refuse_to_read(monkeypatch, locked_dir, locked_file)
    result = runner.invoke(cli.app, [command, str(projects), "--format", "json"])
    assert result.exit_code == 0, result.output
    for path in (locked_dir, locked_file):
        assert lines_naming(result.stderr, path) == [
            f"leanloop: warning: cannot read {path}: Permission denied (skipped)"
        ]
    assert '"calls": 8' in result.stdout


@AS_ROOT
def test_a_chmod_000_file_named_on_the_command_line_is_a_warning(tmp_path: Path) -> None:
    locked = write_jsonl(tmp_path / "locked.jsonl", session_lines("s1", 1))
    readable = write_jsonl(tmp_path / "readable.jsonl", session_lines("s2", 2))
    locked.chmod(0)
    try:
        result = runner.invoke(cli.app, ["report", str(locked), str(readable), "--format", "json"])
        alone = runner.invoke(cli.app, ["report", str(locked)])
    finally:
        locked.chmod(0o644)
    assert result.exit_code == 0, result.output
    assert lines_naming(result.stderr, locked) == [
        f"leanloop: warning: cannot read {locked}: Permission denied (skipped)"
    ]
    assert alone.exit_code == 1
    assert f"no model calls found in {locked} (nothing readable: 1 unreadable path)" in alone.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_nothing_readable_exits_1(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, locked_dir, locked_file = projects_with_unreadable_paths(tmp_path)
    refuse_to_read(monkeypatch, locked_dir, locked_file)
    result = runner.invoke(cli.app, [command, str(locked_dir), str(locked_file)])
    assert result.exit_code == 1
    assert result.stdout == ""
    message = f"leanloop: no model calls found in {locked_dir}, {locked_file} (nothing readable: 2 unreadable paths)"
    assert result.stderr.splitlines()[-1] == message


def no_calls_inputs(root: Path, shared: Path) -> Iterator[tuple[Path, str]]:
    """Inputs without a single model call, each with the reason the message must give."""
    empty = root / "empty.jsonl"
    empty.write_text("")
    yield empty, "0 lines skipped: 1 empty file"
    (root / "empty-dir").mkdir()
    yield root / "empty-dir", "no files"
    binary = root / "core.bin"
    binary.write_bytes(bytes(range(256)) * 8)  # eight newlines, and a last line without one
    yield binary, "9 lines skipped: 1 file of no known trace format"
    yield shared / "server-logs" / "Apache_2k.log", "2,000 lines skipped: 1 file of no known trace format"


@pytest.mark.parametrize("command", COMMANDS)
def test_input_without_a_model_call_is_one_line_and_exit_1(command: str, tmp_path: Path, shared_data: Path) -> None:
    for path, reason in no_calls_inputs(tmp_path, shared_data):
        for output_format in ("table", "json"):
            result = runner.invoke(cli.app, [command, str(path), "--format", output_format])
            assert result.exit_code == 1, (path, result.output)
            assert result.stdout == ""  # no table of zeros, no JSON of zeros
            assert result.stderr.splitlines()[-1] == f"leanloop: no model calls found in {path} ({reason})"


def test_report_to_a_file_writes_nothing_without_a_model_call(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = tmp_path / "report.csv"
    result = runner.invoke(cli.app, ["report", str(empty), "--format", "csv", "-o", str(out)])
    assert result.exit_code == 1
    assert not out.exists()


def run_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["leanloop", *args])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    return int(exited.value.code or 0)


@pytest.fixture
def fresh_pricing() -> Iterator[None]:
    default_pricing.cache_clear()  # it reads LEANLOOP_PRICES once
    yield
    default_pricing.cache_clear()


@pytest.mark.usefixtures("fresh_pricing")
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("missing.toml", None, "price override file {path}: No such file or directory"),
        ("prices.toml", "[claude-x\ninput = 3\n", "price override file {path} is not valid toml: "),
        ("prices.json", '{"claude-x": {"input": 3,}}', "price override file {path} is not valid json: "),
    ],
)
def test_a_bad_price_file_is_one_line_and_exit_2(  # noqa: PLR0917 - one per parameter
    command: str,
    name: str,
    text: str | None,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prices = tmp_path / name
    if text is not None:
        prices.write_text(text)
    monkeypatch.setenv("LEANLOOP_PRICES", str(prices))
    log = write_jsonl(tmp_path / "s.jsonl", session_lines("s1", 2))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    for path in (log, empty):  # checked before any file is read: even an input without calls says so
        code = run_main(monkeypatch, command, str(path))
        err = capsys.readouterr().err
        assert code == 2
        assert err.startswith(f"leanloop {command}: " + expected.format(path=prices))
        assert len(err.strip().splitlines()) == 1
        assert "Traceback" not in err
