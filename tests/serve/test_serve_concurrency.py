"""Eight client processes signing at once through one daemon: OpenSC's pkcs11-tool loading
p11-kit's client module, against two emulated cards (RSA and ECC) behind ``opcard serve``
started with the PIN (``--login``): every signature verifies, none fails."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path

from conftest import require_tool
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from serve_support import Served

DIGEST_INFO_SHA256 = bytes.fromhex("3031300d060960864801650304020105000420")
ROUNDS = 3  # signatures per process


def test_eight_processes_sign_at_once(
    served: Callable[..., Served], p11_client: str, tmp_path: Path
) -> None:
    tool = require_tool("pkcs11-tool")
    s = served("demo-rsa", "demo-ecc", login=True)
    jobs = []
    for n in range(8):
        index = n % 2  # even: the RSA card, odd: the ECC card
        key = ("sig", "aut")[(n // 2) % 2]
        key_id = {"sig": "01", "aut": "03"}[key]
        work = tmp_path / f"p{n}"
        work.mkdir()
        script = []
        for r in range(ROUNDS):
            message = f"process {n} round {r}".encode()
            digest = hashlib.sha256(message).digest()
            data = DIGEST_INFO_SHA256 + digest if index == 0 else digest
            (work / f"in{r}").write_bytes(data)
            mechanism = "RSA-PKCS" if index == 0 else "ECDSA"
            script.append(
                f"{tool} --module {p11_client} --slot-index {index} --sign --id {key_id} "
                f"-m {mechanism} --input-file {work}/in{r} --output-file {work}/sig{r} || exit 1"
            )
        jobs.append((n, index, key, work, subprocess.Popen(
            ["/bin/sh", "-c", "\n".join(script)], env=s.env(), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )))  # fmt: skip
    for n, index, key, work, proc in jobs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, f"process {n}: {out.decode(errors='replace')}"
        public = s.cards[index].demo[key].public
        for r in range(ROUNDS):
            message = f"process {n} round {r}".encode()
            signature = (work / f"sig{r}").read_bytes()
            if index == 0:
                public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            else:
                half = len(signature) // 2
                der = encode_dss_signature(
                    int.from_bytes(signature[:half]), int.from_bytes(signature[half:])
                )
                public.verify(der, message, ec.ECDSA(hashes.SHA256()))
    # every signature came from the cards: one signing APDU each (PSO:CDS 2A or INT AUTH 88)
    signing = sum(
        1 for card in s.cards for apdu in card.sent if apdu[1] == 0x88 or apdu[1:3] == b"\x2a\x9e"
    )
    assert signing == 8 * ROUNDS
