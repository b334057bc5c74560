"""Sessions: login state, objects, private key operations, writes, and the fast signature path.

A :class:`Session` is a context manager over a :class:`~opcard.card.Card`. ``login(pin)``
verifies the user PIN once (PW1 as 82, which INTERNAL AUTHENTICATE, PSO:DECIPHER and the
private DOs need); the signature key's PW1-as-81 verification is made when first needed and
again only when the card's C4 policy says PW1 is valid for one signature. What the session has
verified, and the PINs it keeps, are one :class:`LoginState` (``session.login_state``). The
session keeps a PIN in memory (unless told not to: ``login(pin, keep_pin=False)``) to verify it
again — for PW1 as 81, and when the card forgot a verification (it was reset or re-inserted,
another program's SELECT) — and for nothing else: it never sends a PIN again after the card
refused it, and it forgets it at logout or when the session ends.

Every private key operation goes one way: :meth:`Session.perform` picks the card command of the
operation (PSO:CDS for the SIG key, INTERNAL AUTHENTICATE for AUT, PSO:DECIPHER for DEC) and
the PIN verification it needs from one table, and sends it through the applet
(:class:`~apdu.openpgp.applet.OpenPgpApplet`). The fast path (:meth:`Session.digest_signer`) is
that same way and costs one APDU per signature after login: no SELECT, no GET DATA, no
re-reading of the application data, no PC/SC transaction.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping

from apdu import errors as apdu_errors
from apdu.openpgp import commands as cmds
from apdu.openpgp.applet import OpenPgpApplet
from apdu.openpgp.constants import (
    PRIVATE_DOS,
    Do,
    ExtendedCapability,
    KeySlot,
    Pw,
    Secret,
    UifMode,
)
from apdu.openpgp.kdf import kdf_off, new_kdf_do
from apdu.openpgp.keys import ec_import_template, rsa_import_template
from apdu.openpgp.objects import AlgorithmAttributes, EcAttributes, RsaAttributes, Uif
from opcard import arguments
from opcard._pinkind import PinKind
from opcard._translate import translated
from opcard.pkcs11.basic import ObjectClass, UserType
from opcard.pkcs11.keytype import KeyType
from opcard.pkcs11.mechanisms import (
    CardOperation,
    KeyInfo,
    SignInput,
    ecdsa_raw_to_der,
    prepare_digest_sign_input,
    prepare_sign_input,
    signing_operation,
)
from opcard.publickeys import (
    RSA_SIZES,
    CardPublicKey,
    KeyAlgorithm,
    attributes_for,
    parse_algorithm,
)

TYPE_CHECKING = False  # typing is not imported at run time (with re: ~3.5 ms: issue #15)

if TYPE_CHECKING:
    from typing import Literal, TypeAlias, overload

    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

    #: The private key types an OpenPGP card takes.
    ImportableKey: TypeAlias = (
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | x25519.X25519PrivateKey
    )
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

    from opcard.card import Card, CardFeatures, TokenInfo
    from opcard.objects import CardObject, Certificate, DataObject, PrivateKey, PublicKey
    from opcard.pkcs11.constants import Mechanism
    from opcard.pkcs11.uri import Pkcs11Uri

__all__ = [
    "DigestSigner",
    "LoginState",
    "Session",
    "algorithm_attributes",
    "load_private_key",
    "require_feature",
]


class LoginState:
    """What a session has verified on the card, and the PINs it keeps to verify them again.

    - ``user``: the user PIN is verified as PW1 82 (:meth:`Session.login`): decryption, ECDH,
      INTERNAL AUTHENTICATE (the AUT key), private DOs 1 and 3.
    - ``signing``: the user PIN is verified as PW1 81, which PSO:COMPUTE DIGITAL SIGNATURE (the
      SIG key) needs. The session makes it when first needed, and again before each signature
      where the card's PW status (C4) says PW1 is valid for one signature only.
    - ``admin``: the admin PIN is verified (PW3; :meth:`Session.login_admin`): every write.

    The PINs are kept in memory (unless the login said ``keep_pin=False``) to verify again: PW1
    as 81, and after the card forgot a verification (reset, re-inserted, another program's
    SELECT). They are never shown: not in ``repr()``, a message or a log. :meth:`forget` drops
    one PIN and what it verified (the card refused it, it was changed), :meth:`reset` all of
    them (logout, end of the session, KDF switched, factory reset).
    """

    __slots__ = ("_admin_pin", "_user_pin", "admin", "signing", "user")

    def __init__(self) -> None:
        self.user = False
        self.signing = False
        self.admin = False
        self._user_pin: bytes | None = None
        self._admin_pin: bytes | None = None

    def verified(self, pw: Pw, pin: bytes | None) -> None:
        """``pw`` was verified; ``pin`` is kept to verify again (None: nothing kept)."""
        if pw is Pw.PW3:
            self.admin, self._admin_pin = True, pin
        elif pw is Pw.PW1:
            self.signing = True  # the same user PIN: what is kept does not change
        else:
            self.user, self._user_pin = True, pin

    def _kept_pin(self, pw: Pw) -> bytes | None:
        """The PIN kept for ``pw`` (PW1 81 and 82 are the same user PIN), or None. Private:
        only the session reads it, to send it to the card."""
        return self._admin_pin if pw is Pw.PW3 else self._user_pin

    def forget(self, pw: Pw) -> None:
        """Forget the PIN of ``pw`` and what it verified (PW1: both 81 and 82)."""
        if pw is Pw.PW3:
            self.admin, self._admin_pin = False, None
        else:
            self.user = self.signing = False
            self._user_pin = None

    def reset(self) -> None:
        """Forget everything: nothing verified, no PIN kept."""
        self.forget(Pw.PW1)
        self.forget(Pw.PW3)

    def __repr__(self) -> str:
        held = [name for name, pin in (("user", self._user_pin), ("admin", self._admin_pin)) if pin]
        verified = [name for name in ("user", "signing", "admin") if getattr(self, name)]
        return (
            f"<LoginState verified={'+'.join(verified) or 'nothing'} "
            f"pins_kept={'+'.join(held) or 'none'}>"
        )

    __str__ = __repr__


#: The call a message about a PIN's type shows, per secret.
_PIN_CALLS = {
    Secret.PW1: "session.login('123456')",
    Secret.PW3: "session.login_admin('12345678')",
    Secret.RESET_CODE: "session.set_reset_code('12345678')",
}


def _pin_bytes(pin: str | bytes, secret: Secret, what: str) -> bytes:
    pin = arguments.pin(pin, what, _PIN_CALLS[secret])  # an int: TypeError, nothing sent
    value = pin.encode("utf-8") if isinstance(pin, str) else bytes(pin)
    kind = _SECRET_KIND[secret]
    if len(value) < secret.minimum_length:
        from opcard.errors import PinFormatError

        raise PinFormatError(
            f"the {what} must be at least {secret.minimum_length} characters; nothing was sent "
            "to the card",
            pin=kind,
        )
    if len(value) > secret.maximum_length:
        from opcard.errors import PinFormatError

        raise PinFormatError(f"the {what} is too long; nothing was sent to the card", pin=kind)
    return value


_SECRET_KIND = {
    Secret.PW1: PinKind.USER,
    Secret.PW3: PinKind.ADMIN,
    Secret.RESET_CODE: PinKind.RESET_CODE,
}


_PIN_NAMES = {Secret.PW1: "user PIN", Secret.PW3: "admin PIN", Secret.RESET_CODE: "reset code"}

#: Which secret a PIN status word is about, by the PW reference of the command.
_PIN_KIND = {Pw.PW1: PinKind.USER, Pw.PW1_OTHER: PinKind.USER, Pw.PW3: PinKind.ADMIN}


#: Feature (a :class:`~opcard.card.CardFeatures` field) → what messages call it.
_FEATURE_TEXT = {
    "kdf": "the PIN KDF (KDF-DO)",
    "reset_code": "the reset code",
    "private_dos": "private DOs (0101-0104)",
    "attestation": "attestation",
    "signature_counter": "the signature counter",
    "key_import": "key import",
}


def require_feature(card: Card, feature: str, what: str | None = None) -> None:
    """Raise :class:`NotSupportedByCardError` ("… is not supported by this card") when the card
    does not declare ``feature`` (a :class:`~opcard.card.CardFeatures` field). Reads only what
    the card declares (:meth:`~opcard.card.Card.supports`: the cached 6E, except for the
    signature counter and FA): call it before asking for a PIN."""
    if not card.supports(feature):
        text = what or _FEATURE_TEXT.get(feature, feature)
        from opcard.errors import NotSupportedByCardError

        raise NotSupportedByCardError(f"{text} is not supported by this card", feature)


def algorithm_attributes(
    card: Card, slot: KeySlot, algorithm: KeyAlgorithm
) -> AlgorithmAttributes | None:
    """The algorithm attributes to write into ``slot`` for ``algorithm``; None when the slot
    already declares it. Reads only (cached 6E, FA once): nothing is written, no PIN is asked.

    Where the card publishes its algorithm information (FA), an algorithm it does not list
    there is refused (:class:`~opcard.publickeys.UnsupportedKeyError`, naming what it lists)
    and the attributes are the card's own entry. Where it does not publish FA, nothing is
    refused on a guess: the attributes are built in the format the card uses in its current
    C1-C3 (:func:`apdu.openpgp.quirks.in_card_format`, as GnuPG) and the card is asked by
    writing them (:meth:`Session.set_algorithm`). A card whose C0 says the algorithm
    attributes cannot be changed refuses any other algorithm than the slot's
    (:class:`NotSupportedByCardError`), as GnuPG does.
    """
    from apdu.openpgp import quirks

    if algorithm.curve is None and algorithm.bits not in RSA_SIZES:
        from opcard.errors import UnsupportedKeyError

        raise UnsupportedKeyError(
            f"RSA-{algorithm.bits}: OpenPGP cards take RSA 2048, 3072 or 4096 (nothing was written)"
        )
    wanted = attributes_for(algorithm, decryption=slot is KeySlot.DEC)
    ard = card.application_data()
    current = ard.attributes(slot)
    if _same_algorithm(current, wanted):
        return None
    caps = ard.extended_capabilities
    if caps is not None and not caps.flags & ExtendedCapability.ALGORITHM_ATTRIBUTES_CHANGEABLE:
        held = card.algorithm(slot)
        from opcard.errors import NotSupportedByCardError

        raise NotSupportedByCardError(
            f"this card cannot change the algorithm of a key slot (its extended capabilities "
            f"say so): the {slot.name} slot takes {held.name if held else 'its current one'}, "
            f"not {algorithm.name}",
            "algorithm_attributes_changeable",
        )
    listed = card.supported_algorithms()
    if listed is not None:
        names = ", ".join(dict.fromkeys(a.name for a in listed.get(slot, ()))) or "none"
        exact = card.listed_attributes(slot, algorithm)
        if exact is None or algorithm not in listed.get(slot, ()):
            from opcard.errors import UnsupportedKeyError

            raise UnsupportedKeyError(
                f"this card does not support {algorithm.name} in the {slot.name} slot "
                f"(it supports: {names})"
            )
        return exact
    return quirks.in_card_format(wanted, current)


class Session:
    """A session with the card: login state, objects, operations. Use it as a context manager;
    leaving it logs out (the card forgets the verified PINs) and forgets the PINs."""

    def __init__(self, card: Card) -> None:
        self.card = card
        #: What this session has verified and the PINs it keeps (:class:`LoginState`).
        self.login_state = LoginState()
        #: Tries left per PIN (Secret) when this session's login was accepted, as the cached C4
        #: says (no I/O): a kept PIN is not sent again once the card's counter is lower.
        self._tries_at_login: dict[Secret, int] = {}
        self._closed = False

    @property
    def user_logged_in(self) -> bool:
        """The user PIN is verified (:meth:`login`)."""
        return self.login_state.user

    @property
    def so_logged_in(self) -> bool:
        """The admin PIN is verified (:meth:`login_admin`)."""
        return self.login_state.admin

    # -- lifetime -----------------------------------------------------------------------------

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Log out (best effort) and forget the PINs."""
        if self._closed:
            return
        self._closed = True
        try:
            self.logout()
        except Exception as e:  # (opcard.errors: imported when something failed)
            from opcard.errors import OpcardError

            if not isinstance(e, OpcardError):
                raise

    def token_info(self) -> TokenInfo:
        return self.card.token_info()

    def features(self) -> CardFeatures:
        """What the card declares it can do (:meth:`opcard.card.Card.features`)."""
        return self.card.features()

    def __repr__(self) -> str:
        state = "user" if self.login_state.user else "public"
        if self.login_state.admin:
            state += "+so"
        return f"<Session {state} on {self.card!r}>"

    # -- PINs ---------------------------------------------------------------------------------

    def login(
        self, pin: str | bytes, user_type: UserType = UserType.USER, *, keep_pin: bool = True
    ) -> None:
        """Verify the user PIN (``UserType.USER``, PW1 as 82) or the admin PIN (``UserType.SO``,
        PW3). A wrong PIN raises :class:`WrongPinError` with the tries left; exactly one try is
        used.

        The session keeps the PIN in memory (never in a repr, a message or a log) to verify it
        again when needed: the user PIN as PW1 81 before signing with the SIG key (before each
        signature where the card's C4 says PW1 is valid for one signature), and either PIN once
        after the card forgot its verification (reset or re-inserted, another program's
        SELECT). It is dropped at :meth:`logout`, when the session ends, and as soon as the card
        refuses it (a PIN is never sent again after a refusal).

        ``keep_pin=False`` keeps nothing: the user PIN is then verified for signing too (PW1
        81, one more VERIFY, no try used), and when the card forgets a verification — or its
        C4 wants the PIN before each signature — the session raises
        :class:`~opcard.errors.NotLoggedInError`: log in again."""
        state = self.login_state
        if user_type is UserType.SO:
            value = _pin_bytes(pin, Secret.PW3, "admin PIN")
            self._verify(Pw.PW3, value, "admin PIN")
            state.verified(Pw.PW3, value if keep_pin else None)
            self._note_tries(Secret.PW3)
            return
        value = _pin_bytes(pin, Secret.PW1, "user PIN")
        self._verify(Pw.PW1_OTHER, value, "user PIN")
        self._note_tries(Secret.PW1)
        state.forget(Pw.PW1)  # a new login: PW1 81 is verified again when needed
        state.verified(Pw.PW1_OTHER, value if keep_pin else None)
        if not keep_pin:
            self._verify(Pw.PW1, value, "user PIN")
            state.signing = True

    def login_admin(self, pin: str | bytes, *, keep_pin: bool = True) -> None:
        """Verify the admin PIN (PW3): needed for every write. The session keeps it to verify
        it again once when the card forgot it (see :meth:`login`; ``keep_pin=False``: not)."""
        self.login(pin, UserType.SO, keep_pin=keep_pin)

    def _verify(self, pw: Pw, value: bytes, what: str, *, held: bool = False) -> None:
        """VERIFY ``pw``. When the card refuses it, the session forgets the PIN (it is never
        sent again). ``held``: the PIN is one the card accepted before; when the card was reset
        or re-inserted the VERIFY did not reach it, and it is sent once more after the
        reconnect. Transport failures keep the login state (the PIN was not refused)."""
        self.card.prepare_pin()
        with translated(what, _PIN_KIND[pw]):
            try:
                try:
                    self.card.applet.verify(pw, value)
                except apdu_errors.CardRemovedError:
                    if not held:
                        raise
                    self.card.applet.verify(pw, value)  # the channel reconnects, re-selects
            except apdu_errors.CardStatusError:
                self.login_state.forget(pw)
                self.card.pin_tried(pw, accepted=False)
                raise
        self.card.pin_tried(pw, accepted=True)

    def logout(self) -> None:
        """The card forgets the verified PINs (VERIFY P1=FF) and the session forgets them."""
        state = self.login_state
        was_user, was_so = state.user or state.signing, state.admin
        state.reset()
        # cards without VERIFY P1=FF refuse it: the verification ends with the card session
        with (
            translated("logout"),
            contextlib.suppress(apdu_errors.CardStatusError),
            self.card.channel.transaction(),
        ):
            if was_user:
                self.card.applet.unverify(Pw.PW1)
                self.card.applet.unverify(Pw.PW1_OTHER)
            if was_so:
                self.card.applet.unverify(Pw.PW3)

    def pin_status(self) -> dict[str, int]:
        """Tries left for the user PIN, the reset code and the admin PIN (fresh from C4)."""
        with translated("PIN status"):
            status = self.card.applet.get_pw_status()
        return {
            "user": status.retries_pw1,
            "reset_code": status.retries_reset_code,
            "admin": status.retries_pw3,
        }

    def pw1_valid_for_several(self) -> bool:
        """The card's C4 says PW1 (81) stays valid for several signatures (cached: no I/O)."""
        pw = self.card.pw_status()
        return pw is None or pw.pw1_valid_for_several_signatures

    def _ensure(self, pw: Pw) -> None:
        """Make sure ``pw`` is verified on the card, verifying PW1 as 81 with the kept PIN."""
        state = self.login_state
        if pw is Pw.PW3:
            if not state.admin:
                from opcard.errors import NotLoggedInError

                raise NotLoggedInError.needs(PinKind.ADMIN)
            return
        if not state.user:
            from opcard.errors import NotLoggedInError

            raise NotLoggedInError.needs(PinKind.USER)
        if pw is Pw.PW1 and not state.signing:
            pin = state._kept_pin(Pw.PW1)
            if pin is None:
                from opcard.errors import NotLoggedInError

                raise NotLoggedInError(
                    "signing with the SIG key needs the user PIN again (the card's PW1 policy) "
                    "and this session did not keep it (keep_pin=False): log in again with "
                    "session.login(pin)",
                    pin=PinKind.USER,
                )
            self._verify(Pw.PW1, pin, "user PIN", held=True)
            state.verified(Pw.PW1, pin)

    def _note_tries(self, secret: Secret) -> None:
        """Remember the tries left for ``secret`` after a login the card accepted: from the
        cached C4 (no I/O; read before the login, so at most what the card has now)."""
        status = self.card.pw_status()
        if status is not None:
            self._tries_at_login[secret] = status.retries(secret)

    def _check_tries(self, pw: Pw) -> None:
        """Before a kept PIN goes to the card again (GET DATA C4, one APDU, only on this rare
        path): when its retry counter is lower than at our login, some program was refused a
        PIN since — most likely the PIN was changed while this session kept the old one, and
        every process keeping it would use a try until the PIN blocks. Then the session
        forgets the PIN and raises :class:`NotLoggedInError`: nothing is sent."""
        secret = Secret.for_pw(pw)
        before = self._tries_at_login.get(secret)
        if before is None:
            return
        with translated("reading the PIN status (C4)"):
            now = self.card.applet.get_pw_status().retries(secret)
        if now >= before:
            return
        kind = _PIN_KIND[pw]
        self.login_state.forget(pw)
        self.card.pin_tried(pw, accepted=False)  # C4 is read again for tries/flags
        from opcard.errors import NotLoggedInError

        raise NotLoggedInError(
            f"the card forgot this session's {kind.label} verification and its retry "
            f"counter went down from {before} to {now} since the login: some program was "
            "refused a PIN (was it changed?). The kept PIN was not sent again (no try used); "
            "log in again",
            pin=kind,
        )

    def _reverify(self, pw: Pw) -> bool:
        """After 6982 on an operation: verify again with the PIN we hold (it was right before:
        the card was reset or another process dropped the verification), unless the card's
        retry counter went down since our login (:meth:`_check_tries`). False when we hold no
        PIN for it."""
        pin = self.login_state._kept_pin(pw)
        if pin is None:
            return False
        self._check_tries(pw)
        self._verify(pw, pin, "admin PIN" if pw is Pw.PW3 else "user PIN", held=True)
        self.login_state.verified(pw, pin)
        return True

    def change_pin(self, old: str | bytes, new: str | bytes, *, admin: bool = False) -> None:
        secret = Secret.PW3 if admin else Secret.PW1
        name = _PIN_NAMES[secret]
        old_b, new_b = _pin_bytes(old, secret, name), _pin_bytes(new, secret, f"new {name}")
        pw = Pw.PW3 if admin else Pw.PW1
        self.card.prepare_pin()
        accepted = False
        try:
            with translated(name, PinKind.ADMIN if admin else PinKind.USER):
                self.card.applet.change_pin(pw, old_b, new_b)
            accepted = True
        finally:
            self.card.pin_tried(pw, accepted=accepted)  # the old PIN's counter, as a VERIFY
            self.card.invalidate()
        self.login_state.forget(pw)

    def unblock_pin(self, new: str | bytes, *, reset_code: str | bytes | None = None) -> None:
        """A new user PIN with the reset code, or (without it) after the admin PIN."""
        new_b = _pin_bytes(new, Secret.PW1, "new user PIN")
        code = (
            None if reset_code is None else _pin_bytes(reset_code, Secret.RESET_CODE, "reset code")
        )
        if code is not None:
            require_feature(self.card, "reset_code")
        if code is None:
            self._ensure(Pw.PW3)
        self.card.prepare_pin()
        try:
            with translated(
                "reset code" if code else "unblock user PIN",
                PinKind.RESET_CODE if code is not None else PinKind.ADMIN,
            ):
                self.card.applet.reset_retry_counter(new_b, reset_code=code)
        finally:
            self.card.invalidate()

    def set_reset_code(self, code: str | bytes | None) -> None:
        """Set the reset code (PUT DATA D3, admin PIN), or delete it with None. A card without
        a reset code raises :class:`NotSupportedByCardError` before anything is sent."""
        require_feature(self.card, "reset_code")
        value = None if code is None else _pin_bytes(code, Secret.RESET_CODE, "reset code")
        self.card.prepare_pin()
        self._write(lambda: self.card.applet.set_reset_code(value), "set reset code")

    # -- objects ------------------------------------------------------------------------------

    def objects(self) -> list[CardObject]:
        from opcard.objects import card_objects

        with translated("reading the card's objects"):
            return list(card_objects(self))

    def find_objects(
        self, template: Mapping[int, object] | None = None, **kwargs: object
    ) -> Iterator[CardObject]:
        """Objects matching every attribute of ``template`` (``{Attribute.CLASS: …}``) and of
        the keyword shortcuts ``object_class=``, ``id=``, ``label=``."""
        from opcard.objects import card_objects
        from opcard.pkcs11.constants import Attribute
        from opcard.pkcs11.template import matches_template, normalise_template

        wanted: dict[int, object] = dict(template or {})
        if "object_class" in kwargs:  # ObjectClass, its number or name ("certificate")
            wanted[Attribute.CLASS] = arguments.object_class(kwargs.pop("object_class"))
        if "id" in kwargs:  # bytes, or the slot's number (3: b"\x03")
            wanted[Attribute.ID] = arguments.key_id(kwargs.pop("id"))
        if "label" in kwargs:
            wanted[Attribute.LABEL] = kwargs.pop("label")
        if kwargs:
            raise TypeError(f"unknown keyword(s): {', '.join(kwargs)}")
        normalised = normalise_template(wanted)  # a value of the wrong type: TypeError
        object_class = normalised.get(Attribute.CLASS)
        classes = None if not isinstance(object_class, int) else frozenset({object_class})
        slots = None
        obj_id = normalised.get(Attribute.ID)
        if isinstance(obj_id, bytes) and len(obj_id) == 1:
            slots = frozenset({obj_id[0]})
        with translated("reading the card's objects"):
            for obj in card_objects(self, classes, slots):
                if matches_template(normalised, obj.__getitem__):
                    yield obj

    def find_uri(self, uri: Pkcs11Uri | str) -> list[CardObject]:
        """The objects a ``pkcs11:`` URI names (RFC 7512 matching): none when its token
        attributes do not match this card, else the objects matching its ``object``, ``type``
        and ``id`` (all objects when it names none). A malformed URI raises
        :class:`~opcard.errors.UriError`."""
        from opcard.pkcs11.uri import Pkcs11Uri  # not loaded to sign (2 ms)

        parsed = Pkcs11Uri.parse(uri) if isinstance(uri, str) else uri
        if parsed.vendor_path or not parsed.matches_token(self.token_info().uri_attributes()):
            return []
        return list(self.find_objects(parsed.object_template()))

    # Exactly one object: the typed accessors. Each takes a slot (KeySlot.SIG, "sig", 1) and
    # optionally label= / id=, and raises ObjectNotFoundError when none or several match (the
    # message says what the card has instead, and which accessor finds it).

    def get_private_key(
        self,
        slot: KeySlot | str | int | None = None,
        *,
        label: str | None = None,
        id: bytes | int | None = None,
    ) -> PrivateKey:
        """The slot's private key (``session.get_private_key("sig").sign(…)``)."""
        from opcard.objects import PrivateKey, find_one

        return find_one(
            self, PrivateKey, ObjectClass.PRIVATE_KEY, _object_template(slot, label, id)
        )

    def get_public_key(
        self,
        slot: KeySlot | str | int | None = None,
        *,
        label: str | None = None,
        id: bytes | int | None = None,
    ) -> PublicKey:
        """The slot's public key (``.to_cryptography()`` gives the ``cryptography`` key)."""
        from opcard.objects import PublicKey, find_one

        return find_one(self, PublicKey, ObjectClass.PUBLIC_KEY, _object_template(slot, label, id))

    def get_certificate(
        self,
        slot: KeySlot | str | int | None = None,
        *,
        label: str | None = None,
        id: bytes | int | None = None,
    ) -> Certificate:
        """The certificate stored for the slot (``.to_cryptography()``: an
        ``x509.Certificate``; ``.der``: its bytes)."""
        from opcard.objects import Certificate, find_one

        return find_one(
            self, Certificate, ObjectClass.CERTIFICATE, _object_template(slot, label, id)
        )

    def get_data_object(
        self, name: Do | str | int | None = None, *, label: str | None = None
    ) -> DataObject:
        """A data object by name (``"url"``, ``"login"``, ``"private1"`` … ``"private4"``), by
        :class:`~apdu.openpgp.constants.Do` or tag, or by label (``"Private DO 1"``);
        ``.value`` is its bytes."""
        from opcard.objects import DATA_OBJECTS, DataObject, find_one
        from opcard.pkcs11.constants import Attribute

        template: dict[int, object] = {}
        if name is not None:
            tag = arguments.data_object(name)
            if tag not in DATA_OBJECTS:
                shown = ", ".join(v[0] for v in DATA_OBJECTS.values())
                raise ValueError(
                    f"{arguments.do_name(tag)} is not one of the card's data objects ({shown})"
                )
            template[Attribute.LABEL] = DATA_OBJECTS[tag][0]
        if label is not None:
            template[Attribute.LABEL] = label
        return find_one(self, DataObject, ObjectClass.DATA, template)

    if TYPE_CHECKING:  # (typing.overload: not at run time)

        @overload
        def get_key(
            self,
            slot: KeySlot | str | int | None = None,
            *,
            object_class: Literal[ObjectClass.PRIVATE_KEY] = ...,
            label: str | None = None,
            id: bytes | int | None = None,
        ) -> PrivateKey: ...
        @overload
        def get_key(
            self,
            slot: KeySlot | str | int | None = None,
            *,
            object_class: Literal[ObjectClass.PUBLIC_KEY],
            label: str | None = None,
            id: bytes | int | None = None,
        ) -> PublicKey: ...
        @overload
        def get_key(
            self,
            slot: KeySlot | str | int | None = None,
            *,
            object_class: Literal[ObjectClass.CERTIFICATE],
            label: str | None = None,
            id: bytes | int | None = None,
        ) -> Certificate: ...
        @overload
        def get_key(
            self,
            slot: KeySlot | str | int | None = None,
            *,
            object_class: Literal[ObjectClass.DATA],
            label: str | None = None,
            id: bytes | int | None = None,
        ) -> DataObject: ...
        @overload
        def get_key(
            self,
            slot: KeySlot | str | int | None = None,
            *,
            object_class: ObjectClass | int | str,
            label: str | None = None,
            id: bytes | int | None = None,
        ) -> CardObject: ...

    def get_key(
        self,
        slot: KeySlot | str | int | None = None,
        *,
        object_class: ObjectClass | int | str = ObjectClass.PRIVATE_KEY,
        label: str | None = None,
        id: bytes | int | None = None,
    ) -> CardObject:
        """Exactly one object of ``object_class`` — a **private key** unless it says otherwise
        (``ObjectClass.CERTIFICATE``, ``"certificate"``, ``"public"``, ``"data"``, …). The return
        type follows ``object_class`` (:class:`PrivateKey` by default); the accessors
        :meth:`get_private_key`, :meth:`get_public_key`, :meth:`get_certificate` and
        :meth:`get_data_object` say it in their names. :class:`ObjectNotFoundError` when none
        or several match."""
        from opcard.objects import class_of, find_one

        oc = arguments.object_class(object_class)
        return find_one(self, class_of(oc), oc, _object_template(slot, label, id))

    def private_key(self, slot: KeySlot | str | int) -> PrivateKey:
        """The slot's private key (:meth:`get_private_key`)."""
        return self.get_private_key(slot)

    # -- private key operations ---------------------------------------------------------------

    def key_info(self, slot: KeySlot | str | int) -> KeyInfo:
        """Type and size of the key in ``slot``, from the cached application data (no APDU);
        :class:`ObjectNotFoundError` when the slot is empty."""
        slot = _slot(slot)
        algorithm = self.card.algorithm(slot) if self.card.key_present(slot) else None
        if algorithm is None:
            from opcard.errors import ObjectNotFoundError

            raise ObjectNotFoundError(f"there is no key in the {slot.name} slot")
        return KeyInfo(slot, algorithm.key_type, algorithm.bits)

    def sign(
        self,
        key: PrivateKey | KeySlot | str | int,
        data: bytes,
        mechanism: Mechanism | int | str | None = None,
    ) -> bytes:
        """Sign ``data`` with a PKCS#11 mechanism (``Mechanism.ECDSA_SHA256`` or its name,
        ``"ECDSA_SHA256"`` / ``"CKM_ECDSA_SHA256"``); the default is the raw mechanism of the
        key type (CKM_RSA_PKCS with a DigestInfo, CKM_ECDSA with a hash, CKM_EDDSA with a
        message). ECDSA signatures are r‖s, as PKCS#11 returns them."""
        slot = _key_slot(key)
        data = arguments.data(data, "the data to sign")
        if mechanism is not None:
            mechanism = arguments.mechanism(mechanism)
        info = self.key_info(slot)
        if mechanism is None:
            from opcard.pkcs11.constants import Mechanism

            default = {  # the raw mechanism of the key type
                KeyType.RSA: Mechanism.RSA_PKCS,
                KeyType.EC: Mechanism.ECDSA,
                KeyType.EC_EDWARDS: Mechanism.EDDSA,
            }.get(info.key_type)
            if default is None:  # X25519: a key agreement key
                from opcard.errors import UnsupportedMechanismError
                from opcard.pkcs11.rv import ReturnValue

                raise UnsupportedMechanismError(
                    f"the {slot.name} key ({info.key_type.name}) cannot sign",
                    return_value=ReturnValue.KEY_FUNCTION_NOT_PERMITTED,
                )
            mechanism = default
        prepared = prepare_sign_input(mechanism, info, data)
        return self._card_sign(slot, prepared)

    def sign_digest(
        self,
        key: PrivateKey | KeySlot | str | int,
        digest: bytes,
        hash_name: str | hashes.HashAlgorithm | type[hashes.HashAlgorithm],
    ) -> bytes:
        """Sign a ``digest`` made with ``hash_name`` (explicit; never guessed): a name
        (``"sha256"``) or a ``cryptography`` hash (``hashes.SHA256()``)."""
        slot = _key_slot(key)
        digest = arguments.data(digest, "the digest")
        hash_name = arguments.hash_name(hash_name)
        return self._card_sign(
            slot, prepare_digest_sign_input(self.key_info(slot), hash_name, digest)
        )

    def _card_sign(self, slot: KeySlot, prepared: SignInput) -> bytes:
        if not prepared.data:  # EdDSA of b"": the card's command needs a data field
            from opcard.errors import DataLengthError

            raise DataLengthError("an OpenPGP card cannot sign an empty message")
        return self.perform(prepared.operation, prepared.data, f"sign with the {slot.name} key")

    def prepare(self, operation: CardOperation) -> None:
        """Make sure the card holds the PIN verification ``operation`` needs, before it is
        sent: the user PIN (:class:`NotLoggedInError` when the session is not logged in) and,
        for PSO:CDS (the SIG key), PW1 as 81 — verified now with the kept PIN when the card does
        not hold it. :meth:`perform` does it too; :class:`DigestSigner` calls it when made, so
        that each of its signatures is one APDU."""
        self._ensure(_COMMANDS[operation][0])

    def perform(self, operation: CardOperation, data: bytes, what: str | None = None) -> bytes:
        """Run a private key operation on ``data`` already in the card's input format (see
        :func:`~opcard.pkcs11.mechanisms.prepare_sign_input`): the one way every signature,
        decryption and ECDH of opcard goes.

        The command and the PIN verification come from one table: PSO:COMPUTE DIGITAL
        SIGNATURE (PW1 81), INTERNAL AUTHENTICATE or PSO:DECIPHER (PW1 82), sent by the applet
        (:meth:`~apdu.openpgp.applet.OpenPgpApplet.sign`, ``internal_authenticate``,
        ``decipher``) as one APDU without a PC/SC transaction when it fits one. The verification
        is made first where needed (:meth:`prepare`); when the card answers that it forgot it
        (6982: it was reset, another program dropped it), the session verifies once more with
        the kept PIN and sends the command again, once. ``what`` names the operation in
        messages."""
        pw, command = _COMMANDS[operation]
        state = self.login_state
        if not state.user or (pw is Pw.PW1 and not state.signing):  # else: nothing to verify
            self._ensure(pw)
        try:  # not ``with translated(...)``: a context manager costs ~1 µs on the hot path
            result = self._send_verified(pw, command, data)
        except apdu_errors.ApduError as e:
            if pw is Pw.PW1:
                self.login_state.signing = False
            from opcard.errors import translate_error

            raise translate_error(e, what or _OPERATION_TEXT[operation], PinKind.USER) from e
        if pw is Pw.PW1 and not self.pw1_valid_for_several():
            self.login_state.signing = False
        return result

    def _send_verified(self, pw: Pw, command: _Command, data: bytes) -> bytes:
        """``command(applet, data)``; when the card says 6982 (it was reset, or another process
        dropped the verification) verify again with the PIN we hold and resend once. When the
        card was reset or re-inserted (CardRemovedError), the channel reconnects and re-selects
        on the next send: the command is sent again, once, the same way."""
        try:
            return self._send_or_reverify(pw, command, data)
        except apdu_errors.CardRemovedError:
            if pw is Pw.PW1:
                self.login_state.signing = False
            return self._send_or_reverify(pw, command, data)

    def _send_or_reverify(self, pw: Pw, command: _Command, data: bytes) -> bytes:
        applet = self.card.applet
        try:
            return command(applet, data)
        except apdu_errors.SecurityStatusNotSatisfiedError:
            # one PC/SC transaction: another program's SELECT or logout (its start or end) cannot
            # land between the VERIFY and the command it is for (pcscd holds its commands back)
            with self.card.channel.transaction():
                if not self._reverify(pw):
                    raise
                return command(applet, data)

    def decrypt(
        self,
        key: PrivateKey | KeySlot | str | int,
        data: bytes,
        mechanism: Mechanism | int | str | None = None,
    ) -> bytes:
        """Decrypt an RSA PKCS#1 v1.5 cryptogram with the DEC key. Another key, or another
        mechanism, raises :class:`UnsupportedMechanismError` before anything is sent."""
        from opcard.pkcs11.constants import Mechanism

        slot = _key_slot(key)
        data = arguments.data(data, "the cryptogram")
        if mechanism is not None:
            mechanism = arguments.mechanism(mechanism)
        info = self.key_info(slot)
        if slot is not KeySlot.DEC:
            from opcard.errors import UnsupportedMechanismError
            from opcard.pkcs11.rv import ReturnValue

            raise UnsupportedMechanismError(
                f"the {slot.name} key cannot decrypt: only the DEC key decrypts (an RSA one)",
                return_value=ReturnValue.KEY_FUNCTION_NOT_PERMITTED,
            )
        if info.key_type is not KeyType.RSA:
            from opcard.errors import UnsupportedMechanismError
            from opcard.pkcs11.rv import ReturnValue

            raise UnsupportedMechanismError(
                f"the DEC key ({info.key_type.name}) cannot decrypt: an ECC DEC key derives a "
                "shared secret (session.derive)",
                return_value=ReturnValue.KEY_TYPE_INCONSISTENT,
            )
        if mechanism not in (None, Mechanism.RSA_PKCS):
            from opcard.errors import UnsupportedMechanismError

            raise UnsupportedMechanismError("OpenPGP cards decrypt PKCS#1 v1.5 (CKM_RSA_PKCS) only")
        return self.perform(
            CardOperation.DECIPHER, cmds.decipher_input_rsa(data), "decrypt with the DEC key"
        )

    def derive(self, key: PrivateKey | KeySlot | str | int, peer_point: bytes) -> bytes:
        """ECDH with the DEC key: the shared secret with the peer's public point. Another key
        raises :class:`UnsupportedMechanismError` before anything is sent."""
        slot = _key_slot(key)
        peer_point = arguments.data(peer_point, "the peer's public point")
        info = self.key_info(slot)
        if slot is not KeySlot.DEC:
            from opcard.errors import UnsupportedMechanismError
            from opcard.pkcs11.rv import ReturnValue

            raise UnsupportedMechanismError(
                f"the {slot.name} key cannot derive: only the DEC key does (an ECC one)",
                return_value=ReturnValue.KEY_FUNCTION_NOT_PERMITTED,
            )
        if info.key_type is KeyType.RSA:
            from opcard.errors import UnsupportedMechanismError
            from opcard.pkcs11.rv import ReturnValue

            raise UnsupportedMechanismError(
                "the DEC key (RSA) cannot derive: an RSA DEC key decrypts (session.decrypt)",
                return_value=ReturnValue.KEY_TYPE_INCONSISTENT,
            )
        return self.perform(
            CardOperation.DECIPHER, cmds.decipher_input_ecdh(peer_point), "ECDH with the DEC key"
        )

    def generate_random(self, length: int) -> bytes:
        with translated("GET CHALLENGE"):
            return self.card.applet.get_challenge(length)

    def digest_signer(self, slot: KeySlot | str | int = KeySlot.AUT) -> DigestSigner:
        """The fast path: a signer of digests for TLS client authentication (one APDU each)."""
        return DigestSigner(self, _slot(slot))

    # -- writes -------------------------------------------------------------------------------

    def _write(self, action: object, what: str) -> None:
        self._ensure(Pw.PW3)
        assert callable(action)
        try:
            # One PC/SC transaction: no other program's command between the steps of a write.
            # A 6982 then means another program made the card forget the admin PIN before it
            # began (its SELECT, a reset), so nothing protected was written yet: verify again
            # with the PIN this session holds and run the write once more.
            with translated(what, PinKind.ADMIN), self.card.channel.transaction():
                try:
                    action()
                except apdu_errors.SecurityStatusNotSatisfiedError:
                    if not self._reverify(Pw.PW3):
                        raise
                    action()
        finally:
            self.card.invalidate()

    def store_certificate(
        self, slot: KeySlot | str | int, certificate: x509.Certificate | bytes | str
    ) -> None:
        """Write a certificate into ``slot``: a ``cryptography`` ``x509.Certificate``, DER, or
        PEM (bytes or text). It is checked against the card's size limit first (nothing is sent
        when it is too large: :class:`CertificateTooLargeError`); what is no certificate raises
        :class:`CertificateFormatError`. On a spec 2 card only the AUT slot has a
        certificate: another slot raises :class:`NotSupportedByCardError` before any I/O."""
        slot = _slot(slot)
        der = arguments.certificate_der(certificate)
        self.card.check_certificate_slot(slot)
        arguments.check_certificate_length(der, self.card.application_data().extended_capabilities)
        self._write(
            lambda: self.card.applet.put_certificate(slot, der, select=self.card.aid.is_v3),
            f"store {slot.name} certificate",
        )

    def delete_certificate(self, slot: KeySlot | str | int) -> None:
        slot = _slot(slot)
        self.card.check_certificate_slot(slot)
        self._write(
            lambda: self.card.applet.put_certificate(slot, b"", select=self.card.aid.is_v3),
            f"delete {slot.name} certificate",
        )

    def set_algorithm(self, slot: KeySlot | str | int, algorithm: KeyAlgorithm | str) -> None:
        """Declare ``algorithm`` for ``slot`` (PUT DATA C1/C2/C3, needs the admin PIN); this
        deletes the key in the slot. Nothing happens when the slot already declares it.

        What the card lists in FA is checked first (:func:`algorithm_attributes`); a card
        that does not list its algorithms is asked: when it refuses the attributes,
        :class:`~opcard.errors.AlgorithmRefusedError` carries its status word, and nothing
        on the card changed (PUT DATA C1-C3 is the first write of a key generation or
        import)."""
        slot = _slot(slot)
        alg = parse_algorithm(algorithm) if isinstance(algorithm, str) else algorithm
        attrs = algorithm_attributes(self.card, slot, alg)
        if attrs is None:
            return
        self._ensure(Pw.PW3)
        what = f"set the {slot.name} algorithm to {alg}"
        try:
            with self.card.channel.transaction():  # as _write: 6982 → verify again, once
                try:
                    self.card.applet.set_algorithm_attributes(slot, attrs)
                except apdu_errors.SecurityStatusNotSatisfiedError:
                    if not self._reverify(Pw.PW3):
                        raise
                    self.card.applet.set_algorithm_attributes(slot, attrs)
        except (
            apdu_errors.SecurityStatusNotSatisfiedError,
            apdu_errors.WrongPinError,
            apdu_errors.PinBlockedError,
            apdu_errors.TransportError,
            apdu_errors.ProtocolError,
        ) as e:
            from opcard.errors import translate_error

            raise translate_error(e, what, PinKind.ADMIN) from e
        except apdu_errors.CardStatusError as e:
            from opcard.errors import AlgorithmRefusedError

            raise AlgorithmRefusedError(
                f"the card refused {alg.name} for the {slot.name} slot (SW {e.sw:04X}): it may "
                "not support this algorithm; nothing on the card was changed",
                e.sw,
            ) from e
        finally:
            self.card.invalidate()

    def generate_key(
        self,
        slot: KeySlot | str | int,
        algorithm: KeyAlgorithm | str | None = None,
        *,
        created: int | None = None,
    ) -> CardPublicKey:
        """Generate a key on the card in ``slot`` (optionally changing its algorithm first),
        then write its OpenPGP fingerprint and generation time."""
        slot = _slot(slot)
        if algorithm is not None:
            self.set_algorithm(slot, algorithm)
        attrs = self.card.application_data().attributes(slot)
        when = int(time.time()) if created is None else created
        result: list[CardPublicKey] = []

        def action() -> None:
            material = self.card.applet.generate_key(slot)
            key = CardPublicKey.from_card(material, attrs)
            self._write_key_metadata(slot, key, when)
            result.append(key)

        self._write(action, f"generate the {slot.name} key")
        return result[0]

    def check_algorithm(self, slot: KeySlot | str | int, algorithm: KeyAlgorithm | str) -> None:
        """Refuse now — before any PIN, writing nothing — an algorithm ``slot`` cannot take:
        one no OpenPGP card has for the slot (Ed25519 cannot decrypt, RSA-1024), one the card
        does not list in its algorithm information (FA), or any change on a card whose C0 says
        a slot's algorithm cannot change (:func:`algorithm_attributes`). A card that publishes
        no list is not refused on a guess: it is asked when the key is generated or imported
        (:meth:`set_algorithm`)."""
        slot = _slot(slot)
        alg = parse_algorithm(algorithm) if isinstance(algorithm, str) else algorithm
        algorithm_attributes(self.card, slot, alg)

    def check_import(self, slot: KeySlot | str | int, private_key: object) -> KeyAlgorithm:
        """What :meth:`import_key` would refuse, checked now without a PIN or a write: a card
        whose C0 says it imports no keys (:class:`NotSupportedByCardError`), a key type no
        OpenPGP card takes, an algorithm the slot cannot take (:meth:`check_algorithm`).
        ``private_key`` is a ``cryptography`` private key (:func:`load_private_key` reads a
        file's bytes). Returns the key's algorithm."""
        slot = _slot(slot)
        require_feature(self.card, "key_import")
        key = _importable(private_key)
        algorithm = CardPublicKey.from_cryptography(key.public_key()).algorithm
        self.check_algorithm(slot, algorithm)
        return algorithm

    def import_key(
        self,
        slot: KeySlot | str | int,
        private_key: PrivateKeyTypes | bytes | str,
        *,
        created: int | None = None,
        password: bytes | None = None,
    ) -> CardPublicKey:
        """Import a software private key into ``slot`` (the slot's algorithm is set to match),
        then write fingerprint and generation time (``created``, default now).

        ``private_key`` is a ``cryptography`` private key, or its PEM or DER encoding (PKCS#8
        or the traditional RSA/EC forms; ``password`` for an encrypted one): RSA 2048-4096,
        the NIST/brainpool/secp256k1 curves, Ed25519 (SIG, AUT) or X25519 (DEC). An unsuitable
        key is refused before anything is written; a card whose C0 says it imports no keys
        raises :class:`NotSupportedByCardError` before any I/O."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        slot = _slot(slot)
        require_feature(self.card, "key_import")
        if isinstance(private_key, str):
            if "-----BEGIN" not in private_key:
                raise TypeError(
                    "a private key is a cryptography private key, its PEM or DER bytes, or PEM "
                    "text ('-----BEGIN PRIVATE KEY-----' …)"
                )
            private_key = private_key.encode("ascii", "replace")  # PEM text
        if isinstance(private_key, bytes | bytearray | memoryview):
            private_key = load_private_key(bytes(private_key), password)
        private_key = _importable(private_key)
        public = private_key.public_key()
        key = CardPublicKey.from_cryptography(public)
        self.set_algorithm(slot, key.algorithm)
        attrs = self.card.application_data().attributes(slot)
        if isinstance(private_key, rsa.RSAPrivateKey):
            assert isinstance(attrs, RsaAttributes)
            numbers = private_key.private_numbers()
            template = rsa_import_template(
                slot, attrs, e=numbers.public_numbers.e, p=numbers.p, q=numbers.q
            )
        elif isinstance(private_key, ec.EllipticCurvePrivateKey):
            assert isinstance(attrs, EcAttributes) and key.algorithm.curve is not None
            template = ec_import_template(
                slot,
                key.algorithm.curve,
                private_key.private_numbers().private_value,
                public=key.point,
                attributes=attrs,
            )
        else:  # Ed25519 or X25519 (_importable let nothing else through)
            assert key.algorithm.curve is not None
            raw = private_key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            template = ec_import_template(
                slot,
                key.algorithm.curve,
                raw,
                public=key.point,
                attributes=attrs if isinstance(attrs, EcAttributes) else None,
            )
        when = int(time.time()) if created is None else created

        def action() -> None:
            self.card.applet.import_key(template)
            self._write_key_metadata(slot, key, when)

        self._write(action, f"import the {slot.name} key")
        return key

    def _write_key_metadata(self, slot: KeySlot, key: CardPublicKey, created: int) -> None:
        """Fingerprint and generation time of the key just written. If the card refuses them
        the key is in the slot without them (OpenSC then hides it): say so plainly. (A card
        gone or not answering is translated by the write around this, as every other.)"""
        from opcard.openpgp import fingerprint_v4

        fingerprint = fingerprint_v4(key.to_cryptography(), created, slot)
        try:
            self.card.applet.set_fingerprint(slot, fingerprint)
            self.card.applet.set_generation_time(slot, created)
        except apdu_errors.CardStatusError as e:
            from opcard.errors import CardOperationError

            raise CardOperationError(
                f"the {slot.name} key is on the card, but writing its fingerprint and "
                f"generation time failed ({e}); GnuPG and OpenSC may not show it until they "
                "are written: run the command again",
                e.sw,
            ) from e

    def set_name(self, name: str) -> None:
        """Cardholder name, given as "Given Surname" (stored as ``Surname<<Given``)."""
        if not isinstance(name, str):
            raise TypeError(f"the cardholder name is a str ('Jane Doe'), not {type(name).__name__}")
        given, _, surname = name.strip().rpartition(" ")
        value = f"{surname}<<{given}".replace(" ", "<") if given else surname
        try:
            encoded = value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(
                "the cardholder name must be Latin-1 text (ISO/IEC 8859-1): nothing was written"
            ) from None
        self.set_data(Do.NAME, encoded)

    def set_data(self, tag: Do | str | int, value: bytes | str) -> None:
        """PUT DATA of a simple DO, named as ``"url"`` (5F50), ``"login"`` (5E), ``"name"``
        (5B), ``"language"`` (5F2D), ``"sex"`` (5F35), ``"private1"`` … ``"private4"``
        (0101-0104), or given as a :class:`~apdu.openpgp.constants.Do` or tag. ``value``: bytes,
        or text (UTF-8; the name Latin-1). Private DOs 1 and 3 need the user PIN, the rest the
        admin PIN. A card without private DOs raises :class:`NotSupportedByCardError` before any
        PIN; a session without the PIN the DO needs :class:`NotLoggedInError` before anything
        is sent; a value longer than the card stores (C0's maximum length of special DOs for the
        URL, login data and private DOs) :class:`DataLengthError` before anything is written."""
        tag = arguments.data_object(tag)
        value = arguments.do_value(tag, value)
        if tag in PRIVATE_DOS:
            number = tag - Do.PRIVATE_USE_1 + 1
            require_feature(self.card, "private_dos", f"private DO {number}")
        self._ensure(PRIVATE_DOS[Do(tag)][1] if tag in PRIVATE_DOS else Pw.PW3)  # no I/O
        arguments.check_do_length(tag, value, self.card.application_data().extended_capabilities)
        if tag in PRIVATE_DOS and PRIVATE_DOS[Do(tag)][1] is Pw.PW1_OTHER:
            self._ensure(Pw.PW1_OTHER)
            try:
                with translated(f"write DO {tag:04X}", PinKind.USER):
                    self.card.applet.put_data(tag, value)
            finally:
                self.card.invalidate()
            return
        self._write(lambda: self.card.applet.put_data(tag, value), f"write DO {tag:04X}")

    def set_pw1_policy(self, several_signatures: bool) -> None:
        self._write(lambda: self.card.applet.set_pw1_policy(several_signatures), "set PW1 policy")

    def set_touch(self, slot: KeySlot | str | int, mode: UifMode | str | int) -> None:
        """Set the slot's touch policy (UIF, PUT DATA D6/D7/D8): a :class:`UifMode` or its name
        (``"on"``, ``"off"``, ``"fixed"``, ``"cached"``, ``"cached-fixed"``). A slot without a
        UIF DO in 6E raises :class:`NotSupportedByCardError` before any PIN."""
        slot = _slot(slot)
        mode = arguments.touch_mode(mode)
        if slot not in self.card.touch_slots():
            from opcard.errors import NotSupportedByCardError

            raise NotSupportedByCardError(
                f"touch (UIF) is not supported by this card for the {slot.name} key", "touch"
            )
        self._write(
            lambda: self.card.applet.set_uif(slot, Uif(int(mode))), f"set {slot.name} touch policy"
        )

    def enable_kdf(self) -> None:
        """Switch KDF on. The card resets PW1 and PW3 to their factory values (123456 /
        12345678), as the spec requires: change them afterwards. A card without KDF raises
        :class:`NotSupportedByCardError` before any PIN."""
        require_feature(self.card, "kdf")
        self._write(lambda: self.card.applet.set_kdf(new_kdf_do()), "enable KDF")
        self.card.kdf_changed()
        self.login_state.reset()

    def disable_kdf(self) -> None:
        require_feature(self.card, "kdf")
        self._write(lambda: self.card.applet.set_kdf(kdf_off()), "disable KDF")
        self.card.kdf_changed()
        self.login_state.reset()

    def factory_reset(self, admin_pin: str | bytes | None = None) -> None:
        """Erase everything: keys, certificates, data; PINs back to 123456 / 12345678.

        With the admin PIN (given here, or held by this session after ``login_admin``) the card
        is terminated after VERIFY PW3, as the spec allows, and no try is used. Without it, or
        on a card that wants them blocked (YubiKey NEO), both PINs are deliberately blocked
        first — only where the card says it will then terminate (its life cycle status, as
        GnuPG checks). A card without TERMINATE DF (Gnuk) raises
        :class:`NotSupportedByCardError`, one that terminates only after the admin PIN (the
        Ledger app) :class:`NotLoggedInError` when it was not given: in both cases nothing on
        the card changed (:meth:`apdu.openpgp.applet.OpenPgpApplet.factory_reset`)."""
        pin: bytes | None = None
        if admin_pin is not None:
            pin = _pin_bytes(admin_pin, Secret.PW3, "admin PIN")
        elif self.login_state.admin:
            pin = self.login_state._kept_pin(Pw.PW3)
        hist = self.card.application_data().historical_bytes
        life_cycle = None if hist is None else hist.life_cycle
        self.card.prepare_pin()
        changed = True
        try:
            self.card.applet.factory_reset(admin_pin=pin, life_cycle=life_cycle)
        except (apdu_errors.InsNotSupportedError, apdu_errors.ClaNotSupportedError) as e:
            changed = False
            from opcard.errors import NotSupportedByCardError

            raise NotSupportedByCardError(
                "a factory reset (TERMINATE DF) is not supported by this card; nothing on the "
                "card was changed",
                "factory_reset",
            ) from e
        except apdu_errors.SecurityStatusNotSatisfiedError as e:
            changed = False
            from opcard.errors import NotLoggedInError

            raise NotLoggedInError(
                "this card is reset only after the admin PIN (it does not declare the "
                "specification's life cycle, so blocking the PINs might leave it unusable): "
                "give the admin PIN; nothing on the card was changed"
            ) from e
        except (apdu_errors.WrongPinError, apdu_errors.PinBlockedError) as e:
            from opcard.errors import translate_error

            raise translate_error(e, "admin PIN", PinKind.ADMIN) from e
        except apdu_errors.ApduError as e:
            from opcard.errors import translate_error

            raise translate_error(e, "factory reset", PinKind.ADMIN) from e
        else:
            self.card.kdf_changed()  # KDF is off after a factory reset
        finally:
            self.card.invalidate()
            if changed:
                self.login_state.reset()


class DigestSigner:
    """Signs digests with one slot's key in one APDU each (the TLS client path).

    Made by :meth:`Session.digest_signer` after login; the PIN verification the slot needs is
    made then (:meth:`Session.prepare`). Each signature is the session's own way
    (:meth:`Session.perform`): the command is sent without a PC/SC transaction when it fits one
    APDU (one SCardTransmit is atomic in pcscd); nothing else is read or sent. ``sign_digest``
    returns the card's raw signature (RSA PKCS#1 v1.5 bytes, ECDSA r‖s); ``sign_digest_der``
    the DER ECDSA form TLS and X.509 use.
    """

    def __init__(self, session: Session, slot: KeySlot) -> None:
        self.session = session
        self.slot = slot
        self.key = session.key_info(slot)
        if slot is KeySlot.DEC:
            from opcard.errors import UnsupportedMechanismError
            from opcard.pkcs11.rv import ReturnValue

            raise UnsupportedMechanismError(
                "the DEC key cannot sign: sign with the SIG or AUT key",
                return_value=ReturnValue.KEY_FUNCTION_NOT_PERMITTED,
            )
        self._what = f"sign with the {slot.name} key"
        session.prepare(signing_operation(slot))

    def sign_digest(
        self, digest: bytes, hash_name: str | hashes.HashAlgorithm | type[hashes.HashAlgorithm]
    ) -> bytes:
        """The card's signature of ``digest``, made with ``hash_name`` (``"sha256"`` or a
        ``cryptography`` hash such as ``hashes.SHA256()``)."""
        if not isinstance(hash_name, str):
            hash_name = arguments.hash_name(hash_name)
        prepared = prepare_digest_sign_input(self.key, hash_name, digest)
        return self.session.perform(prepared.operation, prepared.data, self._what)

    def sign_digest_der(
        self, digest: bytes, hash_name: str | hashes.HashAlgorithm | type[hashes.HashAlgorithm]
    ) -> bytes:
        """As :meth:`sign_digest`, ECDSA signatures DER-encoded (as TLS and X.509 want them)."""
        raw = self.sign_digest(digest, hash_name)
        if self.key.key_type is KeyType.EC:
            return ecdsa_raw_to_der(raw)
        return raw


#: A private key command of the applet: ``command(applet, data) -> the card's answer``.
_Command = Callable[[OpenPgpApplet, bytes], bytes]

#: Each private key operation: the PIN verification it needs and the applet's command for it —
#: the one place a card command is chosen (which operation a slot's key does:
#: :func:`opcard.pkcs11.mechanisms.signing_operation`).
_COMMANDS: dict[CardOperation, tuple[Pw, _Command]] = {
    CardOperation.COMPUTE_DIGITAL_SIGNATURE: (Pw.PW1, lambda applet, data: applet.sign(data)),
    CardOperation.INTERNAL_AUTHENTICATE: (
        Pw.PW1_OTHER,
        lambda applet, data: applet.internal_authenticate(data),
    ),
    CardOperation.DECIPHER: (Pw.PW1_OTHER, lambda applet, data: applet.decipher(data)),
}
_OPERATION_TEXT = {
    CardOperation.COMPUTE_DIGITAL_SIGNATURE: "sign with the SIG key",
    CardOperation.INTERNAL_AUTHENTICATE: "sign with the AUT key",
    CardOperation.DECIPHER: "decrypt with the DEC key",
}


def _slot(value: KeySlot | str | int | None) -> KeySlot:
    if value is None:
        raise ValueError("a key slot is needed: KeySlot.SIG/DEC/AUT, 'sig'/'dec'/'aut' or 1/2/3")
    return arguments.key_slot(value)


def _key_slot(key: PrivateKey | KeySlot | str | int) -> KeySlot:
    """The slot of a private key object, or of a slot given as KeySlot, name or number (a
    slot given so does not load :mod:`opcard.objects` and its tables: ``opcard sign``)."""
    if isinstance(key, str | int):  # KeySlot is an int
        return _slot(key)
    from opcard.objects import PrivateKey

    return key.slot if isinstance(key, PrivateKey) else _slot(key)


def _object_template(
    slot: KeySlot | str | int | None, label: str | None, obj_id: bytes | int | None
) -> dict[int, object]:
    """The PKCS#11 template of an accessor's arguments (CKA_ID from the slot or ``id``)."""
    from opcard.pkcs11.constants import Attribute

    template: dict[int, object] = {}
    if slot is not None:
        template[Attribute.ID] = bytes((int(_slot(slot)),))
    if obj_id is not None:
        template[Attribute.ID] = arguments.key_id(obj_id)
    if label is not None:
        template[Attribute.LABEL] = label
    return template


