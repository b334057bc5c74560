"""``opcard serve``: OpenPGP cards as PKCS#11 tokens for every application, through p11-kit.

A server for p11-kit's RPC protocol (versions 0 to 2) on a Unix socket: applications load
p11-kit's client module (``p11-kit-client.so``) with ``P11_KIT_SERVER_ADDRESS`` pointing at
the socket, and use the cards the daemon owns — one slot per card, one login shared by all
clients, card access serialised. See docs/serve.md.

Modules: :mod:`~opcard.serve.wire` (the wire format), :mod:`~opcard.serve.functions` (the
PKCS#11 functions), :mod:`~opcard.serve.slots` (cards, logins, locks),
:mod:`~opcard.serve.server` (socket, peers, threads), :mod:`~opcard.serve.pcsc` (cards
coming and going in PC/SC readers).
"""

from __future__ import annotations

__all__: list[str] = []
