"""Review of #15's start-up work: the on-demand server's fork and the PC/SC watchdog.

:func:`opcard.serve.activation.serve_in_a_child` forks only while no other thread runs (a fork
keeps the calling thread alone). Since 9690f18 the PC/SC watchdog thread is started with
``_thread``, which :func:`threading.active_count` does not count: a process that had used a
PC/SC card before serving (an embedder) forked anyway, and its serving child had no watchdog
(a card that does not answer was no longer bounded). Before, and again now, it does not fork.
Run in a child interpreter: a fork of the test process would end it.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import threading, time
from apdu.transport import pcsc
from opcard.serve.activation import serve_in_a_child

class Link:  # what the watchdog looks at: a deadline, expire() once it has passed
    def __init__(self):
        self.deadline = time.monotonic() - 1.0
        self.expired = threading.Event()
    def expire(self):
        self.expired.set()
        self.deadline = 0.0

link = Link()
pcsc._WATCHDOG.add(link)  # as every PC/SC connection of a card does
assert link.expired.wait(5), "the watchdog did not run"
pcsc._WATCHDOG.remove(link)
print(serve_in_a_child(), flush=True)
"""


def test_no_fork_while_the_pcsc_watchdog_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "False\n"  # not forked: the watchdog still bounds this process's calls


def test_fork_when_no_other_thread_runs() -> None:
    script = "from opcard.serve.activation import serve_in_a_child\nprint(serve_in_a_child())"
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "True\n"  # printed by the child; the started process exited at once
