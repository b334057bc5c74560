"""The command line without click, for what it can answer alone (issue #15).

click costs a command about as much as everything else it does (its import is ~16 ms, the
interpreter's start ~10). The click commands stay the one description of the command line:
:mod:`opcard.cli.maketable` reads them at build time into :mod:`opcard.cli.table` (parameters,
usage lines, completion listings) and :mod:`opcard.cli.helptext` (help pages), and this module
answers from those tables:

- ``--help``/``-h`` of every command, at the widths stored (a pipe or an 80-column terminal,
  and terminals of 102 columns or more);
- shell completion (``_OPCARD_COMPLETE=bash_complete|zsh_complete|fish_complete``);
- ``opcard list``, ``status``, ``cert export`` and ``sign``, whose work lives in
  :mod:`opcard.cli.run` (the click commands call the same functions).

It parses as click's parser does (``click.parser``: long options with ``=``, bundled short
options, ``--``, options between arguments) and converts values as click's types do. Anything
else — a usage error, ``--version``, a help width not stored, another command, a stream that
is not UTF-8 — is left to click *before* anything has happened (:func:`main` returns None and
:func:`opcard.cli.main` runs click on the same arguments), so every message, exit code and
prompt stays click's. tests/cli/test_cli_fast.py checks the two front ends against each other:
parsed values, help pages, completions, outputs and exit codes.
"""

from __future__ import annotations

import os
import sys

from opcard.cli.table import NODES

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Node = dict[str, Any]
    Param = dict[str, Any]

__all__ = ["RUNNERS", "Decline", "main", "parse", "resolve"]

#: The commands run here: path → (module, function, whether it takes the State first, and the
#: module's function saying whether it runs these values here or None: always). Each function
#: takes the command's parameters by name, as its click command passes them.
RUNNERS: dict[str, tuple[str, str, bool, str | None]] = {
    "list": ("opcard.cli.run.status", "list_readers", False, None),
    "status": ("opcard.cli.run.status", "show_status", True, None),
    "cert export": ("opcard.cli.run.cert", "export_certificate", True, None),
    "sign": ("opcard.cli.run.sign", "sign", True, None),
    "serve": ("opcard.cli.run.serve", "serve_stdio", True, "runs_here"),
}

_UTF8 = frozenset({"utf-8", "utf8"})


class Decline(Exception):
    """Left to click (nothing has been done yet)."""


class _ParseError(Exception):
    """What click's parser would raise as a usage error."""


def main(args: list[str]) -> int | None:
    """Run the command line for ``args``; the exit code, or None when click must run it."""
    try:
        instruction = os.environ.get("_OPCARD_COMPLETE")
        if instruction:
            return _complete(instruction)
        for stream in (sys.stdout, sys.stderr):
            encoding = getattr(stream, "encoding", None)
            # click writes through its own UTF-8 wrapper when a stream is misconfigured
            if not isinstance(encoding, str) or encoding.lower() not in _UTF8:
                raise Decline
        return _run(args)
    except Decline:
        return None


# --- parsing, as click.parser does --------------------------------------------------------


def _usable(node: Node) -> None:
    for p in node["params"]:
        if not (p["plain"] or p["is_help"] or (p["eager"] and p["flag"])):
            raise Decline


def _options(node: Node) -> tuple[dict[str, tuple[Param, Any]], dict[str, tuple[Param, Any]]]:
    """Long and short option names → (parameter, flag value or None when it takes a value)."""
    long: dict[str, tuple[Param, Any]] = {}
    short: dict[str, tuple[Param, Any]] = {}
    for p in node["params"]:
        if p["argument"]:
            continue
        for names, const in ((p["opts"], True), (p["secondary"], False)):
            for name in names:
                entry = (p, const if p["flag"] else None)
                # click.parser: a one-letter option after a one-character prefix is short
                if len(name) == 2 and name[0] != name[1]:
                    short[name] = entry
                else:
                    long[name] = entry
    return long, short


