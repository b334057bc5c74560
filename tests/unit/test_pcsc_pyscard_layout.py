"""apdu.transport.pcsc loads pyscard's C extension ``smartcard.scard._scard`` directly (issue
#15: pyscard's package ``__init__`` and SWIG's wrapper cost a command about 9 ms); a pyscard
without that extension (built otherwise, or a future layout) must still work, through its
public ``smartcard.scard`` module."""

from __future__ import annotations

import subprocess
import sys

BLOCKED = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    # the transport's direct import of the extension fails (as in a pyscard whose C part has
    # another name); pyscard's own modules then load as they would

    refused = False

    def find_spec(self, name, path=None, target=None):
        if name == "smartcard.scard._scard" and not Block.refused:
            Block.refused = True
            raise ImportError("no such extension in this pyscard")
        return None

sys.meta_path.insert(0, Block())
from apdu.transport import pcsc
import smartcard.scard
assert Block.refused
assert pcsc.scard is sys.modules["smartcard.scard"], pcsc.scard
# the public module's calls and constants, as the transport uses them
hr, ctx = pcsc.scard.SCardEstablishContext(pcsc.scard.SCARD_SCOPE_USER)
assert isinstance(hr, int)
if hr == pcsc.scard.SCARD_S_SUCCESS:
    pcsc.scard.SCardReleaseContext(ctx)
assert callable(pcsc.scard.SCardTransmit)
print("public module")
"""


def test_pyscard_without_the_extension_module() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "public module"


def test_the_extension_is_used_when_present() -> None:
    code = (
        "import sys\nfrom apdu.transport import pcsc\n"
        "assert pcsc.scard is sys.modules['smartcard.scard._scard']\n"
        "assert 'smartcard.scard.scard' not in sys.modules  # SWIG's wrapper not loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