def load_private_key(
    data: bytes, password: bytes | Callable[[], bytes] | None = None
) -> PrivateKeyTypes:
    """A ``cryptography`` private key from its PEM encoding (PKCS#8, the traditional RSA/EC
    forms, OpenSSH) or DER encoding (PKCS#8, traditional). ``password`` decrypts an encrypted
    key: the bytes, or a function called for them only when the key is encrypted (a prompt).
    :class:`~opcard.publickeys.UnsupportedKeyError` when ``data`` holds no private key that
    can be read (or the password is wrong). Whether an OpenPGP card takes the key is
    :meth:`Session.check_import`'s question."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    pem = data.lstrip().startswith(b"-----BEGIN")

    def load(secret: bytes | None) -> PrivateKeyTypes:
        if pem and b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
            return serialization.load_ssh_private_key(data, secret)
        if pem:
            return serialization.load_pem_private_key(data, secret)
        return serialization.load_der_private_key(data, secret)

    try:
        if callable(password):
            try:
                return load(None)
            except TypeError:  # encrypted: now ask for the password
                return load(password())
        return load(password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        from opcard.errors import UnsupportedKeyError

        raise UnsupportedKeyError(
            f"not a private key this card can take (PEM or DER, PKCS#8 or traditional, or "
            f"an OpenSSH key): {e}"
        ) from e


def _importable(private_key: object) -> ImportableKey:
    """``private_key`` when it is a key type an OpenPGP card takes (RSA, ECDSA/ECDH, Ed25519,
    X25519), else :class:`~opcard.publickeys.UnsupportedKeyError`."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

    if not isinstance(
        private_key,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | x25519.X25519PrivateKey,
    ):
        from opcard.errors import UnsupportedKeyError

        raise UnsupportedKeyError(f"{type(private_key).__name__} keys cannot go on an OpenPGP card")
    return private_key


def _same_algorithm(current: object, wanted: object) -> bool:
    if isinstance(current, RsaAttributes) and isinstance(wanted, RsaAttributes):
        return current.n_bits == wanted.n_bits
    if isinstance(current, EcAttributes) and isinstance(wanted, EcAttributes):
        return current.oid == wanted.oid and current.algorithm == wanted.algorithm
    return False
