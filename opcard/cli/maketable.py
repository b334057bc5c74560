"""Write :mod:`opcard.cli.table` and :mod:`opcard.cli.helptext` from the click commands.

    python -m opcard.cli.maketable          # rewrite both files
    python -m opcard.cli.maketable --check  # exit 1 when they are not what the commands give

The click commands (``opcard.cli.app`` and the modules it registers) are the one description
of the command line. This module reads them once, at build time, into two data modules that
:mod:`opcard.cli.fast` reads without importing click: every command's parameters (names,
types, defaults, environment variables), its usage line, the completion listings, and the help
pages as click renders them at the widths most terminals and pipes give. A test
(tests/cli/test_cli_fast.py) runs ``--check``: a changed option or help text that was not
written into the table fails the suite.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Any

import click

from opcard.cli.app import cli

__all__ = ["HELP_WIDTHS", "build", "main"]

#: The help widths stored: click's ``max(min(columns, 100) - 2, 50)`` for a pipe or an 80-column
#: terminal (78) and for terminals of 102 columns or more (98). Other widths: click renders.
HELP_WIDTHS = (78, 98)

#: The context settings the fast front end follows (from the table) where a command sets them.
_FOLLOWED_SETTINGS = frozenset(
    {"help_option_names", "max_content_width", "allow_interspersed_args", "allow_extra_args"}
)

HERE = Path(__file__).resolve().parent
TABLE = HERE / "table.py"
HELPTEXT = HERE / "helptext.py"


def _completes_by_itself(param: click.Parameter, ctx: click.Context) -> bool:
    """Whether ``param`` was given a completion function of its own (``shell_complete=``):
    seen through click's public methods, as completions that differ from its type's."""
    for probe in ("", "a", "-", "/"):
        mine = [(i.type, i.value, i.help) for i in param.shell_complete(ctx, probe)]
        types = [(i.type, i.value, i.help) for i in param.type.shell_complete(ctx, param, probe)]
        if mine != types:
            return True
    return False


def _type(param: click.Parameter, ctx: click.Context) -> tuple[Any, ...]:
    """The parameter's type as a tuple :mod:`opcard.cli.fast` converts with (or ``("other",)``:
    the fast front end then leaves the command to click; ``("other", "file"|"dir")`` for a path
    or file it does not convert but completes as click does)."""
    if _completes_by_itself(param, ctx):
        return ("other",)  # completed by a function of its own
    kind = param.type
    if isinstance(kind, click.Choice):
        choices = tuple(str(c) for c in kind.choices)
        if any(not isinstance(c, str) for c in kind.choices):
            return ("other",)
        shown = tuple(kind.normalize_choice(c, ctx) for c in kind.choices)
        return ("choice", choices, bool(kind.case_sensitive), shown)
    if isinstance(kind, (click.FloatRange, click.IntRange)):
        name = "float" if isinstance(kind, click.FloatRange) else "int"
        return (name, kind.min, kind.max, bool(kind.min_open), bool(kind.max_open), kind.clamp)
    if isinstance(kind, click.Path):
        if kind.type is not None or kind.resolve_path or kind.executable:
            return ("other", "dir" if kind.dir_okay and not kind.file_okay else "file")
        return (
            "path",
            bool(kind.exists),
            bool(kind.file_okay),
            bool(kind.dir_okay),
            bool(kind.readable),
            bool(kind.writable),
            bool(kind.allow_dash),
        )
    if isinstance(kind, click.File):
        if kind.mode != "rb" or kind.lazy:
            return ("other", "file")
        return ("file", kind.mode)
    if isinstance(kind, click.types.StringParamType):
        return ("str",)
    if isinstance(kind, click.types.BoolParamType):
        return ("bool",)
    return ("other",)


def _param(
    param: click.Parameter, ctx: click.Context, value: Any, help_option: click.Option | None
) -> dict[str, Any]:
    option = isinstance(param, click.Option)
    flag = option and bool(param.is_flag)  # type: ignore[attr-defined]
    return {
        "name": param.name,
        "argument": not option,
        "opts": tuple(param.opts),
        "secondary": tuple(param.secondary_opts),
        "flag": flag,
        "nargs": param.nargs,
        "multiple": param.multiple,
        "count": bool(getattr(param, "count", False)),
        "type": _type(param, ctx),
        "default": value,
        "envvar": param.envvar if isinstance(param.envvar, str) else None,
        "required": param.required,
        "help": getattr(param, "help", None),
        "hidden": bool(getattr(param, "hidden", False)),
        # an eager parameter with a callback (--help, --version) acts when it is parsed
        "eager": bool(param.is_eager),
        "is_help": param is help_option,
        # what click would do that the fast front end does not: a callback, a prompt, more
        # than one value, a default computed when the command runs, several environment
        # variables (tests/cli/test_cli_fast.py compares both front ends on every option)
        "plain": not (
            (param.callback is not None and not param.is_eager)
            or callable(param.default)
            or (param.envvar is not None and not isinstance(param.envvar, str))
            or getattr(param, "prompt", None) is not None
            or (flag and not param.is_bool_flag)  # type: ignore[attr-defined]
            or param.nargs != 1
            or getattr(param, "count", False)
            or param.deprecated
            or not param.expose_value
        ),
    }


def _node(
    command: click.Command, ctx: click.Context, nodes: dict[str, Any], helps: dict[int, Any]
) -> None:
    path = " ".join(ctx.command_path.split()[1:])
    params = command.get_params(ctx)
    help_option = command.get_help_option(ctx)
    sub: dict[str, str] | None = None
    if isinstance(command, click.Group):
        sub = {}
        for name in command.list_commands(ctx):
            child = command.get_command(ctx, name)
            if child is not None and not child.hidden:
                sub[name] = child.get_short_help_str()
    # how click shows a usage error of this command, around its message (U+0000 here)
    shown = io.StringIO()
    click.UsageError("\0", ctx).show(file=shown)
    before, after = shown.getvalue().split("\0")
    nodes[path] = {
        "sub": sub,
        "params": tuple(_param(p, ctx, ctx.params.get(p.name), help_option) for p in params),
        "usage_error": (before, after),
        "interspersed": ctx.allow_interspersed_args,
        "extra_args": ctx.allow_extra_args,
        "no_args_is_help": command.no_args_is_help,
        "max_width": ctx.max_content_width,
        # what click does with a command that the fast front end does not: warn that it is
        # deprecated, chain sub-commands, run a group without one, or a context setting it
        # does not follow (token normalisation, unknown options ignored, a fixed width...)
        "plain": not (
            command.deprecated
            or (
                isinstance(command, click.Group)
                and (command.chain or command.invoke_without_command)
            )
            or set(command.context_settings) - _FOLLOWED_SETTINGS
            or ctx.token_normalize_func is not None
            or ctx.ignore_unknown_options
            or ctx.auto_envvar_prefix is not None
            or ctx.default_map
        ),
    }
    for width in HELP_WIDTHS:
        ctx.terminal_width = width
        helps[width][path] = ctx.get_help()
    if isinstance(command, click.Group):
        for name in sub or {}:
            child = command.get_command(ctx, name)
            assert child is not None
            with child.make_context(name, [], parent=ctx, resilient_parsing=True) as child_ctx:
                _node(child, child_ctx, nodes, helps)


def build() -> tuple[str, str]:
    """The text of table.py and helptext.py for the commands as they are now."""
    from importlib.metadata import version

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("OPCARD_")}
    try:
        nodes: dict[str, Any] = {}
        helps: dict[int, Any] = {w: {} for w in HELP_WIDTHS}
        with cli.make_context("opcard", [], resilient_parsing=True) as ctx:
            _node(cli, ctx, nodes, helps)
    finally:
        os.environ.update(saved)
    head = (
        '"""Generated by ``python -m opcard.cli.maketable`` from the click commands: do not edit.\n'
        "\n"
        "{what}\n"
        '"""\n\n'
        "# fmt: off\n"
        "# ruff: noqa: E501\n"
        "from __future__ import annotations\n\n"
        "{typing}"
        f"CLICK_VERSION = {version('click')!r}\n"
    )
    table = (
        head.format(
            what="Every command's parameters, usage line and completion listing, read by "
            ":mod:`opcard.cli.fast`.",
            typing="TYPE_CHECKING = False  # typing is not imported at run time\n"
            "if TYPE_CHECKING:\n"
            "    from typing import Any\n\n",
        )
        + f"\nNODES: dict[str, dict[str, Any]] = {nodes!r}\n"
    )
    helptext = (
        head.format(
            what="The help pages as click renders them, per width, read by :mod:`opcard.cli.fast`.",
            typing="",
        )
        + f"\nHELP: dict[int, dict[str, str]] = {helps!r}\n"
    )
    return table, helptext


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    table, helptext = build()
    if args == ["--check"]:
        stale = [
            p.name
            for p, text in ((TABLE, table), (HELPTEXT, helptext))
            if not p.exists() or p.read_text(encoding="utf-8") != text
        ]
        if stale:
            print(
                f"opcard/cli/{' and '.join(stale)} out of date: run python -m opcard.cli.maketable",
                file=sys.stderr,
            )
            return 1
        return 0
    if args:
        print("usage: python -m opcard.cli.maketable [--check]", file=sys.stderr)
        return 2
    TABLE.write_text(table, encoding="utf-8")
    HELPTEXT.write_text(helptext, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
