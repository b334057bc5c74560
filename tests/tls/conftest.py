"""Fixtures of the TLS tests: the certificates, server factories that always stop their
servers, and emulated cards (see tls_support.py).

The root conftest's helpers are imported inside the fixtures: at the top of this file,
``from conftest import …`` would import this file itself."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tls_support import DEMO_CA, CardRig, GnutlsServer, OpenSslServer, Pki, make_card


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    from conftest import require_module

    require_module("opcard.tls")  # needs tlslite-ng (the "tls" extra)
    return Pki.create(tmp_path_factory.mktemp("tls-pki"))


StartOpenSsl = Callable[..., OpenSslServer]


@pytest.fixture
def openssl_server(pki: Pki, tmp_path: Path) -> Iterator[StartOpenSsl]:
    """Factory: ``openssl_server(cafile=<demo CA>, credentials=pki.server, mode="-www",
    extra=())`` → a started ``openssl s_server`` on 127.0.0.1 requiring a client certificate
    (``-Verify 1``). Every server is stopped at the end of the test."""
    from conftest import require_tool

    openssl = require_tool("openssl")
    started: list[OpenSslServer] = []

    def start(
        *,
        cafile: Path | None = None,
        credentials: Any = None,
        mode: str = "-www",
        extra: tuple[str, ...] = (),
    ) -> OpenSslServer:
        creds = credentials or pki.server
        server = OpenSslServer(
            openssl,
            tmp_path / f"s_server-{len(started)}.log",
            cert=creds.cert,
            key=creds.key,
            cafile=cafile or DEMO_CA,
            mode=mode,
            extra=extra,
        )
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()


StartGnutls = Callable[..., GnutlsServer]


@pytest.fixture
def gnutls_server(pki: Pki, tmp_path: Path) -> Iterator[StartGnutls]:
    """Factory: ``gnutls_server(extra=())`` → a started ``gnutls-serv --require-client-cert
    --verify-client-cert`` (echo mode) in a network namespace of its own; stopped at the end."""
    from conftest import in_ci, require_tool

    gnutls_serv = require_tool("gnutls-serv")
    unshare = require_tool("unshare")
    require_tool("ip")
    if os.geteuid() != 0:
        message = "gnutls-serv runs in a network namespace of its own: that needs root"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    started: list[GnutlsServer] = []

    def start(*, extra: tuple[str, ...] = ("--echo",)) -> GnutlsServer:
        server = GnutlsServer(
            unshare,
            gnutls_serv,
            tmp_path / f"gnutls-serv-{len(started)}.log",
            cert=pki.server.cert,
            key=pki.server.key,
            cafile=DEMO_CA,
            extra=extra,
        )
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()


MakeCard = Callable[..., CardRig]


@pytest.fixture
def card_rig() -> Iterator[MakeCard]:
    """Factory ``card_rig(variant="demo-ecc", profile="extended")`` → :class:`CardRig`."""
    made: list[CardRig] = []

    def make(variant: str = "demo-ecc", profile: str = "extended") -> CardRig:
        rig = make_card(variant, profile)
        made.append(rig)
        return rig

    try:
        yield make
    finally:
        for rig in made:
            rig.card.close()
