"""opcard.pkcs11.uri: the RFC 7512 section 4 examples, round trips, percent-encoding, matching,
refusals, and the pin-value secret."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opcard.errors import OpcardError, UriError
from opcard.pkcs11 import Attribute, ObjectClass, ReturnValue
from opcard.pkcs11.uri import ObjectType, Pkcs11Uri, parse_uri


def rfc(text: str) -> str:
    """An example as printed in the RFC, where a URI is broken over lines: the line breaks and
    indentation are not part of it."""
    return re.sub(r"\s+", "", text)


# RFC 7512 section 4, every example, with what it must parse to.
RFC_EXAMPLES: list[tuple[str, Pkcs11Uri]] = [
    ("pkcs11:", Pkcs11Uri()),
    (
        "pkcs11:object=my-pubkey;type=public",
        Pkcs11Uri(object_label="my-pubkey", object_type=ObjectType.PUBLIC),
    ),
    (
        "pkcs11:object=my-key;type=private?pin-source=file:/etc/token",
        Pkcs11Uri(
            object_label="my-key", object_type=ObjectType.PRIVATE, pin_source="file:/etc/token"
        ),
    ),
    (
        rfc("""pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;
               manufacturer=Snake%20Oil,%20Inc.;
               model=1.0;
               object=my-certificate;
               type=cert;
               id=%69%95%3E%5C%F4%BD%EC%91;
               serial=
               ?pin-source=file:/etc/token_pin"""),
        Pkcs11Uri(
            token="The Software PKCS#11 Softtoken",
            manufacturer="Snake Oil, Inc.",
            model="1.0",
            object_label="my-certificate",
            object_type=ObjectType.CERT,
            object_id=bytes.fromhex("69953E5CF4BDEC91"),
            serial="",
            pin_source="file:/etc/token_pin",
        ),
    ),
    (
        rfc("""pkcs11:object=my-sign-key;
               type=private
               ?module-name=mypkcs11"""),
        Pkcs11Uri(
            object_label="my-sign-key", object_type=ObjectType.PRIVATE, module_name="mypkcs11"
        ),
    ),
    (
        rfc("""pkcs11:object=my-sign-key;
               type=private
               ?module-path=/mnt/libmypkcs11.so.1"""),
        Pkcs11Uri(
            object_label="my-sign-key",
            object_type=ObjectType.PRIVATE,
            module_path="/mnt/libmypkcs11.so.1",
        ),
    ),
    (
        rfc("""pkcs11:token=Software%20PKCS%2311%20softtoken;
               manufacturer=Snake%20Oil,%20Inc.
               ?pin-value=the-pin"""),
        Pkcs11Uri(
            token="Software PKCS#11 softtoken", manufacturer="Snake Oil, Inc.", pin_value="the-pin"
        ),
    ),
    ("pkcs11:slot-description=Sun%20Metaslot", Pkcs11Uri(slot_description="Sun Metaslot")),
    (
        rfc("""pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;
               library-description=Soft%20Token%20Library;
               library-version=1.23"""),
        Pkcs11Uri(
            library_manufacturer="Snake Oil, Inc.",
            library_description="Soft Token Library",
            library_version=(1, 23),
        ),
    ),
    (
        rfc("""pkcs11:token=My%20token%25%20created%20by%20Joe;
               library-version=3;
               id=%01%02%03%Ba%dd%Ca%fe%04%05%06"""),
        Pkcs11Uri(
            token="My token% created by Joe",
            library_version=(3, 0),
            object_id=bytes.fromhex("010203BADDCAFE040506"),
        ),
    ),
    (
        rfc("""pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;
               object=my-certificate;
               type=cert"""),
        Pkcs11Uri(
            token="A name with a substring %;",
            object_label="my-certificate",
            object_type=ObjectType.CERT,
        ),
    ),
    (
        rfc("""pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;
               object=my-certificate;
               type=cert"""),
        Pkcs11Uri(
            token="Name with a small A with acute: \u00e1",
            object_label="my-certificate",
            object_type=ObjectType.CERT,
        ),
    ),
    (
        rfc("""pkcs11:token=my-token;
               object=my-certificate;
               type=cert;
               vendor-aaa=value-a
               ?pin-source=file:/etc/token_pin
               &vendor-bbb=value-b"""),
        Pkcs11Uri(
            token="my-token",
            object_label="my-certificate",
            object_type=ObjectType.CERT,
            pin_source="file:/etc/token_pin",
            vendor_path=(("vendor-aaa", "value-a"),),
            vendor_query=(("vendor-bbb", "value-b"),),
        ),
    ),
]


@pytest.mark.parametrize(("text", "expected"), RFC_EXAMPLES, ids=[t[:40] for t, _ in RFC_EXAMPLES])
def test_rfc_examples_parse(text: str, expected: Pkcs11Uri) -> None:
    assert Pkcs11Uri.parse(text) == expected
    assert parse_uri(text) == expected


@pytest.mark.parametrize(("text", "expected"), RFC_EXAMPLES, ids=[t[:40] for t, _ in RFC_EXAMPLES])
def test_rfc_examples_round_trip(text: str, expected: Pkcs11Uri) -> None:
    formatted = expected.format(include_pin=True)
    assert Pkcs11Uri.parse(formatted) == expected
    # formatting is canonical: format(parse(format(x))) is stable
    assert Pkcs11Uri.parse(formatted).format(include_pin=True) == formatted


def test_canonical_form_of_an_rfc_example() -> None:
    uri = Pkcs11Uri.parse(RFC_EXAMPLES[3][0])
    assert str(uri) == (
        "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;"
        "serial=;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91"
        "?pin-source=file:/etc/token_pin"
    )
    # lower-case hex digits are accepted and written back in upper case
    assert str(Pkcs11Uri.parse(RFC_EXAMPLES[9][0])) == (
        "pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;"
        "id=%01%02%03%BA%DD%CA%FE%04%05%06"
    )
    assert str(Pkcs11Uri.parse("pkcs11:library-version=1.0")) == "pkcs11:library-version=1"


def test_exact_round_trip_of_canonical_examples() -> None:
    for text in (
        "pkcs11:object=my-pubkey;type=public",
        "pkcs11:object=my-key;type=private?pin-source=file:/etc/token",
        "pkcs11:slot-description=Sun%20Metaslot",
        "pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;"
        "library-description=Soft%20Token%20Library;library-version=1.23",
        "pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;"
        "object=my-certificate;type=cert",
    ):
        assert Pkcs11Uri.parse(text).format(include_pin=True) == text


def test_percent_encoding_sets() -> None:
    uri = Pkcs11Uri(
        token="a;b?c/d&e=f:g@h!$'()*+,[]~_.-",
        object_label="100% sure #1",
        module_path="/usr/lib/x.so?a=b|c&d;e",
    )
    text = uri.format()
    # path: ';' '?' '/' escaped, '&' '=' and the other available characters literal
    assert "token=a%3Bb%3Fc%2Fd&e=f:g@h!$'()*+,[]~_.-;" in text
    assert "object=100%25%20sure%20%231" in text
    # query: '/' '?' '|' literal, '&' and ';' escaped
    assert "module-path=/usr/lib/x.so?a=b|c%26d%3Be" in text
    assert Pkcs11Uri.parse(text) == uri


def test_scheme_and_names_are_case_insensitive() -> None:
    uri = Pkcs11Uri.parse("PKCS11:Token=x;TYPE=Cert;Id=%aB")
    assert uri == Pkcs11Uri(token="x", object_type=ObjectType.CERT, object_id=b"\xab")


def test_type_and_object_class() -> None:
    assert ObjectType.PRIVATE.object_class is ObjectClass.PRIVATE_KEY
    assert ObjectType.of(ObjectClass.CERTIFICATE) is ObjectType.CERT
    assert ObjectType.of(1) is ObjectType.CERT
    with pytest.raises(ValueError):
        ObjectType.of(ObjectClass.HW_FEATURE)


MALFORMED = [
    "",
    "pkcs11",
    "pkcs12:token=x",
    "http://example.org",
    "pkcs11:token",  # no '='
    "pkcs11:token=a;;object=b",  # empty component
    "pkcs11:token=a;",  # trailing separator
    "pkcs11:=x",  # empty name
    "pkcs11:to ken=x",
    "pkcs11:token=a b",  # space must be escaped
    "pkcs11:token=a/b",  # '/' must be escaped in the path
    "pkcs11:token=a%2",  # truncated escape
    "pkcs11:token=a%zz",
    "pkcs11:token=%C3",  # not UTF-8
    "pkcs11:token=a#frag",
    "pkcs11:token=a;token=b",  # duplicate path attribute
    "pkcs11:x-a=1;X-A=2",  # duplicate vendor path attribute
    "pkcs11:type=key",
    "pkcs11:type=",
    "pkcs11:library-version=1.",
    "pkcs11:library-version=a",
    "pkcs11:library-version=256",
    "pkcs11:slot-id=-1",
    "pkcs11:slot-id=0x10",
    "pkcs11:slot-id=",
    "pkcs11:pin-source=x",  # query attribute in the path
    "pkcs11:?token=x",  # path attribute in the query
    "pkcs11:?pin-source=a&pin-source=b",
    "pkcs11:?pin-source=a&pin-value=b",  # both PIN attributes
    "pkcs11:?module-name=a&b",  # '&' must be escaped in the query
    "pkcs11:?module-name=a;b",
    "pkcs11:token=\u00e1",  # non-ASCII must be %-encoded
]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_uris_are_refused(text: str) -> None:
    with pytest.raises(UriError) as info:
        Pkcs11Uri.parse(text)
    assert isinstance(info.value, ValueError) and isinstance(info.value, OpcardError)
    assert info.value.return_value is ReturnValue.ARGUMENTS_BAD


def test_parse_needs_a_string() -> None:
    with pytest.raises(TypeError):
        Pkcs11Uri.parse(b"pkcs11:")  # type: ignore[arg-type]


def test_vendor_query_attributes_may_repeat() -> None:
    uri = Pkcs11Uri.parse("pkcs11:?x-a=1&x-a=2&pin-source=p")
    assert uri.vendor_query == (("x-a", "1"), ("x-a", "2"))
    assert Pkcs11Uri.parse(uri.format()) == uri
    assert Pkcs11Uri.parse("pkcs11:?") == Pkcs11Uri()


def test_constructor_checks() -> None:
    with pytest.raises(UriError):
        Pkcs11Uri(pin_source="a", pin_value="b")
    with pytest.raises(UriError):
        Pkcs11Uri(library_version=(1, 300))
    with pytest.raises(UriError):
        Pkcs11Uri(vendor_path=(("token", "x"),))
    with pytest.raises(UriError):
        Pkcs11Uri(vendor_path=(("bad name", "x"),))
    with pytest.raises(TypeError):
        Pkcs11Uri(token=b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Pkcs11Uri(object_id="01")  # type: ignore[arg-type]
    assert Pkcs11Uri(object_type="cert").object_type is ObjectType.CERT  # type: ignore[arg-type]
    assert Pkcs11Uri(vendor_query=(("X-Mine", "v"),)).vendor_query == (("x-mine", "v"),)


# --- the PIN stays out of reprs, strings and errors ----------------------------------------

PIN = "s3cret-Pin-42"


def test_pin_value_is_redacted() -> None:
    uri = Pkcs11Uri.parse(f"pkcs11:token=t;object=o?pin-value={PIN}")
    assert uri.pin_value == PIN
    assert PIN not in repr(uri)
    assert "pin-value=<redacted>" in repr(uri)
    assert PIN not in str(uri)
    assert PIN not in f"{uri}"
    assert PIN not in uri.format()
    assert "pin-value" not in str(uri)
    assert uri.format(include_pin=True).endswith(f"?pin-value={PIN}")
    assert Pkcs11Uri.parse(uri.format(include_pin=True)) == uri
    assert PIN not in repr([uri, {"u": uri}])


@pytest.mark.parametrize(
    "text",
    [
        f"pkcs11:?pin-value={PIN} x",
        f"pkcs11:?pin-value={PIN}%zz",
        f"pkcs11:?pin-value={PIN}%FF",
        f"pkcs11:?pin-value={PIN}&pin-value={PIN}",
        f"pkcs11:?pin-value={PIN}&pin-source=file:/x",
        f"pkcs11:token=a#{PIN}",
    ],
)
def test_errors_never_quote_the_pin(text: str) -> None:
    with pytest.raises(UriError) as info:
        Pkcs11Uri.parse(text)
    assert PIN not in str(info.value)
    assert PIN not in repr(info.value)


# --- matching ------------------------------------------------------------------------------

TOKEN = {
    "token": "OpenPGP card 00051234".ljust(32),
    "manufacturer": "ZeitControl".ljust(32),
    "model": "OpenPGP v3.4".ljust(16),
    "serial": "000500001234".ljust(16),
    "slot-description": "Virtual PCD 00 00".ljust(64),
    "slot-manufacturer": "opcard".ljust(32),
    "slot-id": 1,
    "library-manufacturer": "opcard".ljust(32),
    "library-description": "opcard".ljust(32),
    "library-version": (0, 1),
}
SIG_KEY = {
    Attribute.CLASS: ObjectClass.PRIVATE_KEY,
    Attribute.ID: b"\x01",
    Attribute.LABEL: "Signature key",
}


@pytest.mark.parametrize(
    ("text", "token", "obj"),
    [
        ("pkcs11:", True, True),
        ("pkcs11:serial=000500001234", True, True),
        ("pkcs11:serial=000500001235", False, True),
        ("pkcs11:token=OpenPGP%20card%2000051234;model=OpenPGP%20v3.4", True, True),
        ("pkcs11:manufacturer=zeitcontrol", False, True),  # values are case-sensitive
        ("pkcs11:slot-id=1;slot-description=Virtual%20PCD%2000%2000", True, True),
        ("pkcs11:slot-id=2", False, True),
        ("pkcs11:library-version=0.1", True, True),
        ("pkcs11:library-version=0", False, True),
        ("pkcs11:type=private;id=%01", True, True),
        ("pkcs11:type=public;id=%01", True, False),
        ("pkcs11:id=%03", True, False),
        ("pkcs11:object=Signature%20key", True, True),
        ("pkcs11:object=Signature", True, False),
        ("pkcs11:serial=000500001234;x-opcard-reader=1", False, False),  # unknown: no match
        ("pkcs11:serial=000500001234?x-whatever=1&module-name=opcard", True, True),
    ],
)
def test_matching(text: str, token: bool, obj: bool) -> None:
    uri = Pkcs11Uri.parse(text)
    assert uri.matches_token(TOKEN) is token
    assert uri.matches_object(SIG_KEY) is obj
    assert uri.matches(TOKEN, SIG_KEY) is (token and obj)


def test_matching_needs_the_attribute() -> None:
    uri = Pkcs11Uri.parse("pkcs11:model=x;object=y")
    assert not uri.matches_token({"token": "t"})
    assert not uri.matches_object({Attribute.CLASS: ObjectClass.DATA})
    assert Pkcs11Uri.parse("pkcs11:object=caf%C3%A9").matches_object(
        {Attribute.LABEL: "caf\u00e9".encode()}
    )
    assert not Pkcs11Uri.parse("pkcs11:object=x").matches_object({Attribute.LABEL: b"\xff"})
    assert Pkcs11Uri.parse("pkcs11:id=%01%02").matches_object(
        {Attribute.ID: bytearray(b"\x01\x02")}
    )


def test_object_template() -> None:
    uri = Pkcs11Uri.parse("pkcs11:token=x;object=Auth%20key;type=private;id=%03")
    assert uri.object_template() == {
        Attribute.LABEL: "Auth key",
        Attribute.CLASS: ObjectClass.PRIVATE_KEY,
        Attribute.ID: b"\x03",
    }
    assert uri.token_attributes() == {"token": "x"}


# --- property: anything we can hold, we can write and read back ----------------------------

_text = st.text(max_size=20)  # any code point but surrogates


@given(
    token=st.none() | _text,
    serial=st.none() | _text,
    object_label=st.none() | _text,
    object_type=st.none() | st.sampled_from(list(ObjectType)),
    object_id=st.none() | st.binary(max_size=20),
    library_version=st.none() | st.tuples(st.integers(0, 255), st.integers(0, 255)),
    slot_id=st.none() | st.integers(0, 2**64 - 1),
    pin_value=st.none() | _text,
    module_path=st.none() | _text,
    vendor=st.lists(
        st.tuples(st.from_regex(r"x-[a-z0-9_]{1,8}", fullmatch=True), _text), max_size=3
    ),
)
def test_round_trip_property(
    token: str | None,
    serial: str | None,
    object_label: str | None,
    object_type: ObjectType | None,
    object_id: bytes | None,
    library_version: tuple[int, int] | None,
    slot_id: int | None,
    pin_value: str | None,
    module_path: str | None,
    vendor: list[tuple[str, str]],
) -> None:
    uri = Pkcs11Uri(
        token=token,
        serial=serial,
        object_label=object_label,
        object_type=object_type,
        object_id=object_id,
        library_version=library_version,
        slot_id=slot_id,
        pin_value=pin_value,
        module_path=module_path,
        vendor_query=tuple(vendor),
    )
    text = uri.format(include_pin=True)
    assert text.isascii() and " " not in text
    assert Pkcs11Uri.parse(text) == uri
