"""The click-free front end (:mod:`opcard.cli.fast`) against click, differentially.

``opcard.cli.main`` lets :mod:`opcard.cli.fast` answer help, completion and the commands
``list``, ``status``, ``cert export`` and ``sign`` without importing click, from tables
generated out of the click commands (:mod:`opcard.cli.maketable`); when it is not sure it
declines (returns None) and click runs the same arguments. Whenever it does not decline it must
do exactly what click does. Checked here:

- the tables are current (``maketable --check``);
- parsing: argv drawn by hypothesis from every command's own options and arguments (long and
  short forms, ``--opt=value``, bundled short flags, ``--``, values starting with ``-``, repeats,
  unknown options, missing values, extra arguments, bad choices and numbers, the OPCARD_*
  variables set, empty or bad): :func:`opcard.cli.fast.resolve` declines or gives the values of
  click's ``make_context`` chain (``ctx.params`` of the root and of the command), and when it
  declines it has opened nothing;
- help: every command path at 4 terminal widths, byte for byte;
- completion: bash, zsh and fish, every prefix of every command path, option names and values,
  ``--opt=`` forms, ``--``, unknown words (systematically and drawn by hypothesis): the same
  bytes as click's ``shell_complete``; quotes and escapes are declined, plain words are not;
- whole runs in process (emulated cards in loopback readers): ``list``, ``status``, ``cert
  export`` and ``sign`` command lines drawn by hypothesis, with the OPCARD_* variables, PINs
  from every source (the prompt too) and every kind of failure a command can raise: same exit
  code, output, error lines and files written;
- hostile input (NUL, lone surrogates, huge argument lists, odd whitespace, streams that are
  not UTF-8, no standard input or output): no traceback of fast's own;
- on the emulated card through pcscd (one module-scoped card): ``list``, ``status``, ``cert
  export``, ``sign`` and their error paths give the same stdout, stderr, exit code and APDUs
  through ``python -m opcard.cli`` and through click alone, and the former never imports
  click.

``OPCARD_FAST_EXAMPLES=N`` sets the number of hypothesis examples (300 by default).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opcard.cli import fast, maketable
from opcard.cli.app import cli
from opcard.cli.table import NODES

PATHS = sorted(NODES)
ENV_NAMES = ("OPCARD_READER", "OPCARD_SERIAL", "OPCARD_CARD_TIMEOUT")
FAST_SETTINGS = settings(
    max_examples=int(os.environ.get("OPCARD_FAST_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def test_tables_are_current() -> None:
    assert maketable.main(["--check"]) == 0


# --- in-process plumbing ---------------------------------------------------------------------


@contextlib.contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """os.environ with ``values`` set (None: removed) and every other OPCARD_* and completion
    variable removed; put back afterwards."""
    saved = dict(os.environ)
    try:
        for k in list(os.environ):
            if k.startswith(("OPCARD_", "_OPCARD_", "COMP_")) or k in ("COLUMNS", "LINES"):
                del os.environ[k]
        for k, v in values.items():
            if v is not None:
                os.environ[k] = v
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class Captured:
    """Standard input, output and error replaced by UTF-8 streams over bytes."""

    def __init__(self, stdin: bytes = b"") -> None:
        self.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
        self.out = io.BytesIO()
        self.err = io.BytesIO()
        self.stdout = io.TextIOWrapper(self.out, encoding="utf-8", write_through=True)
        self.stderr = io.TextIOWrapper(self.err, encoding="utf-8", write_through=True)

    def __enter__(self) -> Captured:
        self.saved = sys.stdin, sys.stdout, sys.stderr
        sys.stdin, sys.stdout, sys.stderr = self.stdin, self.stdout, self.stderr
        return self

    def __exit__(self, *exc: object) -> None:
        self.stdout.flush()
        self.stderr.flush()
        sys.stdin, sys.stdout, sys.stderr = self.saved

    @property
    def output(self) -> bytes:
        self.stdout.flush()
        return self.out.getvalue()

    @property
    def errors(self) -> bytes:
        self.stderr.flush()
        return self.err.getvalue()


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


class ClickRefused(Exception):
    """click would not give values for these arguments (a usage error, --version, ...)."""


def shown(value: Any) -> Any:
    """A parameter value for comparison: an open file by its name (standard input as '-')."""
    if isinstance(value, tuple):
        return tuple(shown(v) for v in value)
    if hasattr(value, "read"):
        return "-" if value is sys.stdin.buffer else value.name
    return value


def click_resolve(
    args: list[str], captured: Captured
) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """What click's ``make_context`` chain gives for ``args``: (path, root params, command
    params), the command params None when the help of the path was printed (on ``captured``)."""
    contexts: list[click.Context] = []
    path = ""
    root: dict[str, Any] = {}
    try:
        ctx = cli.make_context("opcard", list(args))
        contexts.append(ctx)
        root = dict(ctx.params)
        command: click.Command = cli
        while isinstance(command, click.Group):
            rest = [*ctx._protected_args, *ctx.args]
            if not rest:
                raise ClickRefused("missing command")
            name, sub, rest = command.resolve_command(ctx, rest)
            assert name is not None and sub is not None
            path = f"{path} {name}".lstrip()
            command = sub
            ctx = sub.make_context(name, rest, parent=ctx)
            contexts.append(ctx)
        return (
            path,
            {k: shown(v) for k, v in root.items()},
            {k: shown(v) for k, v in ctx.params.items()},
        )
    except click.exceptions.Exit as e:
        if e.exit_code == 0 and captured.output.startswith(
            f"Usage: opcard {path}".rstrip().encode()
        ):
            return path, {k: shown(v) for k, v in root.items()}, None
        raise ClickRefused(f"exit {e.exit_code}") from e
    except click.ClickException as e:
        raise ClickRefused(e.format_message()) from e
    finally:
        for c in reversed(contexts):
            c.close()


def fast_resolve(args: list[str]) -> tuple[str, dict[str, Any], dict[str, Any] | None] | None:
    """What opcard.cli.fast makes of ``args`` (None: declined); files opened and named as
    click's, and closed again."""
    before = open_fds()
    try:
        path, root, values = fast.resolve(list(args))
        if values is not None:
            files = fast._open_files(NODES[path], values)
            try:
                values = {k: shown(v) for k, v in values.items()}
            finally:
                for f in files:
                    f.close()
    except fast.Decline:
        assert open_fds() == before, "declined with files left open"
        return None
    return path, root, values


