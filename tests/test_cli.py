"""The leanloop command: one-line errors (never a traceback), warnings, --version, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leanloop import cli

runner = CliRunner()


def run_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["leanloop", *args])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    return int(exited.value.code or 0)


@pytest.mark.parametrize("command", ["estimate", "report"])
def test_a_broken_price_file_is_one_line_naming_the_command_and_the_file(
    command: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[x]\ninput = "a"\noutput = 1\n')
    monkeypatch.setenv("LEANLOOP_PRICES", str(prices))
    from leanloop.pricing import default_pricing

    default_pricing.cache_clear()
    try:
        code = run_main(
            monkeypatch, command, *(["--preset", "five-step"] if command == "estimate" else [str(tmp_path)])
        )
    finally:
        default_pricing.cache_clear()
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"leanloop {command}: price override file {prices}:")
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_version() -> None:
    result = runner.invoke(cli.app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("leanloop 0.")


def test_python_dash_m() -> None:
    done = subprocess.run([sys.executable, "-m", "leanloop", "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert done.stdout.startswith("leanloop ")


def test_demo_against_an_unreachable_api_fails_clearly_without_leaking_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-ant-api03-" + "Qq7" * 15
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    result = runner.invoke(cli.app, ["demo"], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "the API at http://127.0.0.1:9" in result.output
    assert "stopped: error: APIConnectionError" in result.output
    assert "Qq7Qq7" not in result.output


def test_a_blank_api_key_means_the_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "   ")
    result = runner.invoke(cli.app, ["demo", "--json"])
    assert result.exit_code == 0
    assert '"live_api": false' in result.stdout


# --- every user mistake: one plain line on stderr, exit 2, whatever the subcommand ------------------------------

_BOX = ("╭", "│", "╰", "Usage:", "Try '")


def _mistake(*args: str) -> str:
    """``leanloop ARGS``: a user mistake, so exit 2 and exactly one line on stderr, none on stdout."""
    result = runner.invoke(cli.app, list(args), env={"COLUMNS": "80"})
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stdout == "", result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert not any(mark in lines[0] for mark in _BOX), lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["report", "x.jsonl"], "leanloop report: x.jsonl: no such file or directory"),
        (["report", "--bogus", "x"], "leanloop report: no such option: --bogus (try 'leanloop report --help')"),
        (["bogus"], "leanloop: no such command 'bogus' (try 'leanloop --help')"),
        (["explain"], "leanloop explain: missing argument 'PATH' (try 'leanloop explain --help')"),
        (["whatif", "x", "--runs-per-day"], "leanloop whatif: option '--runs-per-day' requires an argument"),
        (["demo", "--budget", "abc"], "leanloop demo: --budget: input should be a valid number"),
        (
            ["demo", "--json", "false"],
            "leanloop demo: got unexpected extra argument(s) (false) (try 'leanloop demo --help')",
        ),
        (["estimate", "--iterations", "0"], "leanloop estimate: --iterations:"),
        (["emulator", "--port", "70000"], "leanloop emulator: --port:"),
        (["report", "x", "--format", "xml"], "leanloop report: --format:"),
    ],
)
def test_a_user_mistake_is_one_plain_line_and_exit_2(args: list[str], expected: str) -> None:
    assert _mistake(*args).startswith(expected)


def test_a_newline_in_a_path_stays_on_the_one_line() -> None:
    assert _mistake("report", "new\nline.jsonl") == "leanloop report: new\\nline.jsonl: no such file or directory"


def test_the_real_command_prints_one_line_too(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "leanloop", "report", str(tmp_path / "x.jsonl")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"leanloop report: {tmp_path / 'x.jsonl'}: no such file or directory\n"


@pytest.mark.parametrize("command", ["", "demo", "estimate", "report", "explain", "whatif", "emulator"])
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_with_dash_h_or_dash_dash_help(command: str, flag: str) -> None:
    args = [command, flag] if command else [flag]
    result = runner.invoke(cli.app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: leanloop {command}".rstrip() + " ")
    assert "<bool>" not in result.stdout and "<list" not in result.stdout and "<str>" not in result.stdout
    assert not any(mark in result.stdout for mark in ("╭", "│"))
    assert "-h, --help" in result.stdout


def test_flags_show_no_value_in_help() -> None:
    help_text = runner.invoke(cli.app, ["demo", "--help"], env={"COLUMNS": "100"}).stdout
    flag_lines = [line for line in help_text.splitlines() if line.strip().startswith(("--emulator", "--json"))]
    assert len(flag_lines) == 2
    assert all(line.split()[1][0].isupper() for line in flag_lines), flag_lines  # the help text, not a metavar


def test_the_command_list_gives_each_command_one_whole_line() -> None:
    help_text = runner.invoke(cli.app, ["--help"], env={"COLUMNS": "80"}).stdout
    commands = help_text.split("Commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in commands] == ["demo", "estimate", "report", "explain", "whatif", "emulator"]
    assert not any(line.rstrip().endswith("...") for line in commands), commands


def test_bare_leanloop_prints_the_help() -> None:
    result = runner.invoke(cli.app, [], env={"COLUMNS": "80"})
    assert result.exit_code == 2
    assert "Usage: leanloop " in result.output and "Commands:" in result.output


_TRACE = str(Path(__file__).parent / "fixtures" / "claude_code_e2e")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["report", _TRACE, "--runs-per-day", "inf"], "leanloop report: --runs-per-day: must be a finite number > 0"),
        (["whatif", _TRACE, "--runs-per-day", "nan"], "leanloop whatif: --runs-per-day: must be a finite number > 0"),
        (["whatif", _TRACE, "--runs-per-day", "-2"], "leanloop whatif: --runs-per-day: must be a finite number > 0"),
        (["whatif", _TRACE, "--summary-model", "claude-nope"], "leanloop whatif: --summary-model: unknown model"),
        (["estimate", "--runs-per-day", "inf"], "leanloop estimate: --runs-per-day: must be a finite number > 0"),
        (["estimate", "--system", "-1"], "leanloop estimate: --system:"),
        (["explain", _TRACE, "--min-tokens", "-1"], "leanloop explain: --min-tokens:"),
        (["emulator", "--time-scale", "inf"], "leanloop emulator: --time-scale: must be a finite number >= 0"),
        (["emulator", "--time-scale", "-1"], "leanloop emulator: --time-scale: must be a finite number >= 0"),
        (["emulator", "--fault-rate", "nan"], "leanloop emulator: --fault-rate: must be a finite number >= 0 and <= 1"),
        (["emulator", "--fault-rate", "1.5"], "leanloop emulator: --fault-rate: must be a finite number >= 0 and <= 1"),
        (["emulator", "--ttft-base", "inf"], "leanloop emulator: --ttft-base: must be a finite number >= 0"),
        (["emulator", "--prefill-rate", "inf"], "leanloop emulator: --prefill-rate: must be a finite number >= 1"),
        (["emulator", "--output-rate", "nan"], "leanloop emulator: --output-rate: must be a finite number >= 1"),
        (["emulator", "--port", "-1"], "leanloop emulator: --port:"),
        (["report", ""], "leanloop report: PATH: the path is empty"),
        (["explain", _TRACE, ""], "leanloop explain: PATH: the path is empty"),
        (
            ["whatif", "nope\u00e9\U0001f680.jsonl"],
            "leanloop whatif: nope\u00e9\U0001f680.jsonl: no such file or directory",
        ),
        (["emulator", "--scenario", "nope\u00e9.yaml"], "leanloop emulator: cannot read scenario nope\u00e9.yaml:"),
        (["emulator", "--log", "/nonexistent-dir/calls.jsonl"], "leanloop emulator: cannot write the call log"),
        (["demo", "--trace", ""], "leanloop demo: --trace: the path is empty"),
        (["report", _TRACE, "--output", ""], "leanloop report: --output: the path is empty"),
        (["emulator", "--scenario", ""], "leanloop emulator: --scenario: the path is empty"),
        (["emulator", "--replay", " "], "leanloop emulator: --replay: the path is empty"),
        (["emulator", "--log", ""], "leanloop emulator: --log: the path is empty"),
        (["emulator", "--host", ""], "leanloop emulator: --host: the host is empty"),
        (["report", _TRACE, "--format", "xml"], "leanloop report: --format: 'xml' is not one of 'table', 'json'"),
    ],
)
def test_bad_numbers_and_paths_are_one_line_in_every_command(args: list[str], expected: str) -> None:
    assert _mistake(*args).startswith(expected)
