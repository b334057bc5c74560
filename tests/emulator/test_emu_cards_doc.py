"""docs/cards.md: the card family x feature table says what the profiles do.

Each row of the table whose first cell is one of ROWS below is compared, column by column (the
header names the profile), with the value computed here from fixtures.profiles. Rows and
columns the table has beyond these (for instance what the driver does) are left alone.
``python tests/emulator/test_emu_cards_doc.py`` prints the computed rows.
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Callable

from fixtures.card import OpenPGPCard
from fixtures.profiles import (
    FAMILY_PROFILES,
    PROFILES,
    TERMINATE_BLOCKED_ONLY,
    TERMINATE_PW3_ONLY,
    TERMINATE_PW3_OR_BLOCKED,
    TERMINATE_PW3_OR_PW3_BLOCKED,
    Profile,
    personalizations,
)

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "cards.md"
COLUMNS = ("generic", *FAMILY_PROFILES)  # "generic": the profile "extended"


def _profile(column: str) -> Profile:
    return PROFILES["extended" if column == "generic" else column]


def _hex(b: bytes) -> str:
    return b.hex().upper()


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _sw(sw: int) -> str:
    return f"{sw:04X}"


def _c0(p: Profile) -> str:
    card = OpenPGPCard(p)
    return _hex(card._ext_caps())


def _c4(p: Profile) -> str:
    return _hex(OpenPGPCard(p)._pw_status())


def _algos(p: Profile, slot: int) -> str:
    names = p.algorithm_names(slot)
    rsa = [n[3:] for n in names if n.startswith("rsa")]
    curves = [n.split("-", 1)[1] for n in names if not n.startswith("rsa")]
    parts = []
    if rsa:
        parts.append("RSA " + "/".join(rsa))
    if curves:
        parts.append(", ".join(curves))
    return "; ".join(parts)


def _lengths(p: Profile) -> str:
    ext = f"extended {p.max_command_len}/{p.max_response_len}" if p.extended_length else "short"
    chain = "chaining" if p.command_chaining else "no chaining (6884)"
    return f"{ext}, {chain}"


def _hist_caps(p: Profile) -> str:
    hist = p.historical_bytes()
    i = hist.find(b"\x73")
    caps = hist[i + 3] if 0 <= i < len(hist) - 3 else 0
    return f"{caps:02X}" + (
        " ("
        + "+".join(name for bit, name in ((0x80, "chaining"), (0x40, "extended")) if caps & bit)
        + ")"
        if caps & 0xC0
        else ""
    )


def _terminate(p: Profile) -> str:
    if not p.terminate:
        return "unknown INS (6D00)"
    return {
        TERMINATE_PW3_OR_BLOCKED: "after PW3 or PW1+PW3 blocked",
        TERMINATE_BLOCKED_ONLY: "PW1+PW3 blocked only (else 6985)",
        TERMINATE_PW3_OR_PW3_BLOCKED: "after PW3 or PW3 blocked",
        TERMINATE_PW3_ONLY: "after PW3 only (else 6982)",
    }[p.terminate_rule]


def _bare(p: Profile) -> str:
    tags = sorted(p.bare)
    return " ".join(f"{t:02X}" for t in tags) if tags else "none"


def _uif(p: Profile) -> str:
    if not p.uif:
        return "no"
    where = "D6-D8 in 73" if p.uif_in_6e else "D6-D8 on their own"
    values = "any byte" if p.uif_max == 0xFF else f"00-{p.uif_max:02X}"
    return f"{values}, {where}"


def _certs(p: Profile) -> str:
    select = "SELECT DATA" if p.cert_slots > 1 else "no SELECT DATA (6D00)"
    extra = "" if p.cert_writable else ", PUT DATA 7F21 refused (6A88)"
    return f"{p.cert_slots} x {p.max_cert_size} bytes, {select}{extra}"


def _attr_form(p: Profile) -> str:
    rsa = _hex(p.rsa_attributes(2048))
    ecc = "with FF" if p.ecc_import_byte is not None else "OID only"
    return f"RSA-2048 {rsa}; ECC {ecc}"


def _refusal(p: Profile) -> str:
    if not p.attributes_changeable:
        return f"not changeable ({_sw(p.absent_do_sw)})"
    sw = _sw(p.unsupported_attributes_sw)
    if p.unknown_algorithm_sw is not None:
        sw += f", unknown algorithm id {_sw(p.unknown_algorithm_sw)}"
    if p.attribute_match == "exact":
        sw += " (byte-exact match)"
    return sw


def _unknown_commands(p: Profile) -> str:
    missing = []
    if p.cert_slots < 2:
        missing += ["SELECT DATA", "GET NEXT DATA"]
    if not p.mse:
        missing.append("MSE")
    if not p.get_challenge:
        missing.append("GET CHALLENGE")
    if not p.terminate:
        missing += ["TERMINATE DF", "ACTIVATE FILE"]
    return ", ".join(missing) or "none"


ROWS: dict[str, Callable[[Profile], str]] = {
    "spec version (AID 4F bytes 7-8)": lambda p: f"{p.version >> 8}.{p.version & 0xFF}",
    "manufacturer (AID bytes 9-10)": lambda p: f"{p.manufacturer:04X}",
    "ATR": lambda p: _hex(p.atr),
    "historical bytes 5F52": lambda p: _hex(p.historical_bytes()),
    "5F52 card capabilities": _hist_caps,
    "APDUs the card takes": _lengths,
    "short answers per APDU before 61xx": lambda p: str(min(256, p.short_response_max)),
    "7F66 extended length info": lambda p: (
        ("in 73" if p.ext_length_in_73 else "in 6E") if p.has_ext_length_info else "no"
    ),
    "C0 extended capabilities": _c0,
    "C4 PW status (factory)": _c4,
    "PIN length refused with": lambda p: _sw(p.pin_length_sw),
    "certificates": _certs,
    "FA algorithm information": lambda p: _yes(p.algorithm_info),
    "KDF (F9)": lambda p: _yes(p.kdf),
    "UIF": _uif,
    "7F74 general feature management": lambda p: (
        "no" if p.general_feature_do is None else _hex(p.general_feature_do)
    ),
    "DE key information": lambda p: _yes(p.key_information),
    "attestation key (DA, D9, 4th fingerprint)": lambda p: _yes(p.attestation),
    "private DOs 0101-0104": lambda p: _yes(p.private_dos),
    "absent DO (GET/PUT DATA)": lambda p: _sw(p.absent_do_sw),
    "DOs sent without outer tag": _bare,
    "SIG / AUT algorithms": lambda p: _algos(p, 0),
    "DEC algorithms": lambda p: _algos(p, 1),
    "attributes as the card writes them": _attr_form,
    "unsupported attributes (PUT DATA C1-C3)": _refusal,
    "TERMINATE DF": _terminate,
    "commands it does not know (6D00)": _unknown_commands,
    "Yubico GET VERSION (F1)": lambda p: (
        "no" if p.yubico_version is None else " ".join(f"{b:02X}" for b in p.yubico_version)
    ),
    "demo personalisations": lambda p: ", ".join(personalizations(p)),
}


def computed() -> dict[str, dict[str, str]]:
    return {row: {c: fn(_profile(c)) for c in COLUMNS} for row, fn in ROWS.items()}


def render() -> str:
    lines = ["| feature | " + " | ".join(f"`{c}`" for c in COLUMNS) + " |"]
    lines.append("|---" * (len(COLUMNS) + 1) + "|")
    for row, cells in computed().items():
        lines.append(f"| {row} | " + " | ".join(cells[c] for c in COLUMNS) + " |")
    return "\n".join(lines)


def _doc_table() -> tuple[list[str], dict[str, list[str]]]:
    header: list[str] = []
    rows: dict[str, list[str]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| "):
            if header and rows:
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not header:
            if cells[0] == "feature":
                header = [c.strip("`") for c in cells]
            continue
        if set(cells[0]) <= {"-", ":"}:
            continue
        rows[cells[0]] = cells
    return header, rows


def test_cards_md_table_matches_the_profiles() -> None:
    header, rows = _doc_table()
    assert header, "docs/cards.md has no card family x feature table"
    for column in COLUMNS:
        assert column in header, f"docs/cards.md table has no column {column!r}"
    for row, cells in computed().items():
        assert row in rows, f"docs/cards.md table has no row {row!r}"
        for column, value in cells.items():
            got = rows[row][header.index(column)]
            assert got == value, f"{row} / {column}: docs say {got!r}, the profile {value!r}"


def test_cards_md_has_sources_for_every_family() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name in FAMILY_PROFILES:
        assert f"### `{name}`" in text, f"no Sources section for {name}"


if __name__ == "__main__":
    sys.stdout.write(render() + "\n")