def parse(
    node: Node, args: list[str], *, resilient: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """The values click's parser finds in ``args`` for ``node`` (option and argument name →
    string, flag value or list for a repeated option) and the arguments left over. A usage
    error raises :class:`Decline`, or with ``resilient`` (completion) ends the parse where
    click's resilient parse ends it."""
    long, short = _options(node)
    opts: dict[str, Any] = {}
    largs: list[str] = []
    rargs = list(args)

    def store(p: Param, value: Any) -> None:
        if p["multiple"]:
            opts.setdefault(p["name"], []).append(value)
        else:
            opts[p["name"]] = value

    def take(p: Param) -> None:
        if not rargs:
            raise _ParseError
        store(p, rargs.pop(0))

    try:
        while rargs:
            arg = rargs.pop(0)
            if arg == "--":
                break
            if arg[:1] == "-" and len(arg) > 1:
                name, eq, explicit = arg.partition("=")
                hit = long.get(name if eq else arg)
                if hit is not None:
                    p, const = hit
                    if const is None:
                        if eq:
                            rargs.insert(0, explicit)
                        take(p)
                    elif eq:
                        raise _ParseError  # "Option '--x' does not take a value."
                    else:
                        store(p, const)
                elif arg[:2] == "--":
                    raise _ParseError  # no such option
                else:
                    for i in range(1, len(arg)):
                        hit = short.get("-" + arg[i])
                        if hit is None:
                            raise _ParseError
                        p, const = hit
                        if const is not None:
                            store(p, const)
                            continue
                        if i + 1 < len(arg):
                            store(p, arg[i + 1 :])
                        else:
                            take(p)
                        break
            elif node["interspersed"]:
                largs.append(arg)
            else:
                rargs.insert(0, arg)
                break
    except _ParseError:
        if not resilient:
            raise Decline from None
        return opts, largs
    rest = largs + rargs
    for p in node["params"]:
        if p["argument"] and rest:
            opts[p["name"]] = rest.pop(0)
    return opts, rest


# --- values, as click's types convert them ------------------------------------------------


def _convert(p: Param, raw: Any) -> Any:
    kind = p["type"]
    name = kind[0]
    if p["flag"] or name == "str":
        return raw
    if name == "choice":
        choices, case_sensitive = kind[1], kind[2]
        for choice in choices:
            if choice == raw if case_sensitive else choice.casefold() == raw.casefold():
                return choice
        raise Decline
    if name in ("float", "int"):
        try:
            value = float(raw) if name == "float" else int(raw)
        except ValueError:
            raise Decline from None
        low, high, low_open, high_open = kind[1:5]
        if value != value or value in (float("inf"), float("-inf")):
            raise Decline
        if low is not None and (value <= low if low_open else value < low):
            raise Decline
        if high is not None and (value >= high if high_open else value > high):
            raise Decline
        return value
    if name == "path":
        exists, file_okay, dir_okay, readable, writable, allow_dash = kind[1:7]
        if raw == "-" and file_okay and allow_dash:
            return raw
        try:
            st = os.stat(raw)
        except OSError:
            if not exists:
                return raw
            raise Decline from None
        except ValueError:  # a NUL: click.Path lets os.stat's ValueError through
            raise Decline from None
        import stat

        if (not file_okay and stat.S_ISREG(st.st_mode)) or (
            not dir_okay and stat.S_ISDIR(st.st_mode)
        ):
            raise Decline
        if (readable and not os.access(raw, os.R_OK)) or (writable and not os.access(raw, os.W_OK)):
            raise Decline
        return raw
    if name == "file":
        return raw  # opened by _open_files once every other value is known
    raise Decline


def _values(node: Node, opts: dict[str, Any]) -> dict[str, Any]:
    """Every exposed parameter's value as click passes it to the command."""
    values: dict[str, Any] = {}
    for p in node["params"]:
        if not p["plain"]:
            continue
        name = p["name"]
        if name in opts:
            raw = opts[name]
            values[name] = tuple(_convert(p, v) for v in raw) if p["multiple"] else _convert(p, raw)
            continue
        from_env = os.environ.get(p["envvar"]) if p["envvar"] else None
        if from_env:
            if p["multiple"] or p["flag"]:
                raise Decline  # click splits or reads booleans: its business
            values[name] = _convert(p, from_env)
        elif p["required"]:
            raise Decline
        else:
            values[name] = p["default"]
    return values


def _open_files(node: Node, values: dict[str, Any]) -> list[Any]:
    """Open the ``click.File("rb")`` parameters (standard input for ``-``) as click does when
    it converts them; the files to close after the command."""
    opened: list[Any] = []
    for p in node["params"]:
        if p["plain"] and p["type"][0] == "file" and values.get(p["name"]) is not None:
            raw = values[p["name"]]
            if raw == "-":
                stdin = getattr(sys.stdin, "buffer", None)
                if stdin is None:  # no standard input: click's business (it fails)
                    for g in opened:
                        g.close()
                    raise Decline
                values[p["name"]] = stdin
                continue
            try:
                f = open(raw, "rb")  # noqa: SIM115 - closed after the command
            except (OSError, ValueError):
                for g in opened:
                    g.close()
                raise Decline from None
            opened.append(f)
            values[p["name"]] = f
    return opened


# --- running --------------------------------------------------------------------------------


def _columns() -> int:
    """The terminal width as ``shutil.get_terminal_size()`` gives it (without importing
    shutil)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
        if columns <= 0:
            columns = 80
    return columns


def _help(path: str, node: Node) -> int:
    from opcard.cli.helptext import HELP

    width = max(min(_columns(), node["max_width"] or 80) - 2, 50)
    text = HELP.get(width, {}).get(path)
    if text is None:
        raise Decline
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return 0


def resolve(args: list[str]) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """What click's ``make_context`` chain makes of ``args``: the command path (``""`` for the
    root, ``"cert export"``), the root's values and the command's values (``ctx.params`` of
    each; a ``click.File`` value still its name, opened by :func:`_open_files`), or None for
    the command's values when ``--help``/``-h`` asks for the help of that path (the root's
    values are then empty unless the help is a sub-command's). Raises :class:`Decline` where
    click would not give the values as they are: a usage error, ``--version``, a group without
    its command, a parameter this module does not convert."""
    path = ""
    node = NODES[path]
    rest = list(args)
    root: dict[str, Any] = {}
    while True:
        _usable(node)
        if not node["plain"]:
            raise Decline  # a deprecated command: click warns
        if not rest and (node["sub"] is not None or node["no_args_is_help"]):
            raise Decline  # no command: click shows the help (or "Missing command")
        opts, rest = parse(node, rest)
        for p in node["params"]:
            if p["eager"] and p["name"] in opts:
                if not p["is_help"]:
                    raise Decline  # --version
                return path, root, None
        values = _values(node, opts)
        if node["sub"] is None:
            break
        if not path:
            root = values
        if not rest or rest[0] not in node["sub"]:
            raise Decline  # missing or unknown command: click's message
        path = f"{path} {rest[0]}".lstrip()
        node = NODES[path]
        rest = rest[1:]
    if rest and not node["extra_args"]:
        raise Decline  # "Got unexpected extra argument"
    return path, root, values


def _run(args: list[str]) -> int:
    path, root, values = resolve(args)
    node = NODES[path]
    if values is None:
        return _help(path, node)
    runner = RUNNERS.get(path)
    if runner is None:
        raise Decline
    import importlib

    module = importlib.import_module(runner[0])
    if runner[3] is not None and not getattr(module, runner[3])(values):
        raise Decline
    function: Callable[..., None] = getattr(module, runner[1])
    files = _open_files(node, values)
    return _invoke(function, runner[2], root, values, files, node)


def _invoke(
    function: Callable[..., None],
    takes_state: bool,
    root: dict[str, Any],
    values: dict[str, Any],
    files: list[Any],
    node: Node,
) -> int:
    """Run a command as the click root group runs it (:class:`opcard.cli.app.OpcardGroup`):
    the card closed after it, every failure one or two lines and an exit code."""
    from opcard.cli.state import Failure, UsageProblem, begin, echo, error_lines

    state, restore = begin(**root)
    code: int
    message: str
    hint: str
    try:
        try:
            if takes_state:
                function(state, **values)
            else:
                function(**values)
        finally:
            try:
                state.close()
            finally:
                if restore is not None:
                    restore()
                for f in files:
                    f.close()
    except UsageProblem as e:
        before, after = node["usage_error"]
        sys.stderr.write(f"{before}{e.text()}{after}")
        sys.stderr.flush()
        return 2
    except KeyboardInterrupt:
        from opcard.exitcodes import ExitCode

        code, message, hint = ExitCode.Interrupted, "interrupted", ""
    except Failure as e:
        code, message, hint = e.code, e.message, e.hint
    except Exception as exc:
        clicks = _click_exit(exc, node)
        if clicks is not None:
            return clicks
        if state.debug:
            import traceback

            echo("".join(traceback.format_exception(exc)).rstrip(), err=True)
        from opcard.exitcodes import classify

        code, message, hint = classify(exc)
    else:
        return 0
    for line in error_lines(message, hint):
        sys.stderr.write(line + "\n")
    sys.stderr.flush()
    return int(code)


def _click_exit(exc: Exception, node: Node) -> int | None:
    """What click's ``main`` makes of one of click's own exceptions raised by the command
    (:class:`opcard.cli.app.OpcardGroup` lets them through to it): the PIN prompt
    (``click.prompt``, imported by :mod:`opcard.cli.pins` to ask) raises ``click.Abort`` when
    the terminal says end of file or Ctrl-C: ``Aborted!`` and exit code 1. A usage error
    without a context shows the command's usage, as click's ``Context.invoke`` gives it one.
    None for any other exception (and always when click was never imported)."""
    click = sys.modules.get("click")
    if click is None:
        return None
    if isinstance(exc, click.exceptions.Exit):
        return int(exc.exit_code)
    if isinstance(exc, click.Abort):
        click.echo("Aborted!", err=True)
        return 1
    if isinstance(exc, click.UsageError) and exc.ctx is None:
        before, after = node["usage_error"]
        sys.stderr.write(f"{before}{exc.format_message()}{after}")
        sys.stderr.flush()
        return int(exc.exit_code)
    if isinstance(exc, click.ClickException):
        exc.show()
        return int(exc.exit_code)
    return None


# --- shell completion, as click.shell_completion does ----------------------------------------


def _split(text: str) -> list[str]:
    """``click.shell_completion.split_arg_string`` (shlex) for text without quotes or escapes:
    words between the spaces, tabs and newlines shlex splits at."""
    for char in text:
        if char in "\"'\\" or (char.isspace() and char not in " \t\r\n"):
            raise Decline
    return text.split()


def _complete(instruction: str) -> int:
    shell, _, what = instruction.partition("_")
    if what != "complete" or shell not in ("bash", "zsh", "fish"):
        raise Decline
    try:
        words = _split(os.environ["COMP_WORDS"])
        if shell == "fish":
            incomplete = os.environ["COMP_CWORD"]
            if incomplete:
                incomplete = _split(incomplete)[0]
            args = words[1:]
            if incomplete and args and args[-1] == incomplete:
                args.pop()
        else:
            cword = int(os.environ["COMP_CWORD"])
            if cword < 0:
                raise Decline
            args = words[1:cword]
            incomplete = words[cword] if cword < len(words) else ""
    except (KeyError, ValueError, IndexError):
        raise Decline from None
    lines = []
    for kind, value, help_text in _completions(args, incomplete):
        if shell == "bash":
            lines.append(f"{kind},{value}")
        elif shell == "zsh":
            shown = help_text or "_"
            value = value.replace(":", r"\:") if shown != "_" else value
            lines.append(f"{kind}\n{value}\n{shown}")
        elif help_text:
            flat = help_text.replace("\n", "\\n").replace("\t", " ")
            lines.append(f"{kind},{value}\t{flat}")
        else:
            lines.append(f"{kind},{value}")
    try:
        data = ("\n".join(lines) + "\n").encode()
    except UnicodeEncodeError:  # a word that was not UTF-8: click fails on it, not us
        raise Decline from None
    out = getattr(sys.stdout, "buffer", None)
    if out is None:  # no standard output, or a text-only one: click's business
        raise Decline
    out.write(data)
    out.flush()
    return 0


def _completions(args: list[str], incomplete: str) -> list[tuple[str, str, str | None]]:
    """(type, value, help) of each completion, as click's ``ShellComplete.get_completions``."""
    path = ""
    node = NODES[path]
    _usable(node)
    opts, rest = parse(node, args, resilient=True)
    while rest and node["sub"] is not None and rest[0] in node["sub"]:
        path = f"{path} {rest[0]}".lstrip()
        node = NODES[path]
        _usable(node)
        opts, rest = parse(node, rest[1:], resilient=True)
    args = list(args)
    if incomplete == "=":
        incomplete = ""
    elif "=" in incomplete and incomplete[:1] == "-":
        name, _, incomplete = incomplete.partition("=")
        args.append(name)
    if "--" not in args and incomplete[:1] == "-":
        return _command_completions(node, opts, incomplete)
    last = args[-1] if args and args[-1][:1] == "-" else None
    for p in node["params"]:
        if not p["argument"] and not p["flag"] and last in p["opts"]:
            return _value_completions(p, incomplete)
    for p in node["params"]:
        if p["argument"] and p["name"] not in opts:
            return _value_completions(p, incomplete)
    return _command_completions(node, opts, incomplete)


