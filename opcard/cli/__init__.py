"""The ``opcard`` command line: status, certificates, keys, PINs, signatures.

The commands are click commands (:mod:`opcard.cli.app` and the modules it registers); only this
package imports click. :func:`main` is the console entry point: it first lets
:mod:`opcard.cli.fast` answer without importing click (help, completion, and the commands
whose work is in :mod:`opcard.cli.run`), and runs click for everything else. Exit codes:
:mod:`opcard.exitcodes`. Tests and embedders choose where cards come from with
:func:`opcard.cli.backend.use_backend`.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing is not imported at run time
if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line (exits the process with the command's exit code)."""
    # Like other command-line tools, end quietly when the reader of our output goes away
    # (`opcard status | head`) instead of reporting a broken pipe as an error. Through
    # _signal, the C half of signal: the signal module would add its enums (enum, functools,
    # collections: about 2 ms, a fifth of Python's start) to `opcard --help` and completion.
    try:
        signals = __import__("_signal")
    except ImportError:  # an interpreter without CPython's C half
        import signal as signals
    if hasattr(signals, "SIGPIPE"):
        signals.signal(signals.SIGPIPE, signals.SIG_DFL)

    # The garbage collector off while the command starts: the imports make tens of thousands
    # of objects that live to the end and free next to none, and the collector's passes over
    # them cost about 2 ms (issue #15). The commands opcard.cli.fast runs are short and free
    # what they make by reference counting; `serve --stdio` turns it back on when it is ready
    # to serve (opcard.serve.stdio.collect_again), and click's commands run with it on.
    import gc

    collecting = gc.isenabled()
    gc.disable()
    args = list(argv) if argv is not None else sys.argv[1:]
    from opcard.cli.fast import main as fast

    try:
        code = fast(args)
    finally:
        if collecting and argv is not None:  # called in-process (tests, embedders): as it was
            gc.enable()
    if code is not None:
        sys.exit(code)
    if collecting:
        gc.enable()
    from opcard.cli.app import cli

    cli.main(args=args, prog_name="opcard")
