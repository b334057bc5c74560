"""The ``opcard`` command line (click): status, certificates, keys, PINs, signatures.

Only this package imports click. :func:`main` is the console entry point; the commands live
in :mod:`opcard.cli.app` and the modules it registers. Exit codes: :mod:`opcard.exitcodes`.
Tests and embedders choose where cards come from with :func:`opcard.cli.backend.use_backend`.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line (exits the process with the command's exit code)."""
    import signal

    from opcard.cli.app import cli

    # Like other command-line tools, end quietly when the reader of our output goes away
    # (`opcard status | head`) instead of reporting a broken pipe as an error.
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)

    cli.main(args=list(argv) if argv is not None else None, prog_name="opcard")
