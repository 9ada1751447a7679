"""Who can see what: ``inpars dashboard`` listens on 127.0.0.1 by default; started on another
address (``--host`` / ``--address``) it fixes the runs directory to the command line's, and the
sidebar's "Runs directory" box is read-only, so a visitor cannot point the app at other folders
of the server."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "dashboard" / "app.py"


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("dashboard.example.org", False),
        ("", False),
    ],
)
def test_which_addresses_serve_this_machine_only(address: str, local: bool) -> None:
    from inpars_core.processes import is_loopback

    assert is_loopback(address) is local


@pytest.mark.parametrize(
    ("value", "fixed"), [(None, False), ("", False), ("0", False), ("1", True), ("yes", True)]
)
def test_the_app_reads_the_mode_the_cli_sets(value: str | None, fixed: bool) -> None:
    from dashboard import loading
    from inpars_core import processes

    assert loading.FIXED_RUNS_DIR_ENV == processes.FIXED_RUNS_DIR_ENV
    environ = {} if value is None else {loading.FIXED_RUNS_DIR_ENV: value}
    assert loading.runs_dir_is_fixed(environ) is fixed


@pytest.mark.parametrize(
    ("flags", "fixed"),
    [
        ([], False),
        (["--address", "127.0.0.1"], False),
        (["--host", "localhost"], False),
        (["--host", "0.0.0.0"], True),
        (["--address", "0.0.0.0"], True),
        (["--host", "10.1.2.3"], True),
    ],
)
def test_the_cli_fixes_the_runs_dir_when_listening_beyond_this_machine(
    flags: list[str], fixed: bool, tmp_path: Path, monkeypatch, capsys
) -> None:
    from inpars_core import cli, processes

    monkeypatch.setenv(processes.FIXED_RUNS_DIR_ENV, "1")  # inherited from a shell: never trusted
    calls = []
    monkeypatch.setattr(
        processes, "run_forwarding_signals", lambda cmd, env: calls.append((cmd, env)) or 0
    )
    assert cli.main(["dashboard", "--runs-dir", str(tmp_path), *flags]) == 0
    ((command, env),) = calls
    address = flags[1] if flags else "127.0.0.1"
    assert command[command.index("--server.address") + 1] == address
    assert env["INPARS_RUNS_DIR"] == str(tmp_path.resolve())
    assert (env.get(processes.FIXED_RUNS_DIR_ENV) == "1") is fixed
    err = capsys.readouterr().err
    assert ("other machines can reach the dashboard" in err) is fixed


def _sidebar(runs_dir: Path, monkeypatch, *, fixed: bool):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("INPARS_RUNS_DIR", str(runs_dir))
    if fixed:
        monkeypatch.setenv("INPARS_DASHBOARD_FIXED_RUNS_DIR", "1")
    else:
        monkeypatch.delenv("INPARS_DASHBOARD_FIXED_RUNS_DIR", raising=False)
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.run()
    assert not app.exception, app.exception
    return app


def _chosen(app) -> str:
    from dashboard.ui import CONTEXT_KEY

    return app.session_state[CONTEXT_KEY].runs_dir


@pytest.mark.parametrize("fixed", [False, True], ids=["local", "served"])
def test_the_runs_directory_box_is_read_only_when_served(
    fixed: bool, tmp_path: Path, monkeypatch
) -> None:
    mine = tmp_path / "runs"
    mine.mkdir()
    elsewhere = tmp_path / "someone-elses-folder"
    elsewhere.mkdir()
    app = _sidebar(mine, monkeypatch, fixed=fixed)
    box = app.sidebar.text_input[0]
    assert box.label == "Runs directory" and box.value == str(mine)
    assert box.disabled is fixed
    if fixed:  # a browser cannot type into it; a forged widget state is overridden
        app.session_state["runs_dir"] = str(elsewhere)
        app.run()
    else:
        box.set_value(str(elsewhere)).run()
    assert not app.exception, app.exception
    assert _chosen(app) == (str(mine) if fixed else str(elsewhere))
    assert app.sidebar.text_input[0].value == (str(mine) if fixed else str(elsewhere))
