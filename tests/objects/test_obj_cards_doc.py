"""docs/cards.md, "What opcard does on each family": the table says what the driver does.

Each row is computed here by running opcard on a card of each profile (in process, loopback
transport): the framing it chose, how it picks an algorithm, the certificates it exposes, the
features it reports as not supported, and what a factory reset does with and without the
admin PIN (performed, on a fresh card each). The table in the document must equal what is
computed. ``python tests/objects/test_obj_cards_doc.py`` prints the rows.
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Callable

from opcard_support import Rig, make_rig

import opcard
from fixtures.profiles import FAMILY_PROFILES
from opcard.card import CardFeatures

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "cards.md"
SECTION = "## What opcard does on each family"
COLUMNS = ("generic", *FAMILY_PROFILES)  # "generic": the profile "extended"
PW3 = "12345678"


def _rig(column: str) -> Rig:
    profile = "extended" if column == "generic" else column
    return make_rig(profile, "demo-rsa")


def _framing(rig: Rig) -> str:
    rig.card.application_data()
    f = rig.card.channel.framing
    size = f"extended {f.max_command}/{f.max_response}" if f.extended else "short"
    return f"{size}, {'chaining' if f.chaining else 'no chaining'}"


def _algorithm_choice(rig: Rig) -> str:
    features = rig.card.features()
    if features.algorithm_information:
        return "from FA: others refused before any PIN"
    if not features.algorithm_attributes_changeable:
        return "fixed (C0): a change is refused before any PIN"
    return "asks the card: its refusal reported, nothing changed"


def _certificates(rig: Rig) -> str:
    slots = rig.card.features().certificate_slots
    return ", ".join(s.name for s in slots) or "none"


def _missing(rig: Rig) -> str:
    missing = rig.card.features().missing
    return ", ".join(CardFeatures.NAMES[m] for m in missing) or "none"


def _reset(admin_pin: str | None) -> Callable[[Rig], str]:
    def run(rig: Rig) -> str:
        before = rig.tries()
        with rig.card.session() as session:
            try:
                session.factory_reset(admin_pin) if admin_pin else session.factory_reset()
            except opcard.errors.NotSupportedByCardError:
                outcome = "not supported by this card"
            except opcard.errors.NotLoggedInError:
                outcome = "refused: needs the admin PIN"
            else:
                outcome = "reset"
        if outcome != "reset":
            assert rig.tries() == before, "a refused reset must not use a PIN try"
            return outcome + ", nothing changed"
        assert rig.emu.state.keys == [None, None, None]
        return outcome

    return run


ROWS: dict[str, Callable[[Rig], str]] = {
    "APDUs opcard sends": _framing,
    "algorithm for a new key": _algorithm_choice,
    "certificates exposed (CLI, objects, serve)": _certificates,
    "shown as not supported by this card": _missing,
    "factory reset with the admin PIN": _reset(PW3),
    "factory reset without it": _reset(None),
}


def computed() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for row, fn in ROWS.items():
        cells = {}
        for column in COLUMNS:
            rig = _rig(column)  # a fresh card for every cell (the reset rows change it)
            try:
                cells[column] = fn(rig)
            finally:
                rig.card.close()
        out[row] = cells
    return out


def render() -> str:
    lines = ["| opcard | " + " | ".join(f"`{c}`" for c in COLUMNS) + " |"]
    lines.append("|---" * (len(COLUMNS) + 1) + "|")
    for row, cells in computed().items():
        lines.append(f"| {row} | " + " | ".join(cells[c] for c in COLUMNS) + " |")
    return "\n".join(lines)


def _doc_table() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    assert SECTION in text, f"docs/cards.md has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_the_driver_table_matches_what_opcard_does() -> None:
    assert _doc_table() == render().splitlines()


if __name__ == "__main__":
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    print(render())
