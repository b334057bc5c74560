"""``python -m opcard.serve --stdio [options]``: the on-demand route's command, without the
command line's start-up (see :mod:`opcard.serve.stdio`)."""

import sys

from opcard.serve.stdio import main

sys.exit(main())
