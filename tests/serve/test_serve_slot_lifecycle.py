"""A slot's card and session over its life in the registry (in process, emulated cards):

- the daemon's session on a card is made when first used, not when the card is attached
  (issue #15: the on-demand server's first C_GetSlotList does not load opcard.session), and
  making it sends nothing to the card; a session never made is not logged out at detach;
- detaching with a grace period (what closing the registry does) leaves the slot's lock free:
  it was left held by the closing thread, so that any other thread wanting the slot after
  the close waited for ever.
"""

from __future__ import annotations

import threading

from serve_support import PW1, emulated_card

from opcard.serve.slots import Registry


def test_the_session_is_made_when_first_used() -> None:
    ec = emulated_card("demo-rsa")
    registry = Registry()
    slot = registry.attach(ec.card)
    sent = len(ec.sent)
    assert slot.present and slot.made_session is None and not slot.logged_in
    session = slot.session
    assert session is not None and slot.made_session is session and slot.session is session
    assert len(ec.sent) == sent  # making it sent nothing
    slot.login_operator(PW1)
    assert slot.logged_in and slot.session is session
    registry.detach(slot.slot_id)
    assert slot.made_session is None and slot.session is None and not slot.logged_in


def test_a_session_never_made_is_not_logged_out() -> None:
    ec = emulated_card("demo-rsa")
    registry = Registry()
    slot = registry.attach(ec.card)
    sent = len(ec.sent)
    registry.detach(slot.slot_id)
    assert len(ec.sent) == sent  # no VERIFY FF: nothing was verified, no session was made
    assert not slot.present


def test_detach_with_a_grace_period_leaves_the_lock_free() -> None:
    ec = emulated_card("demo-rsa")
    registry = Registry()
    slot = registry.attach(ec.card)
    slot.login_operator(PW1)
    registry.close(grace=1.0)  # detach(grace=...) of every slot
    assert not slot.present
    got: list[bool] = []
    other = threading.Thread(target=lambda: got.append(slot.lock.acquire(timeout=2)))
    other.start()
    other.join()
    assert got == [True]
