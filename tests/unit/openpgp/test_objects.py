"""Parse / serialise tests of every data object, on answers of real cards."""

from __future__ import annotations

import pytest
from openpgp_vectors import (
    ALL_ARD,
    HISTORICAL_BYTES,
    NEO_ARD,
    NEO_ARD_EMPTY_73,
    NITROKEY_PRO_ARD,
    YK4_ARD,
    YK543_ALGORITHM_INFORMATION,
    YK543_ARD,
    YK543_ARD_ED25519,
    YK543_CARDHOLDER,
    YK543_KDF_OFF,
    YK543_KDF_SHA512,
    YK543_PUBLIC_ED25519,
    YK543_PUBLIC_P256,
    YK543_PUBLIC_RSA2048,
    YK543_PUBLIC_X25519,
    YK543_SERIAL,
    YK543_SST_0,
    YK543_SST_3,
)

from apdu import tlv
from apdu.errors import ApduError, TlvError
from apdu.openpgp.constants import (
    AlgorithmId,
    Curve,
    Do,
    EcImportFormat,
    ExtendedCapability,
    GeneralFeature,
    KdfHash,
    KeySlot,
    KeyStatus,
    RsaImportFormat,
    Secret,
    Sex,
    UifMode,
    decode_oid,
    manufacturer_name,
)
from apdu.openpgp.errors import DataObjectError
from apdu.openpgp.objects import (
    Aid,
    AlgorithmInformation,
    ApplicationRelatedData,
    CaFingerprints,
    CardholderData,
    EcAttributes,
    EcPublicKey,
    ExtendedCapabilities,
    ExtendedLengthInfo,
    Fingerprints,
    GeneralFeatureManagement,
    GenerationTimes,
    HistoricalBytes,
    KdfDo,
    KeyInformation,
    PwStatus,
    RsaAttributes,
    RsaPublicKey,
    SecuritySupportTemplate,
    Uif,
    UnknownAttributes,
    parse_algorithm_attributes,
    parse_public_key,
)

# --- AID -------------------------------------------------------------------------------------


def test_aid_yubikey() -> None:
    aid = Aid.parse(bytes.fromhex("D2760001240103040006238527740000"))
    assert aid.version == (3, 4) and aid.version_text == "3.4" and aid.is_v3
    assert aid.manufacturer == 0x0006 and aid.manufacturer_name == "Yubico"
    assert aid.serial == YK543_SERIAL
    # GnuPG prints the serial as 8 hex digits; the YubiKey's is BCD of its decimal serial.
    assert aid.serial_hex == "23852774"
    assert str(aid) == "D2760001240103040006238527740000"
    assert bytes(aid) == bytes.fromhex("D2760001240103040006238527740000")


def test_aid_test_card_and_rfu() -> None:
    aid = Aid.parse(bytes.fromhex("D2760001240102000000000000011234"))
    assert aid.manufacturer_name == "test card" and aid.serial == 1
    assert aid.rfu == b"\x12\x34" and not aid.is_v3
    assert bytes(aid).hex().upper().endswith("1234")


@pytest.mark.parametrize("data", ["D27600012401030400", "A0000005272101030400062385277400", ""])
def test_aid_malformed(data: str) -> None:
    with pytest.raises(DataObjectError):
        Aid.parse(bytes.fromhex(data))


def test_manufacturer_names() -> None:
    assert manufacturer_name(0x000F) == "unknown"
    assert manufacturer_name(0xF517) == "FSIJ"
    assert manufacturer_name(0x000A) == "VivoKey"
    assert manufacturer_name(0xFF42) == "unmanaged S/N range"
    assert manufacturer_name(0xFFFF) == "test card"
    assert manufacturer_name(0x5343) == "SSE Carte à puce"


# --- historical bytes ------------------------------------------------------------------------


@pytest.mark.parametrize("card", sorted(HISTORICAL_BYTES))
def test_historical_bytes_of_real_cards(card: str) -> None:
    raw, chaining, extended = HISTORICAL_BYTES[card]
    hist = HistoricalBytes.parse(raw)
    caps = hist.card_capabilities
    assert caps is not None
    assert caps.command_chaining is chaining
    assert caps.extended_lc_le is extended
    assert hist.well_formed
    assert bytes(hist) == raw