# --- parsing, differential -------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A readable file, a directory and a path that does not exist."""
    base = tmp_path_factory.mktemp("fast")
    (base / "data.bin").write_bytes(b"to be signed\n")
    (base / "dir").mkdir()
    return {
        "file": str(base / "data.bin"),
        "dir": str(base / "dir"),
        "missing": str(base / "missing"),
    }


NUMBERS = ["0", "1", "2.5", " 3 ", "-1", "0.05", "0.04", "60", "61", "4096", "4097", "1e3"]
NUMBERS += ["nan", "inf", "-inf", "1e400", "x", "", "0x10", "1_000", "\u0663", "+5", "5."]
STRINGS = ["x", "-", "--", "-x", "--x", "=", "a=b", "", " ", "ü", "Virtual PCD 00 00", "-h"]


def values_for(p: dict[str, Any], files: dict[str, str]) -> st.SearchStrategy[str]:
    """Values for parameter ``p``: valid ones of its type and wrong ones."""
    kind = p["type"]
    wrong = st.sampled_from(["bogus", "", "-", "-x", "--"])
    if kind[0] == "choice":
        choices = st.sampled_from(kind[1])
        return st.one_of(
            choices,
            choices,
            choices,
            choices.map(str.upper),
            choices.map(lambda c: c.title()),
            choices.map(lambda c: c[:-1]),
            wrong,
        )
    if kind[0] in ("float", "int"):
        return st.one_of(st.sampled_from(NUMBERS), st.sampled_from(["1", "2.5", "60", "0.5"]))
    if kind[0] in ("path", "file", "other"):
        return st.sampled_from([*files.values(), files["file"], "-", "-", "", "bogus", "-x"])
    return st.one_of(st.sampled_from(STRINGS), st.text(max_size=5))


@st.composite
def option_use(draw: st.DrawFn, node: dict[str, Any], files: dict[str, str]) -> list[str]:
    """One use of one of ``node``'s options or arguments, in one of the forms click takes."""
    params = [p for p in node["params"] if not p["hidden"] and not p["is_help"]]
    if draw(st.integers(0, 15)) == 0:
        return [draw(st.sampled_from(["-h", "--help"]))]
    if not params:
        return []
    p = draw(st.sampled_from(params))
    if p["argument"]:
        return [draw(values_for(p, files))]
    names = [*p["opts"], *p["secondary"]]
    name = draw(st.sampled_from(names))
    if p["flag"]:
        form = draw(st.sampled_from(["plain", "plain", "eq", "bundle"]))
        if form == "eq":
            return [f"{name}=x"]
        if form == "bundle":
            shorts = [
                n
                for q in node["params"]
                if not q["argument"] and (not q["is_help"] or draw(st.integers(0, 7)) == 0)
                for n in q["opts"]
                if len(n) == 2 and n[1] != "-"
            ]
            if shorts:
                extra = draw(st.lists(st.sampled_from(shorts), min_size=1, max_size=3))
                return ["-" + "".join(n[1] for n in [name, *extra] if len(n) == 2)]
        return [name]
    value = draw(values_for(p, files))
    form = draw(st.sampled_from(["two", "two", "two", "eq", "eq", "attached", "missing"]))
    if form == "eq":
        return [f"{name}={value}"]
    if form == "attached" and len(name) == 2:
        return [name + value]
    if form == "missing":
        return [name]
    return [name, value]


NOISE = ["--", "-h", "--help", "--version", "--bogus", "-Z", "extra", "-", "-vh", "-hv", "--=x"]


@st.composite
def command_lines(draw: st.DrawFn, files: dict[str, str]) -> list[str]:
    """A command line: root options, a command path, the command's options and arguments,
    with now and then a word out of place."""
    path = draw(st.sampled_from(PATHS))
    words = path.split()
    args: list[str] = []
    for depth in range(len(words) + 1):
        node = NODES[" ".join(words[:depth])]
        for _ in range(draw(st.integers(0, 3 if depth == len(words) else 2))):
            args += draw(option_use(node, files))
        if depth < len(words):
            args.append(words[depth])
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2]))):
        word = draw(st.one_of(st.sampled_from(NOISE), st.sampled_from(PATHS[1:])))
        args.insert(draw(st.integers(0, len(args))), word)
    return args


ENVIRONMENTS = st.fixed_dictionaries(
    {
        "OPCARD_READER": st.sampled_from([None, None, "", "Reader X"]),
        "OPCARD_SERIAL": st.sampled_from([None, None, "", "0C11A001"]),
        "OPCARD_CARD_TIMEOUT": st.sampled_from([None, None, "", "5", "0", "-1", "x", " 7 "]),
    }
)


class Tally:
    def __init__(self) -> None:
        self.answered = 0
        self.declined = 0
        self.help = 0
        self.runs = self.runs_ok = self.runs_declined = 0
        self.needless: list[list[str]] = []  # declined where click gave values


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    t = Tally()
    yield t


def compare_resolve(args: list[str], env: dict[str, str | None], tally: Tally) -> None:
    with environment(**env), Captured(b"signed from stdin\n") as io_:
        got = fast_resolve(args)
        assert io_.output == io_.errors == b"", "fast wrote while resolving"
        try:
            expected: Any = click_resolve(args, io_)
        except ClickRefused as e:
            expected = e
        except Exception as e:  # click itself failed (a traceback for the user)
            expected = e
    if got is None:
        tally.declined += 1
        if not isinstance(expected, Exception):
            tally.needless.append(args)

        return
    assert not isinstance(expected, Exception), f"fast gave {got}, click: {expected!r}"
    assert got == expected
    tally.answered += 1
    tally.help += got[2] is None


@FAST_SETTINGS
@given(data=st.data())
def test_resolve_equals_click(data: st.DataObject, files: dict[str, str], tally: Tally) -> None:
    args = data.draw(command_lines(files), label="args")
    env = data.draw(ENVIRONMENTS, label="env")
    compare_resolve(args, env, tally)


