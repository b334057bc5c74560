"""The root ``opcard`` command: global options, sub-commands, and exceptions → exit codes.

Sub-commands import the library (and ``cryptography``) inside their functions, so that a
command only pays for what it uses: ``opcard cert export`` never imports ``cryptography``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from opcard.cli.common import State
from opcard.cli.errors import CliError
from opcard.exitcodes import ExitCode, classify

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

__all__ = ["LazyGroup", "cli"]


#: Sub-command → (module, attribute): a module is imported only when its command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("opcard.cli.status", "list_command"),
    "status": ("opcard.cli.status", "status"),
    "cert": ("opcard.cli.cert", "cert"),
    "key": ("opcard.cli.key", "key"),
    "sign": ("opcard.cli.sign", "sign"),
    "tls": ("opcard.cli.tls", "tls"),
    "pin": ("opcard.cli.pin", "pin"),
    "kdf": ("opcard.cli.admin", "kdf"),
    "touch": ("opcard.cli.admin", "touch"),
    "data": ("opcard.cli.data", "data"),
    "reset": ("opcard.cli.admin", "reset"),
    "serve": ("opcard.cli.serve", "serve"),
}

#: Sub-command → the first paragraph of its help: what ``opcard --help`` lists, without
#: importing every command's module (tests/unit/test_lazy_imports.py checks that the listing is
#: the one the commands themselves give).
SUMMARIES: dict[str, str] = {
    "list": "List the PC/SC readers and the OpenPGP cards in them.",
    "status": "Show the card: holder, PIN counters, and per slot the key and its certificate.",
    "cert": "Export, import or delete the certificate of a key slot.",
    "key": "Generate, import or export the key of a slot.",
    "sign": "Sign FILE ('-': standard input) with the card's key.",
    "tls": "TLS client authentication with the card's certificate and key.",
    "pin": "PIN counters, verification, changes and unblocking.",
    "kdf": "Turn the PIN key derivation (KDF-DO) on or off.",
    "touch": "Show or set the touch (user interaction flag) policy of the keys.",
    "data": "Read or write the cardholder name, URL, login data and private data objects.",
    "reset": "Factory reset: erase keys, certificates and data; PINs back to the defaults.",
    "serve": "Serve the OpenPGP cards to PKCS#11 applications through p11-kit's client module.",
}


class LazyGroup(click.Group):
    """A group whose sub-commands ``lazy`` (name → (module, attribute)) are imported only when
    one of them is used, or listed in the help without a summary in ``summaries`` (name → the
    first paragraph of its help)."""

    def __init__(
        self,
        *args: Any,
        lazy: dict[str, tuple[str, str]] | None = None,
        summaries: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})
        self.summaries = dict(summaries or {})

    def _listed(self, ctx: click.Context, name: str) -> click.Command | None:
        """The command ``name`` as listed (help, completion): a lazy command with a summary
        stands in as a bare command carrying it, without importing its module."""
        summary = self.summaries.get(name) if name in self.lazy else None
        return (
            click.Command(name, help=summary)
            if summary is not None
            else self.get_command(ctx, name)
        )

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing (same rows, same shortening), a summarised command not imported."""
        commands: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self._listed(ctx, name)
            if command is not None and not command.hidden:
                commands.append((name, command))
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            with formatter.section("Commands"):
                formatter.write_dl([(n, c.get_short_help_str(limit)) for n, c in commands])

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """click's completion (sub-command names with their short help, then the options), a
        summarised command not imported: ``opcard <TAB>`` loads no command module."""
        from click.shell_completion import CompletionItem

        items: list[CompletionItem] = []
        for name in self.list_commands(ctx):
            if name.startswith(incomplete):
                command = self._listed(ctx, name)
                if command is not None and not command.hidden:
                    items.append(CompletionItem(name, help=command.get_short_help_str()))
        return items + click.Command.shell_complete(self, ctx, incomplete)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        import importlib

        command = getattr(importlib.import_module(target[0]), target[1])
        assert isinstance(command, click.Command)
        return command


class OpcardGroup(LazyGroup):
    """The root group: loads sub-commands on demand (:data:`COMMANDS`), closes the card after
    the command and maps exceptions to exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            try:
                return super().invoke(ctx)
            finally:
                state = ctx.obj
                if isinstance(state, State):
                    state.close()
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            raise CliError("interrupted", ExitCode.Interrupted) from None
        # The command line's last line of defence: every other failure becomes one or two
        # lines and an exit code (the traceback with --debug).
        except Exception as exc:
            state = ctx.obj
            if isinstance(state, State) and state.debug:
                import traceback

                from opcard.cli.common import echo

                echo("".join(traceback.format_exception(exc)).rstrip(), err=True)
            code, message, hint = classify(exc)
            raise CliError(message, code, hint) from exc


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=OpcardGroup, lazy=COMMANDS, summaries=SUMMARIES, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--reader",
    metavar="NAME",
    envvar="OPCARD_READER",
    help="Use the card in this PC/SC reader (exact name, see 'opcard list'). [env: OPCARD_READER]",
)
@click.option(
    "--serial",
    metavar="SERIAL",
    envvar="OPCARD_SERIAL",
    help="Use the card with this serial number (8 hex digits). [env: OPCARD_SERIAL]",
)
@click.option(
    "-v",
    "--log-apdus",
    is_flag=True,
    help="Log every APDU to standard error (PINs and key material redacted).",
)
@click.option(
    "--card-timeout",
    metavar="SECONDS",
    type=click.FloatRange(min=0),
    envvar="OPCARD_CARD_TIMEOUT",
    help="How long to wait for the card's answer to a command before giving up with exit "
    "code 13 (0: for ever). Key generation waits longer: $OPCARD_GENERATE_TIMEOUT, default "
    "300. [default: 30; env: OPCARD_CARD_TIMEOUT]",
)
@click.option("--debug", is_flag=True, help="Show the traceback of errors.")
@click.version_option(package_name="opcard", prog_name="opcard")
@click.pass_context
def cli(
    ctx: click.Context,
    reader: str | None,
    serial: str | None,
    log_apdus: bool,
    card_timeout: float | None,
    debug: bool,
) -> None:
    """Use OpenPGP smartcards: status, certificates, keys, PINs, signatures.

    Exit codes: 0 success, 1 error, 2 usage, 3 no card, 4 several cards, 5 wrong PIN,
    6 PIN blocked, 7 certificate too large, 8 unsupported, 9 card error, 10 not found,
    11 bad input, 12 card in use by another program, 13 the card does not answer (details:
    docs/cli.md).
    """
    from opcard.cli.state import begin

    ctx.obj, restore = begin(
        reader=reader,
        serial=serial,
        log_apdus=log_apdus,
        card_timeout=card_timeout,
        debug=debug,
    )
    if restore is not None:
        ctx.call_on_close(restore)