def test_historical_bytes_status() -> None:
    hist = HistoricalBytes.parse(bytes.fromhex("0031c573c00140059000"))
    assert hist.category == 0 and hist.life_cycle == 5 and hist.status_word == 0x9000
    assert hist.get(3) == b"\xc5"
    neo = HistoricalBytes.parse(bytes.fromhex("007300008000000000000000000000"))
    assert neo.life_cycle == 0 and neo.status_word == 0  # zero padded, still parsed


def test_historical_bytes_category_80_and_malformed() -> None:
    hist = HistoricalBytes.parse(bytes.fromhex("8073c00140830590 00".replace(" ", "")))
    assert hist.card_capabilities is not None and hist.card_capabilities.extended_lc_le
    assert hist.life_cycle == 5 and hist.status_word == 0x9000
    bad = HistoricalBytes.parse(bytes.fromhex("0079c001059000"))  # length runs past the body
    assert bad.card_capabilities is None and not bad.well_formed
    assert HistoricalBytes.parse(b"").card_capabilities is None
    assert not HistoricalBytes.parse(b"\x42\x00").well_formed


# --- extended capabilities -------------------------------------------------------------------


def test_extended_capabilities_v3_yubikey5() -> None:
    caps = ExtendedCapabilities.parse(bytes.fromhex("7d000bfe080000ff0000"))
    assert caps.v3
    assert caps.supports(ExtendedCapability.KDF)
    assert caps.supports(ExtendedCapability.KEY_IMPORT)
    assert not caps.supports(ExtendedCapability.SECURE_MESSAGING)
    assert caps.max_challenge_length == 0x0BFE
    assert caps.max_certificate_length == 0x0800
    assert caps.max_special_do_length == 0xFF
    assert caps.pin_block_2_format == 0 and caps.mse == 0
    assert bytes(caps) == bytes.fromhex("7d000bfe080000ff0000")


def test_extended_capabilities_v2_nitrokey() -> None:
    caps = ExtendedCapabilities.parse(bytes.fromhex("7c000800080008000800"), v3=False)
    assert not caps.v3
    assert caps.max_certificate_length == 0x0800
    assert caps.max_command_length == 0x0800 and caps.max_response_length == 0x0800
    assert caps.max_special_do_length is None
    assert bytes(caps) == bytes.fromhex("7c000800080008000800")


def test_extended_capabilities_short() -> None:
    with pytest.raises(DataObjectError):
        ExtendedCapabilities.parse(bytes.fromhex("7d000bfe0800"))


# --- algorithm attributes --------------------------------------------------------------------


def test_rsa_attributes() -> None:
    yk = parse_algorithm_attributes(bytes.fromhex("010800001100"))
    assert yk == RsaAttributes(2048, 17, RsaImportFormat.STANDARD)
    assert str(yk) == "rsa2048"
    nk = parse_algorithm_attributes(bytes.fromhex("010800002000"))
    assert isinstance(nk, RsaAttributes) and nk.e_bits == 32
    neo = parse_algorithm_attributes(bytes.fromhex("010800001103"))
    assert isinstance(neo, RsaAttributes)
    assert neo.import_format is RsaImportFormat.CRT_WITH_MODULUS
    assert neo.import_format.crt and neo.import_format.with_modulus
    v1 = parse_algorithm_attributes(bytes.fromhex("0104000020"))  # no format byte
    assert isinstance(v1, RsaAttributes) and v1.import_format is None
    assert bytes(v1) == bytes.fromhex("0104000020")


@pytest.mark.parametrize("data", ["01", "01080000110405", "010800001104", "010000001100"])
def test_rsa_attributes_malformed(data: str) -> None:
    with pytest.raises(DataObjectError):
        parse_algorithm_attributes(bytes.fromhex(data))


@pytest.mark.parametrize("curve", list(Curve))
def test_ec_attributes_every_curve(curve: Curve) -> None:
    for algorithm in (AlgorithmId.ECDH, AlgorithmId.ECDSA, AlgorithmId.EDDSA):
        for fmt, tail in (
            (None, b""),
            (EcImportFormat.STANDARD, b"\x00"),
            (EcImportFormat.WITH_PUBLIC_KEY, b"\xff"),
        ):
            data = bytes((algorithm,)) + curve.oid + tail
            attrs = parse_algorithm_attributes(data)
            assert attrs == EcAttributes(algorithm, curve.oid, fmt)
            assert isinstance(attrs, EcAttributes) and attrs.curve is curve
            assert attrs.oid_dotted == curve.dotted
            assert bytes(attrs) == data


