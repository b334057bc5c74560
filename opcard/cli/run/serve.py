"""What ``opcard serve --stdio`` does, without click (:mod:`opcard.cli.serve` declares the
command; its daemon, ``--install`` and ``--status`` modes stay there).

p11-kit starts ``opcard serve --stdio`` (or ``python -m opcard.serve --stdio``, the line
``opcard serve --install`` writes) for every application that opens the token, so its start-up
is paid again and again: :mod:`opcard.cli.fast` runs it without click when :func:`runs_here`
says the options are this mode's.
"""

from __future__ import annotations

from opcard.cli.state import Failure, UsageProblem

TYPE_CHECKING = False  # typing is not imported at run time

if TYPE_CHECKING:
    from typing import Any

    from opcard.cli.state import State
    from opcard.serve.confirm import Confirmation
    from opcard.serve.slots import Registry

__all__ = [
    "attach_backend_cards",
    "check_limits",
    "runs_here",
    "serve_stdio",
    "stdio_checks",
]


def runs_here(values: dict[str, Any]) -> bool:
    """Whether :mod:`opcard.cli.fast` runs these options of ``opcard serve`` itself: ``--stdio``
    without the other modes, ``--socket`` or ``--confirm`` (click runs the rest)."""
    return bool(
        values["stdio"]
        and not (values["status"] or values["install"] or values["uninstall"])
        and not values["shared"]
        and values["systemd_units"] is None
        and values["socket_path"] is None
        and values["confirm"] == "never"
        and values["confirm_command"] is None
    )


def check_limits(max_connections: int, max_per_process: int) -> None:
    """``--max-per-process`` within ``--max-connections`` (every mode checks it first)."""
    if max_per_process > max_connections:
        raise UsageProblem(
            f"must not exceed --max-connections ({max_connections})",
            invalid_value=True,
            param_hint="--max-per-process",
        )


def stdio_checks(
    login: bool, pin: str | None, pin_file: str | None, max_connections: int, max_per_process: int
) -> None:
    """The usage errors of ``--stdio`` found before anything starts."""
    import os

    check_limits(max_connections, max_per_process)
    if login and pin is None and pin_file is None and not os.environ.get("OPCARD_PIN"):
        raise UsageProblem(
            "--stdio cannot ask for the PIN (standard input is the protocol): give --pin-file "
            "or OPCARD_PIN with --login, or let the client log in"
        )


def serve_stdio(
    state: State,
    *,
    readers: tuple[str, ...],
    serials: tuple[str, ...],
    login: bool,
    pin: str | None,
    pin_file: str | None,
    log_level: str | None,
    poll: float,
    max_connections: int,
    max_per_process: int,
    frame_timeout: float,
    idle_timeout: float | None,
    confirmation: Confirmation | None = None,
    **_other_modes: Any,
) -> None:
    """``--stdio``: :func:`opcard.serve.stdio.serve_stdio`, the same function as ``python -m
    opcard.serve --stdio`` (the command line adds the PIN options, ``--confirm`` and its
    backend's cards in tests and embedders)."""
    import gc

    stdio_checks(login, pin, pin_file, max_connections, max_per_process)
    if state.reader:
        readers = (*readers, state.reader)
    if state.serial:
        serials = (*serials, state.serial)
    from opcard.cli.backend import PcscBackend, current
    from opcard.cli.pins import USER, read_pin
    from opcard.serve.errors import SocketError
    from opcard.serve.stdio import STDIO_LOG_LEVEL, collect_again, stdio_limits
    from opcard.serve.stdio import serve_stdio as serve

    def login_pin() -> str:
        return read_pin(USER, pin, pin_file, prompt="User PIN")

    def attach(registry: Registry) -> None:
        attach_backend_cards(registry, readers, serials)

    try:
        serve(
            readers,
            serials,
            log_level=log_level or STDIO_LOG_LEVEL,
            poll=poll,
            limits=stdio_limits(frame_timeout, idle_timeout),
            confirmation=confirmation,
            login_pin=login_pin if login or pin is not None or pin_file is not None else None,
            attach=None if isinstance(current(), PcscBackend) else attach,
            # opcard.cli.main turned the collector off for the start-up: on again when ready
            ready=None if gc.isenabled() else collect_again,
        )
    except SocketError as e:
        raise Failure(str(e)) from e


def attach_backend_cards(
    registry: Registry, readers: tuple[str, ...], serials: tuple[str, ...]
) -> None:
    """Attach the cards of the command line's backend (an embedder's or the tests') instead of
    watching the PC/SC readers."""
    from opcard.cli.backend import current

    backend = current()
    wanted: list[tuple[str | None, str | None]] = [(s, None) for s in serials]
    wanted += [(None, r) for r in readers]
    for serial, reader in wanted or [(None, None)]:
        registry.attach(backend.open_card(serial=serial, reader=reader))
