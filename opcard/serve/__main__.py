"""``python -m opcard.serve --stdio [options]``: the on-demand route's command, without the
command line's start-up (see :mod:`opcard.serve.stdio`).

The garbage collector is off while the server starts: the start-up makes some 100 000
objects and frees next to none, and the collector's passes over them cost every on-demand
process about 2 ms (issue #15). It is back on, with what the start-up made frozen, before the
first request is read (:func:`opcard.serve.stdio.main`)."""

import gc
import sys

gc.disable()

from opcard.serve.stdio import main  # noqa: E402 (after the collector is off)

sys.exit(main(collector_off=True))