def test_ec_attributes_yubikey() -> None:
    ed = parse_algorithm_attributes(bytes.fromhex("162b06010401da470f01"))
    assert isinstance(ed, EcAttributes)
    assert ed.algorithm is AlgorithmId.EDDSA and ed.curve is Curve.ED25519
    assert str(ed) == "ed25519"
    unknown = parse_algorithm_attributes(bytes.fromhex("132b06010401da470f05"))  # made-up OID
    assert isinstance(unknown, EcAttributes) and unknown.curve is None
    assert unknown.oid_dotted == "1.3.6.1.4.1.11591.15.5"


def test_ec_attributes_for_curve() -> None:
    assert EcAttributes.for_curve(Curve.ED25519, KeySlot.SIG).algorithm is AlgorithmId.EDDSA
    assert EcAttributes.for_curve(Curve.X25519, KeySlot.DEC).algorithm is AlgorithmId.ECDH
    assert EcAttributes.for_curve(Curve.NIST_P384, KeySlot.DEC).algorithm is AlgorithmId.ECDH
    assert EcAttributes.for_curve(Curve.NIST_P384, KeySlot.AUT).algorithm is AlgorithmId.ECDSA
    assert bytes(EcAttributes.for_curve(Curve.NIST_P256, KeySlot.SIG)) == bytes.fromhex(
        "132A8648CE3D030107"
    )


def test_unknown_and_malformed_attributes() -> None:
    other = parse_algorithm_attributes(bytes.fromhex("1701020304"))
    assert other == UnknownAttributes(0x17, b"\x01\x02\x03\x04")
    assert bytes(other) == bytes.fromhex("1701020304")
    for bad in ("", "13", "132a86"):  # no OID / OID ending inside a sub-identifier
        with pytest.raises(DataObjectError):
            parse_algorithm_attributes(bytes.fromhex(bad))


def test_decode_oid() -> None:
    assert decode_oid(Curve.BRAINPOOL_P512R1.oid) == "1.3.36.3.3.2.8.1.1.13"
    assert decode_oid(bytes.fromhex("8134")) == "2.100"  # first sub-identifier 180
    with pytest.raises(DataObjectError):
        decode_oid(bytes.fromhex("2a8048"))


# The curves of the spec's §4.4.3.9 table (and RFC 6637 / GnuPG's names): dotted OID, bits,
# bytes of a scalar, OpenPGP name. The content bytes are checked against asn1crypto's encoder.
CURVE_TABLE = {
    Curve.NIST_P256: ("1.2.840.10045.3.1.7", 256, 32, "nistp256"),
    Curve.NIST_P384: ("1.3.132.0.34", 384, 48, "nistp384"),
    Curve.NIST_P521: ("1.3.132.0.35", 521, 66, "nistp521"),
    Curve.SECP256K1: ("1.3.132.0.10", 256, 32, "secp256k1"),
    Curve.BRAINPOOL_P256R1: ("1.3.36.3.3.2.8.1.1.7", 256, 32, "brainpoolP256r1"),
    Curve.BRAINPOOL_P384R1: ("1.3.36.3.3.2.8.1.1.11", 384, 48, "brainpoolP384r1"),
    Curve.BRAINPOOL_P512R1: ("1.3.36.3.3.2.8.1.1.13", 512, 64, "brainpoolP512r1"),
    Curve.ED25519: ("1.3.6.1.4.1.11591.15.1", 255, 32, "ed25519"),
    Curve.X25519: ("1.3.6.1.4.1.3029.1.5.1", 255, 32, "cv25519"),
}


@pytest.mark.parametrize("curve", list(Curve))
def test_curve_table(curve: Curve) -> None:
    from asn1crypto.core import ObjectIdentifier  # type: ignore[import-untyped]

    dotted, bits, size, name = CURVE_TABLE[curve]
    assert curve.dotted == dotted
    assert curve.oid == ObjectIdentifier(dotted).contents
    assert (curve.bits, curve.size, curve.openpgp_name) == (bits, size, name)
    assert Curve.from_oid(curve.oid) is curve
    assert curve.is_25519 == (bits == 255)


