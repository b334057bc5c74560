"""The OpenPGP card application over an :class:`apdu.channel.Channel`.

:class:`OpenPgpApplet` sends the builders of :mod:`apdu.openpgp.commands` and returns bytes or
typed objects. It has no caching policy (the caller, opcard, caches the application related
data and decides when to re-read it): every method is one command, or the fixed few a task
needs (a certificate: SELECT DATA + GET DATA), and nothing is read behind the caller's back.
The state it keeps is what the card told it about itself — the KDF-DO to derive PINs with
(:attr:`OpenPgpApplet.kdf`, set by the caller or by :meth:`OpenPgpApplet.set_kdf`) and whether
SELECT DATA needs the YubiKey length byte.

Errors are the channel's :class:`~apdu.errors.CardStatusError` subclasses, re-raised with the
command and object in the message (never a PIN); caller mistakes found before any I/O raise
``ValueError``.

Example::

    channel = Channel(PcscTransport.open())
    applet = OpenPgpApplet(channel)
    ard = applet.start()                       # SELECT, GET DATA 6E, framing from the card
    applet.verify(Pw.PW1, "123456")
    signature = applet.sign(digest_info)
"""

from __future__ import annotations

import contextlib

from apdu.channel import Channel, Framing
from apdu.command import EXTENDED_MAX, SHORT_MAX, Command
from apdu.errors import (
    CardStatusError,
    Sw,
    WrongPinError,
    error_for_status,
    pin_retries,
)
from apdu.openpgp import commands, quirks
from apdu.openpgp.constants import Do, KdfHash, KeySlot, Pw, Secret
from apdu.openpgp.objects import (
    AlgorithmAttributes,
    AlgorithmInformation,
    ApplicationRelatedData,
    CardholderData,
    ExtendedCapabilities,
    ExtendedLengthInfo,
    HistoricalBytes,
    KdfDo,
    PublicKeyMaterial,
    PwStatus,
    SecuritySupportTemplate,
    Uif,
    parse_public_key,
)
from apdu.record import Record

__all__ = ["MAX_BLOCKING_ATTEMPTS", "OpenPgpApplet", "PinState"]

#: Upper bound on wrong VERIFYs sent per PIN by :meth:`OpenPgpApplet.factory_reset`.
MAX_BLOCKING_ATTEMPTS = 16
_WRONG_PIN_LENGTH = 8


class PinState(Record):
    """What an empty VERIFY tells about a PIN.

    ``verified``: True/False, or None when the card cannot say (it refuses the status query
    and the retry counter came from C4). ``retries``: tries left, None when the card does not
    say (it does not tell a verified PIN's counter).
    """

    verified: bool | None
    retries: int | None

    @property
    def blocked(self) -> bool:
        return self.retries == 0


def _context(err: CardStatusError, what: str) -> CardStatusError:
    """The same exception class with ``what`` (a command, an object; never a secret) added."""
    new = type(err)(err.sw, err.data, f"{what}: {err.message}")
    if isinstance(err, WrongPinError) and isinstance(new, WrongPinError):
        new.retries = err.retries
    return new


