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


def test_a_broken_price_file_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[x]\ninput = "a"\noutput = 1\n')
    monkeypatch.setenv("LEANLOOP_PRICES", str(prices))
    from leanloop.pricing import default_pricing

    default_pricing.cache_clear()
    try:
        code = run_main(monkeypatch, "estimate", "--preset", "five-step")
    finally:
        default_pricing.cache_clear()
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"leanloop: price override file {prices}:")
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