# --- FA algorithm information ----------------------------------------------------------------


def test_algorithm_information_yubikey_length_bug() -> None:
    declared = int.from_bytes(YK543_ALGORITHM_INFORMATION[2:4], "big")
    assert declared == len(YK543_ALGORITHM_INFORMATION) - 4 + 2  # the card's lie
    info = AlgorithmInformation.parse(YK543_ALGORITHM_INFORMATION)
    assert len(info.entries) == 4 * 12
    sig = info.for_slot(KeySlot.SIG)
    assert [str(a) for a in sig] == [
        "rsa2048",
        "rsa3072",
        "rsa4096",
        "nist_p256",
        "nist_p384",
        "nist_p521",
        "secp256k1",
        "brainpool_p256r1",
        "brainpool_p384r1",
        "brainpool_p512r1",
        "ed25519",
        "x25519",
    ]
    assert sig[0] == RsaAttributes(2048, 17, RsaImportFormat.STANDARD)
    assert len(info.for_slot(KeySlot.AUT)) == 12
    assert any(isinstance(a, EcAttributes) and a.curve is Curve.X25519 for a in sig)
    again = AlgorithmInformation.parse(bytes(info))
    assert again == info
    assert AlgorithmInformation.parse(bytes(info)[4:]) == info  # bare list


def test_algorithm_information_rejects() -> None:
    with pytest.raises(DataObjectError):
        AlgorithmInformation.parse(bytes.fromhex("FA08C50601080000110000"))  # trailing bytes
    with pytest.raises(DataObjectError):
        AlgorithmInformation.parse(bytes.fromhex("FA08C506010800001100"))  # C5 not attributes
    with pytest.raises((DataObjectError, TlvError)):
        AlgorithmInformation.parse(bytes.fromhex("FA"))


# --- C4, C5, C6, CD, DE, UIF -----------------------------------------------------------------


def test_pw_status() -> None:
    yk = PwStatus.parse(bytes.fromhex("017f7f7f030003"))
    assert yk.pw1_valid_for_several_signatures
    assert yk.retries(Secret.PW1) == 3 and yk.retries(Secret.RESET_CODE) == 0
    assert yk.max_length(Secret.PW3) == 127 and not yk.pin_block_2_format(Secret.PW3)
    assert bytes(yk) == bytes.fromhex("017f7f7f030003")
    yk4 = PwStatus.parse(bytes.fromhex("ff7f7f7f030003"))
    assert yk4.pw1_policy == 0xFF and yk4.pw1_valid_for_several_signatures
    reset = PwStatus.parse(bytes.fromhex("017f7f7f060c0d"))  # counters above 3 (YubiKey)
    assert reset.retries(Secret.PW3) == 13
    single = PwStatus.parse(bytes.fromhex("00a02020030303"))
    assert not single.pw1_valid_for_several_signatures
    assert single.max_length(Secret.PW1) == 0x20 and single.pin_block_2_format(Secret.PW1)
    assert PwStatus.policy_value(True) == b"\x01" and PwStatus.policy_value(False) == b"\x00"
    with pytest.raises(DataObjectError):
        PwStatus.parse(bytes.fromhex("017f7f7f0300"))


def test_fingerprints_three_and_four() -> None:
    ard = ApplicationRelatedData.parse(YK543_ARD_ED25519)
    assert ard.fingerprints is not None and len(ard.fingerprints.entries) == 4
    assert ard.fingerprint(KeySlot.SIG) == bytes.fromhex("ca443faa55282a2ca3ab28ce79840b67ad2760f4")
    assert ard.fingerprint(KeySlot.DEC) is None  # all zero
    assert ard.fingerprints.attestation == bytes.fromhex("e9f5079a2003e46930c0d9c24a4e3318fdcbcf67")
    three = Fingerprints.parse(bytes(60))
    assert three.get(KeySlot.AUT) is None and three.attestation is None
    for bad in (59, 100):
        with pytest.raises(DataObjectError):
            Fingerprints.parse(bytes(bad))
    ca = CaFingerprints.parse(bytes(80))
    assert isinstance(ca, CaFingerprints) and len(ca.entries) == 4