def _command_completions(
    node: Node, opts: dict[str, Any], incomplete: str
) -> list[tuple[str, str, str | None]]:
    found: list[tuple[str, str, str | None]] = [
        ("plain", name, short)
        for name, short in (node["sub"] or {}).items()
        if name.startswith(incomplete)
    ]
    if incomplete and not incomplete[0].isalnum():
        for p in node["params"]:
            if p["argument"] or p["hidden"] or (not p["multiple"] and p["name"] in opts):
                continue
            found += [
                ("plain", name, p["help"])
                for name in (*p["opts"], *p["secondary"])
                if name.startswith(incomplete)
            ]
    return found


def _value_completions(p: Param, incomplete: str) -> list[tuple[str, str, str | None]]:
    kind = p["type"]
    if kind[0] == "choice":
        shown, case_sensitive = kind[3], kind[2]
        low = incomplete.lower()
        return [
            ("plain", c, None)
            for c in shown
            if (c.startswith(incomplete) if case_sensitive else c.lower().startswith(low))
        ]
    if kind[0] == "path":
        file_okay, dir_okay = kind[2], kind[3]
        return [("dir" if dir_okay and not file_okay else "file", incomplete, None)]
    if kind[0] == "file":
        return [("file", incomplete, None)]
    if kind[0] == "other":
        if len(kind) > 1:  # a path or file click converts otherwise: completed alike
            return [(kind[1], incomplete, None)]
        raise Decline
    return []