def test_resolve_answered_often(tally: Tally) -> None:
    """The differential test above compared something: fast answered a good share of the
    command lines (commands and help), and declined others."""
    total = tally.answered + tally.declined
    if not total:
        pytest.skip("test_resolve_equals_click did not run in this session")
    assert total >= 200
    assert tally.answered >= total // 5 and tally.declined >= total // 10
    assert tally.help >= 10 and tally.answered - tally.help >= 20
    # where click gives values and fast declines: only click's leniencies fast leaves to it
    # (a required option whose default is None, a NaN or infinite number, a command name
    # that is an option after '--')
    assert len(tally.needless) <= total // 20, tally.needless


def test_what_the_table_says_fast_cannot_do_is_clicks(monkeypatch: pytest.MonkeyPatch) -> None:
    """None of today's commands is deprecated or takes no arguments as a request for help,
    and no parameter has a callback, a prompt, a count, several values or a type of its own;
    should one come, the table says so and fast leaves the command line to click."""
    import copy

    def changed(path: str, param: str | None, **change: Any) -> None:
        nodes = copy.deepcopy(NODES)
        target = nodes[path]
        if param is not None:
            target = next(p for p in target["params"] if p["name"] == param)
        target.update(change)
        monkeypatch.setattr(fast, "NODES", nodes)

    assert fast.resolve(["cert", "export", "--slot", "sig"])[0] == "cert export"
    for path, param, change in [
        ("cert export", None, {"plain": False}),  # deprecated: click warns when it runs
        ("cert export", None, {"no_args_is_help": True}),
        ("cert export", "slot", {"plain": False}),  # a callback, a prompt, nargs 2...
        ("cert export", "slot", {"type": ("other",)}),
        ("cert export", "fmt", {"plain": False}),  # even when not given
    ]:
        changed(path, param, **change)
        with pytest.raises(fast.Decline):
            fast.resolve(["cert", "export"] + (["--slot", "sig"] if param == "slot" else []))
    changed("cert export", "slot", type=("other",))
    env = {"_OPCARD_COMPLETE": "bash_complete", "COMP_CWORD": "4"}
    with environment(**env, COMP_WORDS="opcard cert export --slot "), Captured() as io_:
        assert fast.main([]) is None  # its own completion
    assert io_.output == b""


def test_maketable_marks_what_fast_cannot_follow() -> None:
    """maketable marks a command or parameter not plain (fast then declines it) for what
    click does that fast does not: here on small click commands of the test's own."""

    def table(command: click.Command, **context: Any) -> dict[str, Any]:
        nodes: dict[str, Any] = {}
        with command.make_context("opcard", [], resilient_parsing=True, **context) as ctx:
            maketable._node(command, ctx, nodes, {w: {} for w in maketable.HELP_WIDTHS})
        return nodes

    def params(command: click.Command) -> dict[str, bool]:
        return {p["name"]: p["plain"] for p in table(command)[""]["params"] if not p["is_help"]}

    @click.command()
    @click.option("--a")
    @click.option("--b", default=lambda: "computed")
    @click.option("--c", envvar=["X1", "X2"])
    @click.option("--d", callback=lambda ctx, p, v: v)
    @click.option("--e", prompt=True)
    @click.option("--f", nargs=2)
    @click.option("--g", count=True)
    @click.option("--h", is_flag=True, flag_value="x")
    @click.option("--i", deprecated=True)
    def command(**kw: Any) -> None:
        pass

    assert params(command) == dict.fromkeys("abcdefghi", False) | {"a": True}
    assert table(command)[""]["plain"]
    for context in (
        {"token_normalize_func": str.lower},
        {"ignore_unknown_options": True},
        {"auto_envvar_prefix": "OPCARD"},
        {"default_map": {"a": "1"}},
    ):
        assert not table(command, **context)[""]["plain"], context
    command.context_settings = {"terminal_width": 120}
    assert not table(command)[""]["plain"]
    command.context_settings = {"allow_interspersed_args": False}
    assert table(command)[""]["plain"]
    command.deprecated = True
    assert not table(command)[""]["plain"]
    for group in (click.Group("g", chain=True), click.Group("g", invoke_without_command=True)):
        assert not table(group)[""]["plain"]
    assert table(click.Group("g"))[""]["plain"]


# --- help --------------------------------------------------------------------------------------


def run_fast(args: list[str], **env: str | None) -> tuple[int | None, bytes, bytes]:
    """``fast.main(args)``: (exit code or None when declined, stdout, stderr)."""
    with environment(**env), Captured() as io_:
        code = fast.main(list(args))
    return code, io_.output, io_.errors


def run_click(args: list[str], **env: str | None) -> tuple[int, bytes, bytes]:
    """click's own run of ``args`` (``cli.main``, not standalone): (exit code, stdout,
    stderr) of a help page or a usage error."""
    with environment(**env), Captured() as io_:
        try:
            code = cli.main(list(args), prog_name="opcard", standalone_mode=False)
        except click.ClickException as e:
            e.show()
            code = e.exit_code
    return code, io_.output, io_.errors


@pytest.mark.parametrize("columns", ["80", "120", "200", "61"])
def test_help_equals_click(columns: str) -> None:
    answered = 0
    for path in PATHS:
        words = path.split()
        for args in ([*words, "-h"], [*words, "--help"], ["--debug", *words, "-h"]):
            code, out, err = run_fast(args, COLUMNS=columns)
            if code is None:
                assert columns == "61", f"declined {args}"  # 59 columns: not stored
                assert out == err == b""
                continue
            assert (code, out, err) == run_click(args, COLUMNS=columns), args
            assert out.startswith(f"Usage: opcard {path}".rstrip().encode())
            answered += 1
    assert answered == (0 if columns == "61" else 3 * len(PATHS))