def test_generation_times() -> None:
    ard = ApplicationRelatedData.parse(YK543_ARD_ED25519)
    assert ard.generation_time(KeySlot.SIG) == 0x6563D4C4
    assert ard.generation_time(KeySlot.AUT) is None
    times = GenerationTimes.parse(bytes.fromhex("5741eec65741eec65741eec6"))
    assert times.entries == (0x5741EEC6,) * 3
    assert bytes(times) == bytes.fromhex("5741eec65741eec65741eec6")
    with pytest.raises(DataObjectError):
        GenerationTimes.parse(bytes(13))


def test_key_information() -> None:
    info = KeyInformation.parse(bytes.fromhex("0101020003008102"))
    assert info.status(KeySlot.SIG) is KeyStatus.GENERATED
    assert info.status(KeySlot.DEC) is KeyStatus.NONE
    assert bytes(info) == bytes.fromhex("0101020003008102")
    assert KeyInformation.parse(bytes.fromhex("0107")).status(KeySlot.SIG) is None
    with pytest.raises(DataObjectError):
        KeyInformation.parse(b"\x01")


def test_uif() -> None:
    uif = Uif.parse(bytes.fromhex("0120"))
    assert uif.mode_enum is UifMode.ENABLED and uif.enabled
    assert uif.feature == GeneralFeature.BUTTON
    assert bytes(uif) == bytes.fromhex("0120")
    assert Uif.parse(b"\x00").feature is None and bytes(Uif(0, None)) == b"\x00"
    assert Uif.parse(b"\x09\x20").mode_enum is None
    with pytest.raises(DataObjectError):
        Uif.parse(b"")


# --- KDF-DO ----------------------------------------------------------------------------------


def test_kdf_do_off() -> None:
    kdf = KdfDo.parse(YK543_KDF_OFF)
    assert not kdf.enabled and bytes(kdf) == YK543_KDF_OFF
    assert KdfDo.parse(bytes.fromhex("F903810100")) == kdf  # wrapped form
    assert KdfDo.parse(b"") == kdf  # never configured


def test_kdf_do_sha512() -> None:
    kdf = KdfDo.parse(YK543_KDF_SHA512)
    assert kdf.enabled
    assert kdf.hash_algorithm == KdfHash.SHA512
    assert kdf.iteration_count == 100000
    assert kdf.salt(Secret.PW1) == kdf.salt(Secret.PW3) == b"\xab" * 8
    assert kdf.initial_hash_pw1 is not None and len(kdf.initial_hash_pw1) == 64
    assert bytes(kdf) == YK543_KDF_SHA512


def test_kdf_do_salt_fallback_and_errors() -> None:
    single = KdfDo.parse(bytes.fromhex("8101038201088304000004008408" + "11" * 8))
    assert single.salt(Secret.RESET_CODE) == single.salt(Secret.PW3) == b"\x11" * 8
    with pytest.raises(ValueError):
        KdfDo().salt(Secret.PW1)
    for bad in (
        "820108",  # no algorithm
        "8101038201098304000004008408" + "11" * 8,  # unknown hash
        "8101038201088304000000008408" + "11" * 8,  # count zero
        "810103820108830400000400",  # no PW1 salt
        "810100810100",  # duplicate
        "81020003",  # algorithm of two bytes
    ):
        with pytest.raises(DataObjectError):
            KdfDo.parse(bytes.fromhex(bad))


def test_kdf_do_keeps_unknown_tags() -> None:
    data = bytes.fromhex("8101008A0142")
    kdf = KdfDo.parse(data)
    assert bytes(kdf) == data


# --- 65, 7A, 7F74, 7F66 ----------------------------------------------------------------------


def test_cardholder_data() -> None:
    yk = CardholderData.parse(YK543_CARDHOLDER)
    assert yk == CardholderData(b"", b"", b"9")
    assert yk.sex_value is Sex.NOT_APPLICABLE and yk.name_text == ""
    assert bytes(yk) == YK543_CARDHOLDER
    demo = CardholderData.parse(bytes.fromhex("5b09446f653c3c4a616e655f2d02656e5f350132"))
    assert demo.name_text == "Jane Doe" and demo.language == b"en"
    assert demo.sex_value is Sex.FEMALE
    assert CardholderData.parse(bytes(demo)) == demo
    assert CardholderData(b"M\xfcller<<Hans<Peter").name_text == "Hans Peter Müller"
    with pytest.raises(DataObjectError):
        CardholderData.parse(bytes.fromhex("5b01415b0142"))
    with pytest.raises(DataObjectError):
        CardholderData.parse(bytes.fromhex("5e0141"))


