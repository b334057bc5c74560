"""OpenSC for reference: pkcs11-tool and pkcs15-tool, one process per operation.

Runs with any Python 3.11 (stdlib only). ``--opensc-conf`` is a private OPENSC_CONF made by
peers.py (PC/SC driver, the other vpcd reader in ``ignored_readers``, no file caching).
Each phase is one tool process, timed from outside (process start, OpenSC's card detection
and PKCS#15 emulation included):

list   = ``pkcs11-tool --module opensc-pkcs11.so -O`` (objects of the first token: OpenSC
         shows the card as two tokens, "(User PIN)" with DEC and AUT, "(User PIN (sig))")
export = ``pkcs15-tool --reader R --read-certificate 03``
login  = ``pkcs11-tool --slot 0 --login --pin PW1 --sign -m ECDSA|RSA-PKCS --id 03``: ONE
         signature incl. card detection and PIN, no loop (a PKCS#11 session that stays open
         would need a PKCS#11 binding for Python; out of scope for a reference row).
"""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
from pathlib import Path

from _common import PW1, Worker, auth_input


def main() -> None:
    w = Worker("opensc", __doc__ or "")
    module = w.args.pkcs11_module or "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
    env = dict(os.environ, OPENSC_CONF=w.args.opensc_conf, LC_ALL="C")

    def run(*argv: str) -> bytes:
        proc = subprocess.run(argv, env=env, capture_output=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} exited {proc.returncode}: "
                f"{proc.stderr.decode(errors='replace')[-500:]}"
            )
        return proc.stdout

    info = subprocess.run(["opensc-tool", "--info"], env=env, capture_output=True)
    w.result["version"] = (info.stdout.decode(errors="replace").splitlines() or ["?"])[0]

    if "list" in w.phases:
        with w.phase("list") as out:
            listing = run("pkcs11-tool", "--module", module, "-O").decode(errors="replace")
        out["found"] = {
            "keys": listing.count("Public Key Object"),
            "certificates": listing.count("Certificate Object"),
        }

    if "export" in w.phases:
        with w.phase("export") as out:
            pem = run("pkcs15-tool", "--reader", w.args.reader, "--read-certificate", "03")
        body = b"".join(line for line in pem.splitlines() if line and not line.startswith(b"-----"))
        out["cert_der"] = base64.b64decode(body).hex()

    if "sign" in w.phases:
        mechanism = "ECDSA" if w.args.variant == "ecc" else "RSA-PKCS"
        with tempfile.TemporaryDirectory() as tmp:
            data, sig = Path(tmp, "in"), Path(tmp, "sig")
            data.write_bytes(auth_input(w.args.variant))
            with w.phase("login") as out:
                run(
                    "pkcs11-tool", "--module", module, "--slot", "0", "--login",
                    "--pin", PW1, "--sign", "-m", mechanism, "--id", "03",
                    "-i", str(data), "-o", str(sig),
                )  # fmt: skip
            out["first_signature"] = sig.read_bytes().hex()
        w.note("OpenSC: one pkcs11-tool process per signature; no measured loop")
    w.emit()


if __name__ == "__main__":
    main()
