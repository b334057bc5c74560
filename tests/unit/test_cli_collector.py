"""The garbage collector during the command line's start-up (issue #15): off while a command
starts (the imports make objects that live to the end; the collector's passes over them cost
about 2 ms), back on for click's commands, and as it was after an in-process call."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import atexit, gc, os, sys
os.environ["COLUMNS"] = "80"
atexit.register(lambda: sys.stderr.write(f"COLLECTING {gc.isenabled()}\\n"))
sys.argv = ["opcard", *sys.argv[1:]]
from opcard.cli import main
main()
"""


@pytest.mark.parametrize(
    ("args", "collecting"),
    [
        (["--help"], False),  # answered by opcard.cli.fast: short, freed by reference counting
        (["--version"], True),  # click's: the collector is on again before click runs
        (["cert", "export", "--slot", "nosuch"], True),  # a usage error: click's
    ],
)
def test_collector_at_exit(args: list[str], collecting: bool) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=60
    )
    assert f"COLLECTING {collecting}" in proc.stderr.splitlines(), proc.stderr


def test_in_process_call_leaves_the_collector_as_it_was(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    from opcard.cli import main

    monkeypatch.setenv("COLUMNS", "80")
    assert gc.isenabled()
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    assert "Usage: opcard" in capsys.readouterr().out
    assert gc.isenabled()