def test_security_support_template() -> None:
    assert SecuritySupportTemplate.parse(YK543_SST_0).signature_counter == 0
    sst = SecuritySupportTemplate.parse(YK543_SST_3)
    assert sst.signature_counter == 3 and bytes(sst) == YK543_SST_3
    assert SecuritySupportTemplate.parse(YK543_SST_3[2:]) == sst  # bare
    with pytest.raises(DataObjectError):
        SecuritySupportTemplate.parse(bytes.fromhex("7a00"))


def test_general_feature_management() -> None:
    gfm = GeneralFeatureManagement.parse(bytes.fromhex("7f7403810120"))
    assert gfm.features == GeneralFeature.BUTTON
    assert bytes(gfm) == bytes.fromhex("7f7403810120")
    with pytest.raises(DataObjectError):
        GeneralFeatureManagement.parse(bytes.fromhex("820120"))


def test_extended_length_info() -> None:
    eli = ExtendedLengthInfo.parse(bytes.fromhex("7f660802020bfe02020bfe"))
    assert eli == ExtendedLengthInfo(0x0BFE, 0x0BFE)
    assert bytes(eli) == bytes.fromhex("7f660802020bfe02020bfe")
    assert ExtendedLengthInfo.parse(bytes.fromhex("02020bfe02020bfe")) == eli
    with pytest.raises(DataObjectError):
        ExtendedLengthInfo.parse(bytes.fromhex("02020bfe"))


# --- 7F49 public keys ------------------------------------------------------------------------


def test_public_key_rsa() -> None:
    key = parse_public_key(YK543_PUBLIC_RSA2048)
    assert isinstance(key, RsaPublicKey)
    assert key.n_bits == 2048 and key.e == 65537
    assert bytes(key) == YK543_PUBLIC_RSA2048


@pytest.mark.parametrize(
    ("data", "length"),
    [(YK543_PUBLIC_P256, 65), (YK543_PUBLIC_ED25519, 32), (YK543_PUBLIC_X25519, 32)],
)
def test_public_key_ecc(data: bytes, length: int) -> None:
    key = parse_public_key(data)
    assert isinstance(key, EcPublicKey) and len(key.point) == length
    assert bytes(key) == data
    assert parse_public_key(data[3:]) == key  # without the 7F49 tag


@pytest.mark.parametrize("data", ["7f4900", "7f4903810101", "7f4906860182020101", "7f49028600"])
def test_public_key_malformed(data: str) -> None:
    with pytest.raises(DataObjectError):
        parse_public_key(bytes.fromhex(data))


# --- 6E application related data -------------------------------------------------------------


def test_ard_yubikey_5() -> None:
    ard = ApplicationRelatedData.parse(YK543_ARD)
    assert ard.aid.serial == YK543_SERIAL and ard.aid.manufacturer_name == "Yubico"
    assert ard.historical_bytes is not None
    assert ard.historical_bytes.card_capabilities is not None
    assert ard.historical_bytes.card_capabilities.extended_lc_le
    assert ard.extended_length_info == ExtendedLengthInfo(3070, 3070)  # found inside 73
    assert ard.general_feature_management == GeneralFeatureManagement(GeneralFeature.BUTTON)
    assert ard.extended_capabilities is not None
    assert ard.extended_capabilities.max_certificate_length == 2048
    for slot in KeySlot:
        assert ard.attributes(slot) == RsaAttributes(2048, 17, RsaImportFormat.STANDARD)
        assert ard.uif(slot) == Uif(UifMode.DISABLED, GeneralFeature.BUTTON)
        assert ard.fingerprint(slot) is None
    assert ard.attributes_att == RsaAttributes(2048, 17, RsaImportFormat.STANDARD)
    assert ard.uif_att == Uif(0, 0x20)
    assert ard.key_information is not None
    assert ard.key_information.status(KeySlot.SIG) is KeyStatus.NONE
    assert ard.pw_status == PwStatus(1, 0x7F, 0x7F, 0x7F, 3, 0, 3)
    assert ard.unknown == ()


