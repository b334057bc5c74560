"""Byte-exact tests of every OpenPGP command builder (§7.2).

Expected bytes come from the specification's command tables and, where marked, from real
traffic: GnuPG / open-keychain (SELECT) and a YubiKey 5.4.3 trace in cunicu/go-openpgp-card.
"""

from __future__ import annotations

import inspect
import re

import pytest

from apdu.command import Command
from apdu.openpgp import commands
from apdu.openpgp.constants import Do, KeySlot, Pw


def short(cmd: Command) -> str:
    return cmd.encode_short().hex().upper()


def ext(cmd: Command) -> str:
    return cmd.encode_extended().hex().upper()


def test_select() -> None:
    # open-keychain test_connectToDevice expects exactly this (GnuPG sends the same).
    assert short(commands.select()) == "00A4040006D27600012401"
    assert not commands.select().sensitive


def test_select_rejects_bad_aid() -> None:
    with pytest.raises(ValueError):
        commands.select(b"\xd2\x76")


@pytest.mark.parametrize(
    ("slot", "p1"), [(KeySlot.AUT, "00"), (KeySlot.DEC, "01"), (KeySlot.SIG, "02")]
)
def test_select_data(slot: KeySlot, p1: str) -> None:
    cmd = commands.select_data(slot.certificate_occurrence)
    assert short(cmd) == f"00A5{p1}040660045C027F21"
    assert cmd.le is None


def test_select_data_yubikey_length_byte() -> None:
    # YubiKey 5.4.3 trace (go-openpgp-card): 00 A5 02 04 07 06 60045C027F21 (+ Le 00).
    cmd = commands.select_data(KeySlot.SIG.certificate_occurrence, length_byte=True)
    assert short(cmd) == "00A50204070660045C027F21"
    assert bytes.fromhex("60045C027F21") == commands.SELECT_DATA_CERTIFICATE


def test_get_data() -> None:
    assert short(commands.get_data(Do.APPLICATION_RELATED_DATA)) == "00CA006E00"  # YK trace
    assert short(commands.get_data(Do.CARDHOLDER_CERTIFICATE)) == "00CA7F2100"
    assert short(commands.get_data(Do.PRIVATE_USE_3)) == "00CA010300"
    assert ext(commands.get_data(Do.ALGORITHM_INFORMATION)) == "00CA00FA000000"
    with pytest.raises(ValueError):
        commands.get_data(0x10000)


def test_get_next_data() -> None:
    assert short(commands.get_next_data()) == "00CC7F2100"


def test_put_data() -> None:
    # YubiKey 5.4.3 trace: set SIG attributes to ECDSA P-256, then its generation time.
    attrs = bytes.fromhex("132A8648CE3D030107")
    assert short(commands.put_data(Do.ALGORITHM_ATTRIBUTES_SIG, attrs)) == (
        "00DA00C109132A8648CE3D030107"
    )
    cmd = commands.put_data(Do.GENERATION_TIME_SIG, bytes.fromhex("6563D4C4"))
    assert short(cmd) == "00DA00CE046563D4C4"
    assert not cmd.sensitive
    assert short(commands.put_data(Do.CARDHOLDER_CERTIFICATE, b"")) == "00DA7F21"


def test_put_data_reset_code_is_sensitive() -> None:
    cmd = commands.put_data(Do.RESETTING_CODE, b"87654321")
    assert short(cmd) == "00DA00D3083837363534333231"
    assert cmd.sensitive
    assert "3837" not in repr(cmd)
    assert commands.put_data(Do.URL, b"x", sensitive=True).sensitive


def test_put_data_odd_and_import_key() -> None:
    template = bytes.fromhex("4D0AB8007F4802920A5F4800")
    cmd = commands.import_key(template)
    assert short(cmd) == "00DB3FFF0C" + template.hex().upper()
    assert cmd.sensitive
    assert template.hex() not in repr(cmd).lower()
    with pytest.raises(ValueError):
        commands.import_key(b"\x7f\x48\x00")
    assert short(commands.put_data_odd(b"\x01", sensitive=False)) == "00DB3FFF0101"


def test_verify() -> None:
    # YubiKey 5.4.3 trace: VERIFY PW3 "12345678", VERIFY PW1 "123456".
    pw3 = commands.verify(Pw.PW3, b"12345678")
    assert short(pw3) == "00200083083132333435363738"
    assert pw3.sensitive
    assert "3132" not in repr(pw3)
    assert short(commands.verify(Pw.PW1, b"123456")) == "0020008106313233343536"
    assert short(commands.verify(Pw.PW1_OTHER, b"123456")) == "0020008206313233343536"


