"""``opcard.errors.PinKind``, defined where it costs nothing to import.

:class:`opcard.session.Session` names the PIN each verification is about (for the error a
refusal becomes) without loading :mod:`opcard.errors` (about 40 exception classes and the CK_RV
table, about 2 ms), which is imported when an error is raised: ``opcard sign`` meets none. Use
it as :class:`opcard.errors.PinKind` (the same class).
"""

from __future__ import annotations

from enum import Enum, unique

__all__ = ["PinKind"]


@unique
class PinKind(Enum):
    """Which secret a :class:`~opcard.errors.PinError` is about (``exc.pin``)."""

    USER = "user PIN"
    ADMIN = "admin PIN"
    RESET_CODE = "reset code"

    @property
    def label(self) -> str:
        """``"user PIN"``, ``"admin PIN"``, ``"reset code"``."""
        return self.value

    @property
    def blocked_remedy(self) -> str:
        """What to do when this secret is blocked, in Python API calls."""
        return _BLOCKED_REMEDY[self]


_BLOCKED_REMEDY = {
    PinKind.USER: "unblock it with session.unblock_pin(new_pin, reset_code=code), or with "
    "session.unblock_pin(new_pin) after session.login_admin(admin_pin)",
    PinKind.ADMIN: "the admin PIN cannot be unblocked: only a factory reset "
    "(session.factory_reset(), which erases the keys) makes the card writable again",
    PinKind.RESET_CODE: "set a new one with session.set_reset_code(code) after "
    "session.login_admin(admin_pin) (the admin PIN also unblocks the user PIN)",
}