def test_ard_nitrokey_bare() -> None:
    ard = ApplicationRelatedData.parse(NITROKEY_PRO_ARD)
    assert ard.aid.manufacturer_name == "ZeitControl" and ard.aid.version == (2, 1)
    assert ard.extended_capabilities is not None and not ard.extended_capabilities.v3
    assert ard.extended_capabilities.max_response_length == 0x0800
    assert ard.attributes(KeySlot.SIG) == RsaAttributes(2048, 32, RsaImportFormat.STANDARD)
    assert ard.pw_status is not None and ard.pw_status.max_length(Secret.PW1) == 32
    assert ard.generation_time(KeySlot.DEC) == 0x5741EEC6
    assert ard.extended_length_info is None and ard.key_information is None


def test_ard_neo_empty_73() -> None:
    ard = ApplicationRelatedData.parse(NEO_ARD_EMPTY_73)
    assert ard.extended_capabilities is not None
    assert ard.extended_capabilities.supports(ExtendedCapability.SECURE_MESSAGING)
    assert ard.extended_capabilities.max_certificate_length == 1216
    assert ard.attributes(KeySlot.AUT) == RsaAttributes(2048, 17, RsaImportFormat.CRT_WITH_MODULUS)
    assert ard.fingerprint(KeySlot.SIG) == bytes.fromhex("98b23401029d2666e129e0b97e2f7e6d1026a77c")
    assert ard.pw_status is not None and not ard.pw_status.pw1_valid_for_several_signatures


def test_ard_neo_and_yk4() -> None:
    neo = ApplicationRelatedData.parse(NEO_ARD)
    assert neo.aid.manufacturer == 0 and neo.aid.serial == 1
    yk4 = ApplicationRelatedData.parse(YK4_ARD)
    assert yk4.general_feature_management is not None
    assert yk4.pw_status is not None and yk4.pw_status.pw1_policy == 0xFF
    assert yk4.extended_capabilities is not None
    assert yk4.extended_capabilities.max_certificate_length == 0x04C0


@pytest.mark.parametrize("name", sorted(ALL_ARD))
def test_ard_round_trip(name: str) -> None:
    ard = ApplicationRelatedData.parse(ALL_ARD[name])
    encoded = bytes(ard)
    assert encoded[0] == Do.APPLICATION_RELATED_DATA
    assert ApplicationRelatedData.parse(encoded) == ard
    assert bytes(ApplicationRelatedData.parse(encoded)) == encoded  # canonical is a fixpoint


def test_ard_canonical_layout_is_byte_exact() -> None:
    # The YubiKey puts 7F66 inside 73; the spec layout has it next to 7F74:
    # 6E { 4F 5F52 7F66 7F74 73 { C0 C1 C2 C3 DA C4 C5 C6 CD DE D6 D7 D8 D9 } }.
    top = tlv.parse(tlv.parse(YK543_ARD)[0].value)
    assert [t.tag for t in top] == [0x4F, 0x5F52, 0x7F74, 0x73]
    inner = tlv.parse(top[3].value)
    eli = next(t for t in inner if t.tag == 0x7F66)
    rest = [t for t in inner if t.tag != 0x7F66]
    discretionary = tlv.Tlv(0x73, b"".join(bytes(t) for t in rest))
    expected = tlv.build(0x6E, [top[0], top[1], eli, top[2], discretionary])
    assert bytes(ApplicationRelatedData.parse(YK543_ARD)) == expected


def test_ard_unknown_children_kept() -> None:
    data = bytes.fromhex("6e174f10d27600012401030400062385277400007300e20142")
    ard = ApplicationRelatedData.parse(data)
    assert [(t.tag, t.value) for t in ard.unknown] == [(0xE2, b"\x42")]
    assert ApplicationRelatedData.parse(bytes(ard)) == ard


@pytest.mark.parametrize(
    "data",
    [
        "6e00",  # no AID
        "6e055f52020000",  # no AID
        "6e244f10d27600012401030400062385277400004f10d2760001240103040006238527740000",
        "6e144f10d2760001240103040006238527740000c400",  # C4 too short
    ],
)
def test_ard_malformed(data: str) -> None:
    with pytest.raises(ApduError):
        ApplicationRelatedData.parse(bytes.fromhex(data))