def test_verify_refuses_empty_and_text() -> None:
    with pytest.raises(ValueError):
        commands.verify(Pw.PW1, b"")
    with pytest.raises(TypeError):
        commands.verify(Pw.PW1, "123456")  # type: ignore[arg-type]


def test_verify_status_and_reset() -> None:
    assert short(commands.verify_status(Pw.PW1)) == "00200081"
    assert short(commands.verify_status(Pw.PW3)) == "00200083"
    assert short(commands.verify_reset(Pw.PW1_OTHER)) == "0020FF82"
    assert not commands.verify_status(Pw.PW1).sensitive


def test_change_reference_data() -> None:
    # YubiKey 5.4.3 trace (TestFactoryReset): PW3 12345678 -> somepass.
    cmd = commands.change_reference_data(Pw.PW3, b"12345678", b"somepass")
    assert short(cmd) == "00240083103132333435363738736F6D6570617373"
    assert cmd.sensitive
    with pytest.raises(ValueError):
        commands.change_reference_data(Pw.PW1_OTHER, b"123456", b"654321")


def test_reset_retry_counter() -> None:
    cmd = commands.reset_retry_counter_with_code(b"87654321", b"654321")
    assert short(cmd) == "002C00810E3837363534333231363534333231"
    assert cmd.sensitive
    cmd = commands.reset_retry_counter_after_pw3(b"654321")
    assert short(cmd) == "002C028106363534333231"
    assert cmd.sensitive


def test_pso_cds() -> None:
    cmd = commands.pso_compute_digital_signature(b"\x01\x02")
    assert short(cmd) == "002A9E9A02010200"
    assert not cmd.sensitive
    with pytest.raises(ValueError):
        commands.pso_compute_digital_signature(b"")


def test_pso_decipher() -> None:
    assert short(commands.pso_decipher(commands.decipher_input_rsa(b"\xaa\xbb"))) == (
        "002A80860300AABB00"
    )
    data = commands.decipher_input_ecdh(b"\x04" + b"\x11" * 64)
    assert data.hex().upper() == "A646" + "7F4943" + "8641" + "04" + "11" * 64
    x25519 = commands.decipher_input_ecdh(b"\x22" * 32)
    assert x25519.hex().upper() == "A6257F4922" + "8620" + "22" * 32


def test_internal_authenticate() -> None:
    assert short(commands.internal_authenticate(b"\x30\x31")) == "00880000023031" + "00"


@pytest.mark.parametrize(
    ("slot", "crt"), [(KeySlot.SIG, "B6"), (KeySlot.DEC, "B8"), (KeySlot.AUT, "A4")]
)
def test_generate_and_read_public_key(slot: KeySlot, crt: str) -> None:
    assert short(commands.generate_asymmetric_key_pair(slot)) == f"0047800002{crt}0000"
    assert short(commands.read_public_key(slot)) == f"0047810002{crt}0000"
    assert ext(commands.read_public_key(slot)) == f"00478100000002{crt}000000"


def test_get_challenge_and_response() -> None:
    assert short(commands.get_challenge(8)) == "0084000008"
    assert ext(commands.get_challenge(1024)) == "00840000000400"
    with pytest.raises(ValueError):
        commands.get_challenge(0)
    assert short(commands.get_response(0x0E)) == "00C000000E"


def test_terminate_activate() -> None:
    # YubiKey 5.4.3 trace: 00E60000, 00440000.
    assert short(commands.terminate_df()) == "00E60000"
    assert short(commands.activate_file()) == "00440000"


def test_manage_security_environment() -> None:
    cmd = commands.manage_security_environment(KeySlot.DEC, KeySlot.AUT)
    assert short(cmd) == "002241B803830103"
    cmd = commands.manage_security_environment(KeySlot.AUT, KeySlot.DEC)
    assert short(cmd) == "002241A403830102"
    with pytest.raises(ValueError):
        commands.manage_security_environment(KeySlot.SIG, KeySlot.DEC)


def test_yubico_get_version() -> None:
    assert short(commands.yubico_get_version()) == "00F1000000"


_SECTION = re.compile(r"^7\.2\.\d+ [A-Z]")


@pytest.mark.parametrize("name", commands.__all__)
def test_docstring_names_spec_section(name: str) -> None:
    obj = getattr(commands, name)
    if not inspect.isfunction(obj):
        return
    first = (obj.__doc__ or "").strip().splitlines()[0]
    assert _SECTION.match(first) or first.startswith("Yubico vendor command"), first


def test_every_builder_is_tested() -> None:
    source = inspect.getsource(inspect.getmodule(test_select))  # type: ignore[arg-type]
    for name in commands.__all__:
        assert f"commands.{name}" in source, name
