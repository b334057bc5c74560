"""Every ```console example of docs/cli.md, run against the emulated card through pcscd.

The examples run in order, in ONE bash session (so ``export``, files and ``$?`` carry over),
in a temporary directory, with the venv's ``opcard`` first on PATH and ``OPCARD_READER`` set to
the emulator's reader. Each ``$ command`` line is run with its standard error merged into
standard output; the lines after it are its expected output, where a line ``...`` matches any
number of lines and ``[...]`` any text within a line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, require_tool

pytestmark = [pytest.mark.pcsc]

DOC = REPO / "docs" / "cli.md"
MARK = "@@opcard-doc-end"


@dataclass
class Example:
    line: int  # line number of the command in docs/cli.md
    command: str
    expected: list[str]


def examples(text: str) -> list[Example]:
    out: list[Example] = []
    in_console = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            in_console = line.strip() == "```console" and not in_console
            continue
        if not in_console:
            continue
        if line.startswith("$ "):
            out.append(Example(number, line[2:], []))
        else:
            assert out, f"docs/cli.md:{number}: output before any command"
            out[-1].expected.append(line)
    return out


def pattern(expected: list[str]) -> re.Pattern[str]:
    parts = []
    for line in expected:
        if line == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(r"[^\n]*?".join(re.escape(p) for p in line.split("[...]")) + r"\n")
    return re.compile("".join(parts), re.S)


def test_examples_are_found() -> None:
    found = examples(DOC.read_text())
    assert len(found) >= 30
    assert all(e.command for e in found)
    assert pattern(["a", "...", "b[...]d"]).fullmatch("a\nx\ny\nbcccd\n")
    assert not pattern(["a", "b"]).fullmatch("a\nx\nb\n")
    assert not pattern(["a[...]b"]).fullmatch("a\nb\n")


def test_exit_code_table_matches_the_code() -> None:
    from opcard.exitcodes import EXIT_CODE_DESCRIPTIONS

    rows = re.findall(r"^\| (\d+) \| (.+) \|$", DOC.read_text(), re.M)
    assert {int(code): text for code, text in rows} == {
        int(code): text for code, text in EXIT_CODE_DESCRIPTIONS.items()
    }


def test_documented_examples_run(emulator: Any, tmp_path: Path) -> None:
    require_tool("openssl")
    require_tool("bash")
    emu = emulator(personalize="demo")  # serial 10000001, as the examples show
    found = examples(DOC.read_text())
    script = ["exec 2>&1"]
    for example in found:
        script.append(example.command)
        script.append(f'__rc=$?; printf "\\n{MARK} %s\\n" "$__rc"; (exit $__rc)')
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPCARD_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        OPCARD_READER=emu.reader,
        PYTHONUNBUFFERED="1",
        LC_ALL="C",
        HOME=str(tmp_path),
        GNUPGHOME=str(tmp_path / "gnupg"),
    )
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc"],
        input="\n".join(script) + "\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    chunks = re.split(rf"\n?{MARK} (\d+)\n", proc.stdout)
    outputs = chunks[:-1:2]
    assert len(outputs) == len(found), proc.stdout[-3000:]
    for example, output in zip(found, outputs, strict=True):
        actual = output if output.endswith("\n") or not output else output + "\n"
        assert pattern(example.expected).fullmatch(actual), (
            f"docs/cli.md:{example.line}: $ {example.command}\n"
            f"--- documented ---\n{chr(10).join(example.expected)}\n--- actual ---\n{actual}"
        )