def test_help_options_between_and_after() -> None:
    """-h after other options, bundled with a flag, before arguments: the page of the command
    it is given to; with a usage error before it, click's error (fast declines)."""
    cases = [
        ["sign", "--slot", "aut", "-h", "file"],
        ["status", "--json", "-h", "extra"],
        ["-vh", "status"],
        ["-v", "--reader", "R", "cert", "-h", "export"],
        ["cert", "export", "--slot", "bogus", "-h"],
        ["cert", "export", "-h", "--slot", "bogus"],
        ["tls", "connect", "-qh"],
        ["--card-timeout", "x", "status", "-h"],
        ["status", "-h", "--bogus"],
        ["sign", "--", "-h"],
    ]
    for args in cases:
        code, out, err = run_fast(args, COLUMNS="80")
        expected = run_click(args, COLUMNS="80")
        if code is None:
            assert out == err == b""
            assert expected[0] != 0 or not expected[1].startswith(b"Usage:"), args
        else:
            assert (code, out, err) == expected, args


# --- completion, differential ------------------------------------------------------------------

SHELLS = ("bash", "zsh", "fish")


def completion_env(shell: str, args: list[str], incomplete: str) -> dict[str, str | None]:
    """The variables the shell's completion script sets for ``opcard ARGS INCOMPLETE<TAB>``."""
    if shell == "fish":  # commandline -cp, commandline -t
        words = " ".join(["opcard", *args]) + " " + incomplete
        cword = incomplete
    else:
        words = " ".join(["opcard", *args, incomplete])
        cword = str(len(args) + 1)
    return {"_OPCARD_COMPLETE": f"{shell}_complete", "COMP_WORDS": words, "COMP_CWORD": cword}


def fast_complete(env: dict[str, str | None]) -> bytes | None:
    code, out, err = run_fast([], **env)
    assert err == b""
    if code is None:
        assert out == b""
        return None
    assert code == 0
    return out


def click_complete(env: dict[str, str | None]) -> bytes | Exception:
    from click.shell_completion import shell_complete

    with environment(**env), Captured() as io_:
        try:
            shell_complete(cli, {}, "opcard", "_OPCARD_COMPLETE", str(env["_OPCARD_COMPLETE"]))
        except Exception as e:  # click's own failure (a traceback for the user)
            return e
    return io_.output


def completion_cases() -> list[tuple[list[str], str]]:
    """(complete words, incomplete word) for every command path: sub-command prefixes,
    option names and their prefixes, option values (choices, paths, files), ``--opt=``
    forms, ``--``, repeated options, unknown words."""
    cases: list[tuple[list[str], str]] = []
    for path in PATHS:
        words = path.split()
        node = NODES[path]
        for i in range(len(words)):  # every prefix of the path
            cases += [(words[:i], words[i][:1]), (words[:i], words[i])]
        cases += [(words, ""), (words, "-"), (words, "--"), (words, "x"), (words, "=")]
        cases += [([*words, "--"], ""), ([*words, "--"], "-"), ([*words, "bogus"], "")]
        cases += [([*words, "--bogus"], ""), (["--debug", *words], "--")]
        for name in node["sub"] or {}:
            cases.append((words, name[:2]))
        for p in node["params"]:
            if p["argument"]:
                continue
            for name in (*p["opts"], *p["secondary"]):
                cases += [(words, name), (words, name[:3])]
            name = p["opts"][-1]
            if p["flag"]:
                cases += [([*words, name], "-"), ([*words, name], "")]
                continue
            values = list(p["type"][3]) if p["type"][0] == "choice" else ["", "v"]
            cases += [([*words, name], ""), ([*words, name], "-")]
            cases += [([*words, name, values[0]], "-"), ([*words, name, values[0]], "")]
            for v in values:
                cases += [([*words, name], v[:1]), (words, f"{name}={v[:1]}")]
                cases += [([*words, name], v.upper()[:2])]
            cases.append(([*words, name], "/tmp/x"))
    return cases


CASES = completion_cases()


@pytest.mark.parametrize("shell", SHELLS)
def test_completion_equals_click(shell: str) -> None:
    for args, incomplete in CASES:
        env = completion_env(shell, args, incomplete)
        got = fast_complete(env)
        expected = click_complete(env)
        assert got is not None, f"declined {env}"
        assert got == expected, env


def vocabulary() -> list[str]:
    words = {w for path in PATHS for w in path.split()}
    for node in NODES.values():
        for p in node["params"]:
            words.update(p["opts"] if not p["argument"] else ())
            words.update(p["secondary"])
            if p["type"][0] == "choice":
                words.update(p["type"][1])
    words.update(["--", "-", "=", "-vh", "-o-", "--slot=", "--format=d", "x", "0", "-1", "--bogus"])
    return sorted(words)


