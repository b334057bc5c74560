"""Shell completion of ``opcard`` (click's, docs/cli.md "Shell completion"): the installed
console script answers click's completion protocol (``_OPCARD_COMPLETE=bash_complete`` with
``COMP_WORDS``/``COMP_CWORD``; zsh and fish likewise), through the lazily loaded sub-commands of
``opcard.cli.app.LazyGroup``; the bash script it writes for ``eval`` completes in a real bash;
and completing a root command name loads no command module (the names and their help come
from ``SUMMARIES``, and equal what click gives with every module loaded). No card is needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.shell_completion import CompletionItem

from opcard.cli.app import COMMANDS, cli

BIN = Path(sys.executable).parent
OPCARD = BIN / "opcard"


def complete(words: str, cword: int | str, shell: str = "bash") -> list[str]:
    """The lines the console script answers to one completion request of ``shell``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPCARD_")}
    env.update(_OPCARD_COMPLETE=f"{shell}_complete", COMP_WORDS=words, COMP_CWORD=str(cword))
    proc = subprocess.run([str(OPCARD)], capture_output=True, env=env, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stderr == b""
    return proc.stdout.decode().splitlines()


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [
        ("opcard ce", 1, ["plain,cert"]),
        ("opcard s", 1, ["plain,serve", "plain,sign", "plain,status"]),
        ("opcard cert ", 2, ["plain,delete", "plain,export", "plain,import"]),
        ("opcard cert export --slot ", 4, ["plain,sig", "plain,dec", "plain,aut"]),
        ("opcard cert export --format d", 4, ["plain,der"]),
        ("opcard --reader R cert ex", 4, ["plain,export"]),
        ("opcard sign --hash sha3", 3, ["plain,sha384"]),
        ("opcard sign ", 2, ["file,"]),
        ("opcard --re", 1, ["plain,--reader"]),
        ("opcard pin ", 2, None),  # checked below: the pin group's own sub-commands
    ],
)
def test_bash_protocol(words: str, cword: int, expected: list[str] | None) -> None:
    got = complete(words, cword)
    if expected is None:
        from opcard.cli.pin import pin

        assert isinstance(pin, click.Group)
        expected = [f"plain,{name}" for name in pin.list_commands(click.Context(pin))]
        assert len(expected) >= 3
    assert got == expected


def test_zsh_and_fish_protocols_carry_the_help() -> None:
    from opcard.cli.cert import cert

    short = cert.get_short_help_str()
    assert short.startswith("Export, import or delete")
    assert complete("opcard ce", 1, "zsh") == ["plain", "cert", short]
    assert complete("opcard ce", "ce", "fish") == [f"plain,cert\t{short}"]


def test_the_sourced_scripts() -> None:
    """What docs/cli.md tells each shell to load: bash's completes in a real bash."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPCARD_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    script = (
        'eval "$(_OPCARD_COMPLETE=bash_source opcard)"\n'
        'COMP_WORDS=(opcard cert export --slot ""); COMP_CWORD=4\n'
        "_opcard_completion opcard\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    bash = subprocess.run(["bash", "-c", script], capture_output=True, env=env, timeout=30)
    assert bash.returncode == 0, bash.stderr.decode(errors="replace")
    assert bash.stdout.decode().split() == ["sig", "dec", "aut"]
    for shell, marker in (("zsh", "#compdef opcard"), ("fish", "--command opcard")):
        source = subprocess.run(
            [str(OPCARD)], capture_output=True, env=dict(env, _OPCARD_COMPLETE=f"{shell}_source")
        )
        assert source.returncode == 0
        assert marker in source.stdout.decode(), shell


def test_root_completion_loads_no_command_module() -> None:
    code = (
        "import sys\n"
        "from opcard.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('opcard.cli.'))),"
        " file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPCARD_")}
    env.update(_OPCARD_COMPLETE="zsh_complete", COMP_WORDS="opcard ", COMP_CWORD="1")
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, env=env, timeout=30, check=True
    )
    assert proc.stdout.decode().splitlines()[1::3] == sorted(COMMANDS)
    loaded = set(proc.stderr.decode().split())
    modules = {module for module, _ in COMMANDS.values()}
    assert loaded, "the probe must list the command line's own modules"
    assert not loaded & modules, f"completion imported {sorted(loaded & modules)}"


def _items(items: list[CompletionItem]) -> list[tuple[str, str | None, str]]:
    return [(i.value, i.help, i.type) for i in items]


@pytest.mark.parametrize("incomplete", ["", "s", "ce", "--", "x"])
def test_lazy_completion_equals_clicks(incomplete: str) -> None:
    """The names and short help LazyGroup completes without loading a module are those
    click's own Group.shell_complete gives, which loads every command."""
    ctx = click.Context(cli, info_name="opcard")
    ours = _items(cli.shell_complete(ctx, incomplete))
    theirs = _items(click.Group.shell_complete(cli, ctx, incomplete))
    assert ours == theirs
    if incomplete == "":
        assert [value for value, _, _ in ours if not value.startswith("-")] == sorted(COMMANDS)