class OpenPgpApplet:
    """Every command of the OpenPGP card application, sent through ``channel``."""

    def __init__(
        self,
        channel: Channel,
        *,
        kdf: KdfDo | None = None,
        select_data_length_byte: bool | None = None,
    ) -> None:
        self.channel = channel
        #: The card's KDF-DO when KDF is on: PINs are derived with it before they are sent.
        #: The applet never reads F9 by itself for this (the caller sets it, or
        #: :meth:`set_kdf` / :meth:`get_kdf` with ``adopt=True``).
        self.kdf = kdf
        #: Whether SELECT DATA needs YubiKey's extra length byte (see
        #: :mod:`apdu.openpgp.quirks`): None = not known yet, learned on first use.
        self.select_data_length_byte = select_data_length_byte
        if channel.on_reconnect is None:
            channel.on_reconnect = self.select

    # -- sending ------------------------------------------------------------------------------

    def _send(self, cmd: Command, what: str) -> bytes:
        try:
            return self.channel.send(cmd)
        except CardStatusError as err:
            raise _context(err, what) from err

    def _send_atomic(self, cmd: Command, what: str) -> bytes:
        """:meth:`_send` without a PC/SC transaction when ``cmd`` fits one APDU
        (:meth:`~apdu.channel.Channel.send_atomic`): the private key operations."""
        try:
            return self.channel.send_atomic(cmd)
        except CardStatusError as err:
            raise _context(err, what) from err

    def _send_pin(self, cmd: Command, what: str, secret: Secret) -> None:
        """Send a command that checks ``secret`` (VERIFY, CHANGE REFERENCE DATA, RESET RETRY
        COUNTER with the reset code). A YubiKey answers a wrong PIN 6982 instead of 63Cx:
        turn that into WrongPinError with the counter from C4."""
        response = self.channel.send_raw(cmd)
        if response.sw == Sw.OK:
            return
        if response.sw == quirks.WRONG_PIN_SECURITY_STATUS_SW:
            retries = self.get_pw_status().retries(secret)
            err = WrongPinError(
                response.sw, response.data, f"{what}: wrong PIN, {retries} attempt(s) left"
            )
            err.retries = retries
            raise err
        raise _context(error_for_status(response.sw, response.data), what)

    # -- application --------------------------------------------------------------------------

    def select(self) -> None:
        """SELECT the OpenPGP application (TerminatedError when it awaits ACTIVATE FILE)."""
        self._send(commands.select(), "SELECT OpenPGP application")

    def activate(self) -> None:
        """ACTIVATE FILE: leave the terminated state (end of a factory reset)."""
        self._send(commands.activate_file(), "ACTIVATE FILE")

    def start(self) -> ApplicationRelatedData:
        """SELECT, read 6E and adopt the card's framing, in one transaction."""
        with self.channel.transaction():
            self.select()
            ard = self.get_application_related_data()
            self.configure(ard)
            return ard

    def configure(self, ard: ApplicationRelatedData) -> Framing:
        """:meth:`configure_framing` from what 6E declares."""
        return self.configure_framing(
            ard.historical_bytes, ard.extended_length_info, ard.extended_capabilities
        )

    def configure_framing(
        self,
        historical_bytes: HistoricalBytes | None,
        extended_length_info: ExtendedLengthInfo | None = None,
        extended_capabilities: ExtendedCapabilities | None = None,
    ) -> Framing:
        """Set ``channel.framing`` from the card's declarations and return it.

        Extended Lc/Le only when the historical bytes' card capabilities say so, with the
        limits of 7F66 (v3) or of C0 bytes 7-10 (v2); command chaining as the capabilities
        say. Without readable capabilities the framing stays as it is (short APDUs with
        chaining by default).
        """
        caps = historical_bytes.card_capabilities if historical_bytes is not None else None
        if caps is None:
            return self.channel.framing
        max_command, max_response = SHORT_MAX - 1, SHORT_MAX
        if caps.extended_lc_le:
            max_command, max_response = EXTENDED_MAX - 1, EXTENDED_MAX
            if extended_length_info is not None:
                max_command = extended_length_info.max_command_length or max_command
                max_response = extended_length_info.max_response_length or max_response
            elif extended_capabilities is not None and not extended_capabilities.v3:
                max_command = extended_capabilities.max_command_length or max_command
                max_response = extended_capabilities.max_response_length or max_response
        framing = Framing(
            extended=caps.extended_lc_le,
            chaining=caps.command_chaining,
            max_command=min(max_command, EXTENDED_MAX - 1),
            max_response=min(max_response, EXTENDED_MAX),
        )
        self.channel.framing = framing
        return framing

    # -- data objects -------------------------------------------------------------------------

    def get_data(self, tag: int) -> bytes:
        """GET DATA ``tag``: the raw value."""
        return self._send(commands.get_data(tag), f"GET DATA {tag:X}")

    def put_data(self, tag: int, value: bytes) -> None:
        """PUT DATA ``tag`` (PW3 or PW1 as the object requires)."""
        self._send(commands.put_data(tag, value), f"PUT DATA {tag:X}")

    def get_application_related_data(self) -> ApplicationRelatedData:
        return ApplicationRelatedData.parse(self.get_data(Do.APPLICATION_RELATED_DATA))

    def get_pw_status(self) -> PwStatus:
        return PwStatus.parse(self.get_data(Do.PW_STATUS_BYTES))

    def set_pw1_policy(self, several_signatures: bool) -> None:
        """PUT DATA C4: PW1 (81) valid for one signature (False) or several (True)."""
        self.put_data(Do.PW_STATUS_BYTES, PwStatus.policy_value(several_signatures))

    def get_cardholder_data(self) -> CardholderData:
        return CardholderData.parse(self.get_data(Do.CARDHOLDER_RELATED_DATA))

    def get_security_support_template(self) -> SecuritySupportTemplate:
        return SecuritySupportTemplate.parse(self.get_data(Do.SECURITY_SUPPORT_TEMPLATE))

    def get_algorithm_information(self) -> AlgorithmInformation:
        return AlgorithmInformation.parse(self.get_data(Do.ALGORITHM_INFORMATION))

    def get_kdf(self, *, adopt: bool = False) -> KdfDo:
        """GET DATA F9; with ``adopt`` also use it for the PINs from now on."""
        kdf = KdfDo.parse(self.get_data(Do.KDF))
        if adopt:
            self.kdf = kdf if kdf.enabled else None
        return kdf

    def set_kdf(self, kdf: KdfDo) -> None:
        """PUT DATA F9 (needs PW3) and derive PINs with it from now on.

        On spec cards (and the emulator) this resets PW1 and PW3 to their defaults and clears
        the reset code and every verification.
        """
        self.put_data(Do.KDF, bytes(kdf))
        self.kdf = kdf if kdf.enabled else None

    def set_algorithm_attributes(self, slot: KeySlot, attributes: AlgorithmAttributes) -> None:
        """PUT DATA C1/C2/C3 (needs PW3); a change deletes the key in the slot."""
        slot = KeySlot(slot)
        self._send(
            commands.put_data(slot.attributes_tag, bytes(attributes)),
            f"PUT DATA {slot.attributes_tag:X} ({slot.name} algorithm attributes)",
        )

    def set_fingerprint(self, slot: KeySlot, fingerprint: bytes) -> None:
        slot = KeySlot(slot)
        self._send(
            commands.put_data(slot.fingerprint_tag, fingerprint),
            f"PUT DATA {slot.fingerprint_tag:X} ({slot.name} fingerprint)",
        )

    def set_ca_fingerprint(self, slot: KeySlot, fingerprint: bytes) -> None:
        slot = KeySlot(slot)
        self._send(
            commands.put_data(slot.ca_fingerprint_tag, fingerprint),
            f"PUT DATA {slot.ca_fingerprint_tag:X} (CA fingerprint {slot.value})",
        )

    def set_generation_time(self, slot: KeySlot, timestamp: int) -> None:
        slot = KeySlot(slot)
        if not 0 <= timestamp < 1 << 32:
            raise ValueError("generation time must fit 4 bytes")
        self._send(
            commands.put_data(slot.generation_time_tag, timestamp.to_bytes(4, "big")),
            f"PUT DATA {slot.generation_time_tag:X} ({slot.name} generation time)",
        )

    def set_uif(self, slot: KeySlot, uif: Uif) -> None:
        slot = KeySlot(slot)
        self._send(
            commands.put_data(slot.uif_tag, bytes(uif)),
            f"PUT DATA {slot.uif_tag:X} ({slot.name} UIF)",
        )

    # -- certificates ---------------------------------------------------------------------------

    def select_certificate(self, slot: KeySlot) -> None:
        """SELECT DATA for the certificate of ``slot``.

        When :attr:`select_data_length_byte` is unknown, the spec form goes first; if the
        card refuses it as malformed, the YubiKey form (extra length byte) is tried once and
        the answer remembered.
        """
        slot = KeySlot(slot)
        what = f"SELECT DATA 7F21 ({slot.name} certificate)"
        occurrence = slot.certificate_occurrence
        if self.select_data_length_byte is not None:
            cmd = commands.select_data(occurrence, length_byte=self.select_data_length_byte)
            self._send(cmd, what)
            return
        try:
            self.channel.send(commands.select_data(occurrence))
        except quirks.SELECT_DATA_RETRY_ERRORS as err:
            try:
                self.channel.send(commands.select_data(occurrence, length_byte=True))
            except CardStatusError:
                raise _context(err, what) from err
            self.select_data_length_byte = True
            return
        except CardStatusError as err:
            raise _context(err, what) from err
        self.select_data_length_byte = False

    def get_certificate(self, slot: KeySlot) -> bytes:
        """The DER certificate of ``slot``; b"" when the occurrence is empty (9000 without
        data, or 6A88/6A82 on some cards)."""
        slot = KeySlot(slot)
        with self.channel.transaction():
            self.select_certificate(slot)
            try:
                try:
                    return self.channel.send(commands.get_data(Do.CARDHOLDER_CERTIFICATE))
                except CardStatusError as err:
                    if quirks.certificate_absent(err):
                        return b""
                    raise _context(err, f"GET DATA 7F21 ({slot.name} certificate)") from err
            finally:
                self._reset_current_certificate(slot)

    def put_certificate(
        self,
        slot: KeySlot,
        der: bytes,
        *,
        max_length: int | None = None,
        select: bool = True,
    ) -> None:
        """Write the certificate of ``slot`` (needs PW3); b"" deletes it.

        ``max_length`` (C0's maximum certificate length) is checked before any I/O.
        ``select=False`` writes the one 7F21 of a spec 2 card (the AUT certificate) with a plain
        PUT DATA: those cards know neither SELECT DATA nor several occurrences.
        """
        slot = KeySlot(slot)
        if max_length is not None and len(der) > max_length:
            raise ValueError(
                f"certificate of {len(der)} bytes exceeds the card's limit of {max_length}"
            )
        if not select:
            self._send(
                commands.put_data(Do.CARDHOLDER_CERTIFICATE, der),
                f"PUT DATA 7F21 (certificate, {len(der)} bytes)",
            )
            return
        with self.channel.transaction():
            self.select_certificate(slot)
            try:
                self._send(
                    commands.put_data(Do.CARDHOLDER_CERTIFICATE, der),
                    f"PUT DATA 7F21 ({slot.name} certificate, {len(der)} bytes)",
                )
            finally:
                self._reset_current_certificate(slot)

    def _reset_current_certificate(self, slot: KeySlot) -> None:
        # GnuPG reads 7F21 with plain GET DATA (occurrence 0, AUT): leave the card that way.
        if slot is KeySlot.AUT:
            return
        with contextlib.suppress(CardStatusError):  # best effort, as GnuPG
            self.select_certificate(KeySlot.AUT)

    def get_next_certificate(self) -> bytes:
        """GET NEXT DATA 7F21: the next occurrence after the current one."""
        return self._send(commands.get_next_data(), "GET NEXT DATA 7F21")

    # -- PINs ---------------------------------------------------------------------------------

    def _derive(self, secret: Secret, pin: bytes | str) -> bytes:
        from apdu.openpgp.kdf import derive_pin  # with the first PIN: not a reader's start-up

        return derive_pin(self.kdf, secret, pin)

    def verify(self, pw: Pw, pin: bytes | str) -> None:
        """VERIFY ``pw`` (text is encoded UTF-8; derived when KDF is on).

        A wrong PIN raises :class:`~apdu.errors.WrongPinError` with the tries left; the
        applet never retries a failed VERIFY.
        """
        pw = Pw(pw)
        secret = Secret.for_pw(pw)
        self._send_pin(commands.verify(pw, self._derive(secret, pin)), f"VERIFY {pw.name}", secret)

    def pin_status(self, pw: Pw) -> PinState:
        """Empty VERIFY: verified, or tries left — without using a try.

        Cards that refuse the status query (YubiKey 5: 6A80) are answered from C4.
        """
        pw = Pw(pw)
        response = self.channel.send_raw(commands.verify_status(pw))
        sw = response.sw
        if sw == Sw.OK:
            return PinState(True, None)
        retries = pin_retries(sw)
        if retries is not None:
            return PinState(False, retries)
        if sw == Sw.AUTHENTICATION_METHOD_BLOCKED:
            return PinState(False, 0)
        if sw in quirks.EMPTY_VERIFY_UNSUPPORTED_SW:
            return PinState(None, self.get_pw_status().retries(Secret.for_pw(pw)))
        raise _context(error_for_status(sw, response.data), f"VERIFY {pw.name} (status)")

    def unverify(self, pw: Pw) -> None:
        """VERIFY with P1=FF: the card forgets the verification of ``pw``."""
        pw = Pw(pw)
        self._send(commands.verify_reset(pw), f"VERIFY {pw.name} (reset)")

    def change_pin(self, pw: Pw, old: bytes | str, new: bytes | str) -> None:
        """CHANGE REFERENCE DATA for PW1 (81/82) or PW3."""
        pw = Pw.PW3 if Pw(pw) is Pw.PW3 else Pw.PW1
        secret = Secret.for_pw(pw)
        cmd = commands.change_reference_data(
            pw, self._derive(secret, old), self._derive(secret, new)
        )
        self._send_pin(cmd, f"CHANGE REFERENCE DATA {pw.name}", secret)

    def reset_retry_counter(
        self, new_pin: bytes | str, *, reset_code: bytes | str | None = None
    ) -> None:
        """RESET RETRY COUNTER: a new PW1 with the reset code, or after PW3 (no code).

        Without a code, 6982 means "PW3 not verified" (SecurityStatusNotSatisfiedError); with
        one, a wrong code raises WrongPinError.
        """
        new = self._derive(Secret.PW1, new_pin)
        if reset_code is None:
            self._send(
                commands.reset_retry_counter_after_pw3(new), "RESET RETRY COUNTER (after PW3)"
            )
            return
        code = self._derive(Secret.RESET_CODE, reset_code)
        self._send_pin(
            commands.reset_retry_counter_with_code(code, new),
            "RESET RETRY COUNTER (reset code)",
            Secret.RESET_CODE,
        )

    def set_reset_code(self, reset_code: bytes | str | None) -> None:
        """PUT DATA D3 (needs PW3): set the reset code, or delete it with None."""
        value = b"" if reset_code is None else self._derive(Secret.RESET_CODE, reset_code)
        self._send(commands.put_data(Do.RESETTING_CODE, value), "PUT DATA D3 (reset code)")

    # -- keys and private key operations ------------------------------------------------------

    def generate_key(self, slot: KeySlot) -> PublicKeyMaterial:
        """GENERATE ASYMMETRIC KEY PAIR in ``slot`` (needs PW3); the new public key.

        Write the fingerprint and generation time afterwards: OpenSC hides keys without them.
        """
        slot = KeySlot(slot)
        data = self._send(
            commands.generate_asymmetric_key_pair(slot),
            f"GENERATE ASYMMETRIC KEY PAIR ({slot.name})",
        )
        return parse_public_key(data)

    def read_public_key(self, slot: KeySlot) -> PublicKeyMaterial:
        """The public key in ``slot`` (NotFoundError or similar when the slot is empty)."""
        slot = KeySlot(slot)
        data = self._send(commands.read_public_key(slot), f"READ PUBLIC KEY ({slot.name})")
        return parse_public_key(data)

    def import_key(self, template: bytes) -> None:
        """PUT DATA (odd) with a 4D template from :mod:`apdu.openpgp.keys` (needs PW3)."""
        self._send(commands.import_key(template), "PUT DATA 4D (key import)")

    # The private key operations are one command each: sent without a PC/SC transaction when
    # they fit one APDU (one SCardTransmit is atomic in pcscd; two service round trips saved on
    # the signature hot path), with one when they need chaining.

    def sign(self, data: bytes) -> bytes:
        """PSO:COMPUTE DIGITAL SIGNATURE with the SIG key (needs PW1 as 81)."""
        return self._send_atomic(commands.pso_compute_digital_signature(data), "PSO:CDS")

    def decipher(self, data: bytes) -> bytes:
        """PSO:DECIPHER with ready command data (needs PW1 as 82)."""
        return self._send_atomic(commands.pso_decipher(data), "PSO:DECIPHER")

    def decipher_rsa(self, cryptogram: bytes) -> bytes:
        """PSO:DECIPHER of an RSA cryptogram: the unpadded plaintext."""
        return self.decipher(commands.decipher_input_rsa(cryptogram))

    def decipher_ecdh(self, point: bytes) -> bytes:
        """PSO:DECIPHER as ECDH with the peer's public ``point``: the shared secret."""
        return self.decipher(commands.decipher_input_ecdh(point))

    def internal_authenticate(self, data: bytes) -> bytes:
        """INTERNAL AUTHENTICATE with the AUT key (needs PW1 as 82)."""
        return self._send_atomic(commands.internal_authenticate(data), "INTERNAL AUTHENTICATE")

    def manage_security_environment(self, template: KeySlot, key: KeySlot) -> None:
        """MSE: use ``key`` (DEC or AUT) for ``template``'s operation."""
        self._send(
            commands.manage_security_environment(template, key), "MANAGE SECURITY ENVIRONMENT"
        )

    def get_challenge(self, length: int) -> bytes:
        """GET CHALLENGE: ``length`` random bytes."""
        return self._send(commands.get_challenge(length), "GET CHALLENGE")

    # -- factory reset ------------------------------------------------------------------------

    def factory_reset(
        self, *, admin_pin: bytes | str | None = None, life_cycle: int | None = None
    ) -> None:
        """Factory reset: TERMINATE DF, ACTIVATE FILE, SELECT — blocking the PINs first only
        where the card needs that and says it will then terminate.

        1. With ``admin_pin``: VERIFY PW3 (a wrong PIN raises WrongPinError and nothing else
           is sent), then TERMINATE DF (spec 3.4: allowed after PW3).
        2. Without: TERMINATE DF as it is (a card that allows it unconditionally is reset).
        A card that does not know TERMINATE DF (6D00/6E00/6A81: Gnuk) raises
        :class:`~apdu.errors.InsNotSupportedError` (or ClaNotSupportedError): nothing
        changed. A refusal for its conditions leads to blocking PW1 and PW3 with wrong PINs and
        TERMINATE DF again — when the card answered 6985 (it wants both PINs blocked: YubiKey
        NEO), or 6982 on a card whose historical bytes declare the specification's life cycle
        (``life_cycle`` 03 or 05, the status indicator GnuPG's factory-reset requires; read
        with GET DATA 5F52 when not given).
        Otherwise (6982 from a card that declares no such life cycle: the Ledger app, which
        terminates only after PW3) :class:`~apdu.errors.SecurityStatusNotSatisfiedError` is
        raised before any PIN is blocked: give the admin PIN.

        Blocking deliberately uses up every PIN try. The wrong PINs have the length the card
        checks: with KDF on (the KDF-DO is read fresh here, not taken from :attr:`kdf`) the
        derived length, else 8 bytes. Each PIN gets at most :data:`MAX_BLOCKING_ATTEMPTS`.
        """
        with self.channel.transaction():
            if admin_pin is not None:
                self.verify(Pw.PW3, admin_pin)
            response = self.channel.send_raw(commands.terminate_df())
            if response.sw != Sw.OK:
                refusal = error_for_status(response.sw, response.data)
                blocking_helps = response.sw == Sw.CONDITIONS_NOT_SATISFIED or (
                    response.sw == Sw.SECURITY_STATUS_NOT_SATISFIED
                    and admin_pin is None
                    and self._life_cycle(life_cycle) in quirks.LIFE_CYCLE_MANAGED
                )
                if not blocking_helps:
                    raise _context(refusal, "TERMINATE DF")
                kdf = self._current_kdf()
                status = self.get_pw_status()
                for pw, secret in ((Pw.PW1, Secret.PW1), (Pw.PW3, Secret.PW3)):
                    self._block(pw, secret, status, kdf)
                self._send(commands.terminate_df(), "TERMINATE DF")
            self.activate()
            self.select()
        self.kdf = None
        self.select_data_length_byte = None

    def _life_cycle(self, known: int | None) -> int | None:
        """The life cycle status byte of the historical bytes: ``known``, else GET DATA 5F52."""
        if known is not None:
            return known
        try:
            return HistoricalBytes.parse(self.get_data(Do.HISTORICAL_BYTES)).life_cycle
        except CardStatusError:
            return None

    def _current_kdf(self) -> KdfDo | None:
        try:
            kdf = KdfDo.parse(self.channel.send(commands.get_data(Do.KDF)))
        except CardStatusError:
            return None  # no KDF-DO on this card
        return kdf if kdf.enabled else None

    def _block(self, pw: Pw, secret: Secret, status: PwStatus, kdf: KdfDo | None) -> None:
        if kdf is not None and kdf.hash_algorithm is not None:
            length = KdfHash(kdf.hash_algorithm).digest_size
        else:
            length = max(secret.minimum_length, _WRONG_PIN_LENGTH)
            limit = status.max_length(secret)
            if limit:
                length = min(length, max(limit, secret.minimum_length))
        wrong = bytes(length)
        for _ in range(min(status.retries(secret) + 1, MAX_BLOCKING_ATTEMPTS)):
            response = self.channel.send_raw(commands.verify(pw, wrong))
            sw = response.sw
            if sw in (Sw.AUTHENTICATION_METHOD_BLOCKED, Sw.PIN_NO_TRY_LEFT, Sw.OK):
                return
            if pin_retries(sw) is not None or sw == Sw.SECURITY_STATUS_NOT_SATISFIED:
                continue
            raise _context(error_for_status(sw, response.data), f"VERIFY {pw.name} (blocking)")