VOCABULARY = vocabulary()
PLAIN_WORD = st.one_of(
    st.sampled_from(VOCABULARY),
    st.sampled_from(VOCABULARY).map(lambda w: w[: max(1, len(w) // 2)]),
    st.text("abcdefghijklmnopqrstuvwxyz-=_.,:/0123456789ÄéŁ", min_size=1, max_size=6),
)


@FAST_SETTINGS
@given(
    shell=st.sampled_from(SHELLS),
    words=st.lists(PLAIN_WORD, max_size=8),
    incomplete=st.one_of(st.just(""), PLAIN_WORD),
    cword_shift=st.sampled_from([0, 0, 0, 0, -1, -2, 1]),
    spacing=st.sampled_from([" ", " ", "  ", "\t", " \n "]),
    variables=ENVIRONMENTS,
)
def test_completion_words_equal_click(
    shell: str,
    words: list[str],
    incomplete: str,
    cword_shift: int,
    spacing: str,
    variables: dict[str, str | None],
) -> None:
    """Command lines of plain words (commands, options, values, prefixes, garbage; the cursor
    anywhere for bash and zsh; OPCARD_* set, empty or wrong): fast answers, as click does."""
    env = {**variables, **completion_env(shell, words, incomplete)}
    env["COMP_WORDS"] = str(env["COMP_WORDS"]).replace(" ", spacing)
    if shell != "fish":
        env["COMP_CWORD"] = str(max(0, len(words) + 1 + cword_shift))
    got = fast_complete(env)
    expected = click_complete(env)
    assert got is not None, f"declined {env}"
    assert got == expected, env


# --- whole runs in process (emulated cards in loopback readers) ------------------------------

RUN_PATHS = [p for p in PATHS if p in fast.RUNNERS and p != "serve"]
PIN_VALUES = ["123456", "123456", "000000", "", "12345", "-"]


@st.composite
def run_lines(draw: st.DrawFn, files: dict[str, str]) -> tuple[list[str], bytes]:
    """A command line of a command fast runs, mostly valid, and what standard input holds."""
    path = draw(st.sampled_from(RUN_PATHS))
    args: list[str] = []
    for _ in range(draw(st.integers(0, 2))):
        args += draw(
            st.sampled_from(
                [
                    ["--reader", "Loopback 00"],
                    ["--reader", "Loopback 01"],
                    ["--reader=Nowhere"],
                    ["--reader", "Loopback 02"],
                    ["--serial", "0C11A001"],
                    ["--serial", "0c11a002"],
                    ["--serial", "00000000"],
                    ["-v"],
                    ["--debug"],
                    ["--card-timeout", "5"],
                    ["--card-timeout=0"],
                ]
            )
        )
    args += path.split()
    node = NODES[path]
    for _ in range(draw(st.integers(0, 3))):
        use = draw(option_use(node, files))
        if use[:1] in (["--pin"], ["--pin-file"]) and len(use) == 2:
            pin = files["pin"] if use[0] == "--pin-file" else draw(st.sampled_from(PIN_VALUES))
            use = [use[0], draw(st.sampled_from([pin, pin, files["missing"]]))]
        if use[:1] == ["-o"] or use[:1] == ["--output"]:
            use = [use[0], draw(st.sampled_from([files["out"], "-", files["dir"]]))]
        args += use
    if path == "sign":
        args.append(draw(st.sampled_from([files["file"], "-", files["file"]])))
    stdin = draw(st.sampled_from([b"", b"data on standard input\n", b"123456\n"]))
    return args, stdin


RUN_ENVIRONMENTS = st.fixed_dictionaries(
    {
        "OPCARD_READER": st.sampled_from([None, None, "", "Loopback 00", "Nowhere"]),
        "OPCARD_SERIAL": st.sampled_from([None, None, "", "0C11A002"]),
        "OPCARD_CARD_TIMEOUT": st.sampled_from([None, None, "", "5", "x"]),
        "OPCARD_PIN": st.sampled_from([None, None, "", "123456", "000000"]),
    }
)


def whole_run(
    front: str,
    args: list[str],
    stdin: bytes,
    cards: dict[str, Any],
    workdir: Path,
    env: dict[str, str | None],
) -> tuple[int | None, bytes, bytes, dict[str, bytes], list[bool]]:
    """One run of ``args`` by ``front`` ("fast": opcard.cli.fast.main; "click": cli.main) in
    ``workdir`` on copies of ``cards``: exit code (None: fast declined), stdout, stderr (APDU
    times and the traceback frames of --debug left out: the front ends' frames differ), the
    files written (removed again) and whether each card opened was closed."""
    import copy
    import re

    from opcard.cli.backend import use_backend

    backend = _loopback()
    backend.cards.update({r: copy.deepcopy(c) for r, c in cards.items()})
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        with (
            environment(**env),
            use_backend(backend),
            Captured(stdin) as io_,
            mock.patch("getpass.getpass", _getpass),
        ):
            if front == "fast":
                code = fast.main(list(args))
            else:
                try:
                    cli.main(list(args), prog_name="opcard")
                    code = 0
                except SystemExit as e:
                    code = e.code if isinstance(e.code, int) else 1
    finally:
        os.chdir(cwd)
    written = {}
    for path in sorted(workdir.iterdir()):
        written[path.name] = path.read_bytes()
        path.unlink()
    closed = [c.channel.transport._closed for c in backend.opened]
    err = re.sub(rb"\d+\.\d+ ms\)", b"ms)", io_.errors)
    err = b"\n".join(x for x in err.split(b"\n") if x[:1] != b" ")
    return code, io_.output, err, written, closed


def _getpass(prompt: str) -> str:
    """getpass.getpass for the tests: the PIN prompt reads standard input, never the
    terminal."""
    sys.stderr.write(prompt)
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\n")


def _loopback() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_fast_cli_conftest", Path(__file__).with_name("conftest.py")
    )
    assert spec is not None and spec.loader is not None
    module = sys.modules.get("_fast_cli_conftest")
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules["_fast_cli_conftest"] = module
        spec.loader.exec_module(module)
    return module.LoopbackBackend()


@pytest.fixture(scope="module")
def loopback_cards() -> dict[str, Any]:
    """The demo RSA card; another one (serial 0C11A002); a card without keys or
    certificates."""
    from fixtures.card import OpenPGPCard
    from fixtures.personalize import personalize

    cards = {}
    for reader, serial, personalisation in [
        ("Loopback 00", 0x0C11A001, "demo-rsa"),
        ("Loopback 01", 0x0C11A002, "demo-rsa"),
        ("Loopback 02", 0x0C11A003, None),
    ]:
        card = OpenPGPCard("extended", serial=serial)
        if personalisation:
            personalize(card, personalisation)
        card.power_on()
        cards[reader] = card
    return cards


@pytest.fixture(scope="module")
def run_files(files: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from conftest import PW1

    base = tmp_path_factory.mktemp("fast-run")
    (base / "pin").write_text(PW1 + "\n")
    (base / "work").mkdir()
    return {**files, "pin": str(base / "pin"), "out": "out.pem", "work": str(base / "work")}


@settings(FAST_SETTINGS, max_examples=max(FAST_SETTINGS.max_examples // 2, 1))
@given(data=st.data())
def test_whole_runs_equal_click(
    data: st.DataObject, run_files: dict[str, str], loopback_cards: dict[str, Any], tally: Tally
) -> None:
    """list, status, cert export and sign on emulated cards in loopback readers: whenever fast
    runs the command line, the exit code, standard output and error and the file written are
    click's."""
    args, stdin = data.draw(run_lines(run_files), label="args")
    env = data.draw(RUN_ENVIRONMENTS, label="env")
    cards = {
        r: c for r, c in loopback_cards.items() if r == "Loopback 00" or data.draw(st.booleans())
    }
    workdir = Path(run_files["work"])
    got = whole_run("fast", args, stdin, cards, workdir, env)
    if got[0] is None:
        assert got[1:] == (b"", b"", {}, [])  # declined before anything happened
        tally.runs_declined += 1
        return
    assert all(got[4]), "a card left open"
    assert got == whole_run("click", args, stdin, cards, workdir, env), args
    tally.runs += 1
    tally.runs_ok += got[0] == 0


def test_whole_runs_ran(tally: Tally) -> None:
    """The run comparison above compared runs: successful ones and failing ones."""
    if not tally.runs + tally.runs_declined:
        pytest.skip("test_whole_runs_equal_click did not run in this session")
    assert tally.runs >= 40 and tally.runs_ok >= 10 and tally.runs - tally.runs_ok >= 10


@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "utf-16"])
def test_streams_not_utf8_are_clicks(encoding: str) -> None:
    """click writes through its own wrapper when a stream is not UTF-8: fast leaves help and
    commands to it, before writing anything."""
    for args in (["-h"], ["cert", "export", "-h"], ["--reader", "Nowhere", "status"]):
        with environment(COLUMNS="80"), Captured() as io_:
            sys.stdout = io.TextIOWrapper(io.BytesIO(), encoding=encoding)
            assert fast.main(args) is None
            assert sys.stdout.buffer.getvalue() == b""  # type: ignore[attr-defined]
        assert io_.errors == b""


class _Failing:
    """A backend whose every call raises what ``make`` makes."""

    def __init__(self, make: Any) -> None:
        self.make = make

    def open_card(self, **kw: Any) -> Any:
        raise self.make()

    def readers(self) -> Any:
        raise self.make()


def _failing_run(front: str, make: Any, args: list[str]) -> tuple[Any, bytes, bytes]:
    from opcard.cli.backend import use_backend

    with environment(), use_backend(_Failing(make)), Captured() as io_:
        try:
            code = fast.main(list(args)) if front == "fast" else cli.main(list(args), "opcard")
        except SystemExit as e:
            code = e.code
    # --debug: the front ends' own frames differ, the exceptions and messages do not
    err = b"\n".join(x for x in io_.errors.split(b"\n") if x[:1] != b" ")
    return code, io_.output, err


FAILURES = {
    "KeyboardInterrupt": KeyboardInterrupt,
    "EOFError": EOFError,
    "BrokenPipeError": lambda: BrokenPipeError(32, "Broken pipe"),
    "OSError": lambda: OSError(5, "Input/output error"),
    "RuntimeError": lambda: RuntimeError("unexpected"),
    "SystemExit": lambda: SystemExit(5),
    "UnicodeEncodeError": lambda: UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates"),
    "MemoryError": MemoryError,
    "NoCardError": lambda: __import__("opcard.errors").errors.NoCardError("no card"),
    "click.Abort": lambda: click.Abort(),
    "click.UsageError": lambda: click.UsageError("bad use"),
    "click.BadParameter": lambda: click.BadParameter("bad value", param_hint="'--x'"),
    "click.Exit": lambda: click.exceptions.Exit(7),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_failures_reported_as_click_reports_them(failure: str) -> None:
    """Whatever the command raises (a PIN prompt's click.Abort included), fast reports it as
    click's route does: same exit code, output and error lines."""
    for args in (["status"], ["list", "--json"], ["--debug", "status"]):
        fast_ = _failing_run("fast", FAILURES[failure], args)
        assert fast_[0] is not None, "declined"
        assert fast_ == _failing_run("click", FAILURES[failure], args), args


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--stdio", "--login"],
        ["serve", "--stdio", "--max-per-process", "20", "--max-connections", "10"],
        ["serve", "--stdio", "--max-per-process=20", "--max-connections=10", "--login"],
    ],
)
def test_serve_stdio_usage_errors_as_click(args: list[str]) -> None:
    """The usage errors ``opcard serve --stdio`` finds before it serves: click's text."""
    fast_ = _failing_run("fast", RuntimeError, args)
    assert fast_[0] == 2 and fast_[2].startswith(b"Usage: opcard serve [OPTIONS]\n")
    assert fast_ == _failing_run("click", RuntimeError, args)


# --- hostile input -----------------------------------------------------------------------------

HOSTILE_ARGS = [
    ["sign", "--pin-file", "a\0b", "-"],  # click.Path: os.stat's ValueError
    ["sign", "a\0b"],
    ["sign", "--", "\0"],
    ["cert", "export", "--slot", "a\0ut"],
    ["cert", "export", "-o", "out\0put"],
    ["--card-timeout", "1\0", "status"],
    ["--reader", "\udcff", "status", "-h"],
    ["--reader\0", "x", "status"],
    ["cert", "export", "--\udcff"],
    ["-\udcff"],
    ["\udcff"],
    ["cert", "\ud800"],
    ["sign", "--slot", "\ud800", "-"],
    ["sign", "--hash", "sha256\udcff", "-"],
    ["cert", "export", "--format=\udcffder"],
    ["--card-timeout", "9" * 5000, "status"],
    ["--card-timeout", "1" + "0" * 400, "status"],
    ["-" + "v" * 20000 + "h"],
    ["-v"] * 10000 + ["status", "-h"],
    ["--reader", "x"] * 10000 + ["status", "--json"] * 100,
    ["cert", "export", *["--slot", "sig"] * 5000, "-h"],
]


@pytest.mark.parametrize("args", HOSTILE_ARGS, ids=range(len(HOSTILE_ARGS)))
def test_hostile_command_lines(args: list[str], tally: Tally) -> None:
    """NUL, lone surrogates, huge numbers and argument lists: fast declines or gives click's
    values, and never fails itself; where it declines, fast.main declines too, having written
    nothing."""
    compare_resolve(args, {}, Tally())
    with environment(), Captured():
        try:
            declined = fast.resolve(list(args))[2] is None  # a help page
        except fast.Decline:
            declined = True
    if declined:
        code, out, err = run_fast(args, COLUMNS="80")
        if code is None:
            assert out == err == b""
        else:
            assert (code, out, err) == run_click(args, COLUMNS="80")


HOSTILE_COMPLETIONS = [
    # (COMP_WORDS, COMP_CWORD, whether fast must decline)
    ("opcard cert 'ex", "2", True),
    ('opcard cert "ex', "2", True),
    ("opcard cert\\ ex", "2", True),
    ("opcard sign my\\ file", "2", True),
    ("opcard\xa0cert ", "2", True),  # no space for shlex
    ("opcard\x0bcert ", "2", True),
    ("opcard\x0ccert ", "2", True),
    ("opcard\u2028cert ", "2", True),
    ("opcard\x1ccert ", "2", True),
    ("opcard\r\ncert\t\tex", "2", False),
    ("opcard sign " + os.fsdecode(b"\xff\xfe"), "2", True),  # not UTF-8: click fails
    ("opcard " + os.fsdecode(b"\xff"), "1", False),  # no completion: nothing to encode
    ("opcard cert ", "x", True),
    ("opcard cert ", "", True),
    ("opcard cert ", " 2 ", False),
    ("opcard cert ", "-1", True),
    ("opcard cert ", "9" * 30, False),
    ("opcard cert ", "9" * 5000, True),
    ("", "0", False),
    ("", "5", False),
    ("   ", "1", False),
    ("opcard " + "cert " * 3000, "3001", False),
    ("opcard " + "-v " * 5000 + "--re", "5001", False),
]


@pytest.mark.parametrize("shell", SHELLS)
def test_hostile_completion(shell: str) -> None:
    """Quotes, escapes and whitespace shlex does not split at are left to click; words that
    are not UTF-8, a bad COMP_CWORD: declined or answered as click does, never a failure of
    fast's own."""
    for words, cword, declines in HOSTILE_COMPLETIONS:
        if shell == "fish":
            # fish sends the word being completed (commandline -t) in COMP_CWORD
            cword = words.rsplit(" ", 1)[-1] if not cword.strip(" -0123456789") else cword
        env: dict[str, str | None] = {
            "_OPCARD_COMPLETE": f"{shell}_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": cword,
        }
        got = fast_complete(env)
        expected = click_complete(env)
        if got is not None:
            assert got == expected, env
        if shell != "fish":
            assert (got is None) == declines, env
        if isinstance(expected, Exception):
            assert got is None, env


@pytest.mark.parametrize(
    "instruction", ["bash_source", "zsh_source", "powershell_complete", "bash", "_complete", "x"]
)
def test_other_instructions_are_clicks(instruction: str) -> None:
    env = {"_OPCARD_COMPLETE": instruction, "COMP_WORDS": "opcard ", "COMP_CWORD": "1"}
    assert run_fast([], **env) == (None, b"", b"")


def test_completion_without_stdout_declines() -> None:
    env = {"_OPCARD_COMPLETE": "bash_complete", "COMP_WORDS": "opcard s", "COMP_CWORD": "1"}
    with environment(**env), Captured() as io_:
        sys.stdout = None  # type: ignore[assignment]  # closed: python -c ... >&-
        assert fast.main([]) is None
    assert io_.output == b""


def test_sign_from_closed_stdin_declines() -> None:
    with environment(), Captured():
        path, _, values = fast.resolve(["sign", "-"])
        assert values is not None
        sys.stdin = None  # type: ignore[assignment]
        before = open_fds()
        with pytest.raises(fast.Decline):
            fast._open_files(NODES[path], values)
        assert open_fds() == before


# --- both front ends on the emulated card (pcscd + vpcd) ----------------------------------------

SERIAL = 0x0C11A0F5

#: Runs ``python -m opcard.cli`` (fast first, click when it declines) or click alone, and writes
#: the modules loaded at exit to the file named by $OPCARD_TEST_MODULES.
ROUTE_CODE = """
import atexit, os, sys
def _modules():
    with open(os.environ["OPCARD_TEST_MODULES"], "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
atexit.register(_modules)
if sys.argv[1] == "fast":  # python -m opcard.cli ARGS
    del sys.argv[1]
    import runpy
    runpy.run_module("opcard.cli", run_name="__main__", alter_sys=True)
else:
    del sys.argv[1]
    from opcard.cli.app import cli
    cli.main(prog_name="opcard")
"""


class Route:
    def __init__(
        self, code: int, stdout: bytes, stderr: bytes, modules: set[str], apdus: list[Any]
    ):
        self.code, self.stdout, self.stderr = code, stdout, stderr
        self.modules, self.apdus = modules, apdus

    def outcome(self) -> tuple[int, bytes, bytes]:
        """Exit code, stdout and stderr; the times of ``-v``'s APDU lines left out."""
        import re

        return self.code, self.stdout, re.sub(rb"\d+\.\d+ ms\)", b"ms)", self.stderr)


@pytest.fixture(scope="module")
def rsa_card(pcscd: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The demo RSA card (extended profile) for the module, with an APDU log."""
    from conftest import DEFAULT_PORT, Emulator

    workdir = tmp_path_factory.mktemp("fast-card")
    emulator = Emulator(
        workdir,
        profile="extended",
        personalize="demo-rsa",
        port=DEFAULT_PORT,
        apdu_log=workdir / "apdu.log",
        opts={"serial": SERIAL},
    )
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


def _settled_log(card: Any) -> list[tuple[str, str]]:
    """The card's APDU log once it stops growing (the emulator may still be writing)."""
    import time

    last: list[tuple[str, str]] = []
    for _ in range(100):
        entries = [(e.direction, e.text) for e in card.log_entries()]
        if entries == last:
            return entries
        last = entries
        time.sleep(0.02)
    return last


def run_route(
    card: Any,
    route: str,
    args: list[str],
    tmp_path: Path,
    *,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
) -> Route:
    import subprocess

    modules = tmp_path / f"modules-{route}"
    environment_ = {k: v for k, v in os.environ.items() if not k.startswith("OPCARD_")}
    environment_.pop("_OPCARD_COMPLETE", None)
    environment_.update(env or {})
    environment_["OPCARD_TEST_MODULES"] = str(modules)
    before = len(_settled_log(card))
    proc = subprocess.run(
        [sys.executable, "-c", ROUTE_CODE, route, *args],
        input=stdin,
        capture_output=True,
        env=environment_,
        timeout=60,
        check=False,
    )
    # commands and responses (pcscd powers the card on and off when it likes: not compared)
    apdus = [e for e in _settled_log(card)[before:] if e[0] != "*"]
    return Route(
        proc.returncode,
        proc.stdout,
        proc.stderr,
        set(modules.read_text().split()),
        apdus,
    )


def both_routes(card: Any, args: list[str], tmp_path: Path, **kw: Any) -> tuple[Route, Route]:
    """The command through opcard's entry point and through click alone: same stdout, stderr,
    exit code and APDUs; the entry point without click."""
    fast_ = run_route(card, "fast", args, tmp_path, **kw)
    click_ = run_route(card, "click", args, tmp_path, **kw)
    assert fast_.outcome() == click_.outcome(), args
    assert fast_.apdus == click_.apdus, args
    assert "click" in click_.modules
    assert not {m for m in fast_.modules if m.split(".")[0] == "click"}, args
    return fast_, click_


@pytest.fixture
def pin_file(tmp_path: Path) -> str:
    from conftest import PW1

    path = tmp_path / "pin"
    path.write_text(PW1 + "\n")
    return str(path)


def test_card_list_and_status(rsa_card: Any, tmp_path: Path) -> None:
    reader = rsa_card.reader
    for args, env in [
        (["list"], None),
        (["list", "--json"], None),
        (["--reader", reader, "status"], None),
        (["status", "--json"], {"OPCARD_READER": reader}),
        (["-v", "--serial", f"{SERIAL:08X}", "--reader", reader, "status"], None),
    ]:
        fast_, _ = both_routes(rsa_card, args, tmp_path, env=env)
        assert fast_.code == 0, fast_.stderr
        assert reader.encode() in fast_.stdout or args[0] != "list"
        if args[0] != "list":
            assert fast_.apdus and fast_.stdout


def test_card_cert_export(rsa_card: Any, tmp_path: Path) -> None:
    from cryptography import x509

    reader = rsa_card.reader
    pem, _ = both_routes(rsa_card, ["--reader", reader, "cert", "export"], tmp_path)
    der, _ = both_routes(
        rsa_card, ["--reader", reader, "cert", "export", "--format", "DER"], tmp_path
    )
    assert x509.load_pem_x509_certificate(pem.stdout) == x509.load_der_x509_certificate(der.stdout)
    written = {}
    for route in ("fast", "click"):
        out = tmp_path / f"sig-{route}.pem"
        result = run_route(
            rsa_card,
            route,
            ["--reader", reader, "cert", "export", "--slot", "sig", "-o", str(out)],
            tmp_path,
        )
        assert result.outcome() == (0, b"", b"")
        written[route] = out.read_bytes()
    assert written["fast"] == written["click"]
    sig = x509.load_pem_x509_certificate(written["fast"])
    assert "SIG" in sig.subject.rfc4514_string()


def test_card_sign(rsa_card: Any, tmp_path: Path, pin_file: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    reader = rsa_card.reader
    data = tmp_path / "data"
    data.write_bytes(b"signed by both front ends\n")
    cert = run_route(
        rsa_card, "click", ["--reader", reader, "cert", "export", "--slot", "sig"], tmp_path
    )
    public = x509.load_pem_x509_certificate(cert.stdout).public_key()
    for args, stdin, hash_ in [
        (["sign", "--pin-file", pin_file, str(data)], b"", hashes.SHA256()),
        (
            ["sign", "--hash", "sha384", "--pin-file", pin_file, "-"],
            data.read_bytes(),
            hashes.SHA384(),
        ),
    ]:
        fast_, _ = both_routes(rsa_card, ["--reader", reader, *args], tmp_path, stdin=stdin)
        assert fast_.code == 0, fast_.stderr
        public.verify(fast_.stdout, data.read_bytes(), padding.PKCS1v15(), hash_)  # type: ignore[union-attr]


def test_card_errors(rsa_card: Any, tmp_path: Path, pin_file: str) -> None:
    reader = rsa_card.reader
    data = tmp_path / "data"
    data.write_bytes(b"x")
    usage, _ = both_routes(
        rsa_card,
        ["--reader", reader, "sign", "--slot", "dec", "--pin-file", pin_file, str(data)],
        tmp_path,
    )
    assert usage.code == 2 and b"Invalid value for --slot" in usage.stderr and not usage.apdus
    unreadable, _ = both_routes(
        rsa_card,
        ["--reader", reader, "sign", "--pin-file", str(tmp_path / "no-pin"), str(data)],
        tmp_path,
    )
    assert unreadable.code == 2 and unreadable.stdout == b""
    assert b"Error: Invalid value: cannot read " in unreadable.stderr
    no_reader, _ = both_routes(rsa_card, ["--reader", "No Such Reader 00", "status"], tmp_path)
    assert no_reader.code == 3 and no_reader.stderr.startswith(b"opcard: error: ")
    # --debug: the same exceptions and error lines; the frames above the command's function
    # are the front end's own (fast._invoke; click's invoke chain)
    args = ["--debug", "--reader", "No Such Reader 00", "status"]
    fast_ = run_route(rsa_card, "fast", args, tmp_path)
    click_ = run_route(rsa_card, "click", args, tmp_path)
    assert fast_.code == click_.code == 3 and fast_.stdout == click_.stdout == b""
    assert [x for x in fast_.stderr.splitlines() if x[:1] != b" "] == [
        x for x in click_.stderr.splitlines() if x[:1] != b" "
    ]
    assert fast_.stderr.count(b"Traceback") == 2 and "click" not in fast_.modules
    # last (it changes the card): a slot without its certificate
    from conftest import PW3

    admin = tmp_path / "admin"
    admin.write_text(PW3)
    deleted = run_route(
        rsa_card,
        "click",
        ["--reader", reader, "cert", "delete", "--slot", "dec", "--admin-pin-file", str(admin)],
        tmp_path,
    )
    assert deleted.code == 0, deleted.stderr
    missing, _ = both_routes(
        rsa_card, ["--reader", reader, "cert", "export", "--slot", "dec"], tmp_path
    )
    assert missing.code == 10 and missing.stdout == b""
    assert missing.stderr == b"opcard: error: there is no certificate in the DEC slot\n"
