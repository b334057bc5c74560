"""What importing a module loads (at run time, in a fresh interpreter): the lazy imports that
keep the command line's start-up short must not silently become eager again.

- ``apdu.openpgp`` resolves its package attributes on first use (PEP 562): importing
  ``apdu.openpgp.constants`` loads neither the applet nor the data objects nor the session;
- ``apdu.openpgp.kdf`` imports ``hashlib`` and ``secrets`` only when a PIN is derived or a
  KDF-DO created;
- ``opcard.pkcs11`` resolves its constants on first use (PEP 562): ``opcard.errors`` takes
  :class:`~opcard.pkcs11.ReturnValue` from ``opcard.pkcs11.rv``, not the whole
  ``opcard.pkcs11.constants`` table; ``opcard.card`` loads ``opcard.pkcs11.constants`` and
  ``opcard.pkcs11.uri`` only for the token view;
- ``opcard`` and ``opcard.errors`` do not load tlslite (only ``opcard.tls`` does);
- ``opcard.session`` and ``opcard.objects`` load ``opcard.pkcs11.uri`` only when a URI is
  parsed or shown, and ``cryptography``'s key modules (``ec``, ``rsa``, …) only when a
  ``cryptography`` key is made or read (``opcard.publickeys``);
- the server loads ``subprocess`` and ``signal`` only when a confirmation command runs;
- ``opcard.cli.app`` does not load ``json``;
- ``apdu.transport.pcsc`` loads neither ``socket`` (nor its ``selectors``) nor ``queue``: the
  watchdog uses the C socket type, and the worker mode's queues come with the first worker link;
- ``opcard.cli.cert`` (``cert export``) does not load the PIN input: ``cert import`` and
  ``cert delete`` are in ``opcard.cli.cert_admin``, loaded when one of them is used;
- ``opcard --help`` lists the sub-commands from ``opcard.cli.app.SUMMARIES`` without importing
  their modules, and the listing is the one the commands themselves give;
- ``import opcard`` and ``import apdu`` load nothing else (their names resolve on first use;
  ``opcard._ERRORS`` is ``opcard.errors.__all__``), ``import apdu.errors`` not the commands;
- nothing on the card path uses :mod:`dataclasses` (value classes are ``apdu.record.Record``);
- ``apdu.log`` and the channel do not load :mod:`logging` until someone else has;
- ``apdu.transport.pcsc`` loads pyscard's ``smartcard.scard`` without the ``smartcard``
  package's object layer, which still loads (and works) on first use, and the C extension
  ``smartcard.scard._scard`` without SWIG's wrapper ``smartcard.scard.scard`` (it imports
  typing), which loads on first use of the package and calls the same extension.

- neither ``opcard --help`` nor shell completion (``_OPCARD_COMPLETE``) loads the protocol layer,
  pyscard, the library's errors or token layer, or a command module other than the one being
  completed; ``opcard serve`` loads neither tlslite nor the other commands.
- ``python -m opcard.serve --stdio`` (the on-demand route ``opcard serve --install`` writes)
  loads neither click nor ``opcard.cli``, tlslite, ``cryptography.x509`` or asn1crypto up to
  its first answered C_GetSlotList (here without a reader; with a card in
  tests/serve/test_serve_stdio.py), nor :mod:`dataclasses` and the ``inspect`` it brings
  (the server's value classes are records, its mutable ones plain classes with slots).

The modules each command (list, status, cert export, sign) loads against a card are checked in
tests/cli/test_cli_start_up.py (and cert export's also in tests/cli/test_cli_pcsc.py).
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest


def loaded_after(code: str) -> set[str]:
    """The modules in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    script = f"{code}\nimport sys\nprint(sorted(sys.modules))\n"
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    modules = ast.literal_eval(proc.stdout.splitlines()[-1])
    assert isinstance(modules, list)
    return set(modules)


APPLET_AND_FRIENDS = {
    "apdu.openpgp.applet",
    "apdu.openpgp.objects",
    "apdu.openpgp.commands",
    "apdu.openpgp.kdf",
    "apdu.openpgp.quirks",
    "apdu.openpgp.keys",
    "apdu.channel",
    "apdu.log",
    "logging",
    "hashlib",
}


@pytest.mark.parametrize("code", ["import apdu.openpgp.constants", "import apdu.openpgp"])
def test_openpgp_package_is_lazy(code: str) -> None:
    modules = loaded_after(code)
    assert "apdu.openpgp" in modules
    assert not modules & APPLET_AND_FRIENDS


def test_openpgp_package_attributes_still_resolve() -> None:
    code = (
        "import apdu.openpgp as p\n"
        "from apdu.openpgp import OpenPgpApplet, PinState, Do, KeySlot, Pw, Secret\n"
        "from apdu.openpgp import DataObjectError, ApplicationRelatedData\n"
        "from apdu.openpgp.applet import OpenPgpApplet as A\n"
        "from apdu.openpgp.objects import ApplicationRelatedData as R\n"
        "assert OpenPgpApplet is A and p.OpenPgpApplet is A and ApplicationRelatedData is R\n"
        "assert set(p.__all__) <= set(dir(p))\n"
        "try:\n"
        "    p.NoSuchName\n"
        "except AttributeError as e:\n"
        "    assert 'NoSuchName' in str(e)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
    )
    assert "apdu.openpgp.applet" in loaded_after(code)


def test_kdf_imports_hashlib_only_when_deriving() -> None:
    assert not loaded_after("import apdu.openpgp.applet") & {"hashlib", "secrets"}
    code = (
        "from apdu.openpgp.kdf import new_kdf_do, derive_pin\n"
        "from apdu.openpgp.constants import Secret\n"
        "kdf = new_kdf_do(iteration_count=1024)\n"
        "assert len(derive_pin(kdf, Secret.PW1, '123456')) == 32\n"
    )
    assert {"hashlib", "secrets"} <= loaded_after(code)


def test_errors_do_not_load_the_pkcs11_tables() -> None:
    modules = loaded_after("import opcard.errors")
    assert "opcard.pkcs11.rv" in modules
    assert "opcard.pkcs11.constants" not in modules


def test_pkcs11_constants_resolve_on_first_use() -> None:
    code = (
        "import opcard.pkcs11 as p\n"
        "from opcard.pkcs11 import Mechanism, ReturnValue\n"
        "from opcard.pkcs11.constants import Mechanism as M\n"
        "assert Mechanism is M and p.Mechanism is M\n"
        "assert set(p.__all__) <= set(dir(p))\n"
        "try:\n"
        "    p.NoSuchName\n"
        "except AttributeError as e:\n"
        "    assert 'NoSuchName' in str(e)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
    )
    assert "opcard.pkcs11.constants" in loaded_after(code)
    assert "opcard.pkcs11.constants" not in loaded_after("import opcard.pkcs11")


@pytest.mark.parametrize("code", ["import opcard", "import opcard.errors", "import opcard.session"])
def test_tlslite_only_with_opcard_tls(code: str) -> None:
    modules = loaded_after(code)
    assert not modules & {"tlslite", "opcard.tls", "opcard.tls.client"}


def test_return_value_is_one_class() -> None:
    from opcard import errors, pkcs11
    from opcard.pkcs11 import constants, rv

    assert pkcs11.ReturnValue is rv.ReturnValue is constants.ReturnValue
    assert errors.OpcardError.default_return_value is pkcs11.ReturnValue.GENERAL_ERROR
    assert "ReturnValue" in pkcs11.__all__


def test_card_loads_pkcs11_and_uri_only_for_the_token_view() -> None:
    modules = loaded_after("import opcard.card")
    assert not modules & {"opcard.pkcs11.constants", "opcard.pkcs11.uri", "hashlib", "cryptography"}
    code = (
        "from opcard.card import TokenInfo, _pin_flags\n"
        "from opcard.pkcs11 import TokenFlag\n"
        "assert _pin_flags(0, user=True) is TokenFlag.USER_PIN_LOCKED\n"
        "info = TokenInfo('L', 'M', 'OpenPGP', '0001', (3, 4), TokenFlag(0), 6, 127, {})\n"
        "assert str(info.uri).startswith('pkcs11:')\n"
    )
    assert {"opcard.pkcs11.constants", "opcard.pkcs11.uri"} <= loaded_after(code)


def test_card_loads_the_errors_only_when_one_is_raised() -> None:
    """``opcard.errors`` (its classes and the CK_RV table, about 2 ms) comes with the first error:
    ``cert export`` and ``list`` meet none. The errors raised are the same classes as before."""
    path = "import opcard.card, opcard.cli.backend, opcard.cli.cert, apdu.transport.pcsc"
    assert not loaded_after(path) & {"opcard.errors", "opcard.pkcs11", "opcard.pkcs11.rv"}
    code = (
        "import apdu.errors as a, opcard.errors as e\n"
        "from apdu.transport.pcsc import PcscTransport\n"
        "from opcard._translate import translated\n"
        "from opcard.card import open_card\n"
        "assert e.translated is translated\n"
        "for raised, expected in [(a.NoReaderError('none'), e.NoCardError),\n"
        "        (a.NoServiceError('no pcscd'), e.PcscUnavailableError),\n"
        "        (a.SharingViolationError('held'), e.CardInUseError),\n"
        "        (a.CardRemovedError('gone'), e.CardError)]:\n"
        "    def fail(*args, **kwargs):\n"
        "        raise raised\n"
        "    PcscTransport.open = fail\n"
        "    try:\n"
        "        open_card(reader='R')\n"
        "    except expected as err:\n"
        "        assert err.__cause__ is raised, err\n"
        "    else:\n"
        "        raise SystemExit(f'no {expected.__name__}')\n"
        "try:\n"
        "    with translated('reading the URL'):\n"
        "        raise a.WrongPinError(0x63C2)\n"
        "except e.WrongPinError as err:\n"
        "    assert err.retries == 2 and isinstance(err.__cause__, a.WrongPinError)\n"
    )
    loaded_after(code)


def test_key_algorithms_load_the_errors_only_when_one_is_raised() -> None:
    """``opcard status`` names the keys' algorithms (``opcard.algorithms``, ``KeyType``) without
    ``opcard.errors`` and the CK_RV table; a bad algorithm still raises UnsupportedKeyError."""
    path = "import opcard.algorithms, opcard.cli.status, opcard.card"
    assert not loaded_after(path) & {"opcard.errors", "opcard.pkcs11.rv"}
    code = (
        "import opcard.errors as e, opcard.pkcs11 as p, opcard.pkcs11.rv as rv\n"
        "from opcard.algorithms import attributes_for, parse_algorithm\n"
        "assert p.ReturnValue is rv.ReturnValue and 'ReturnValue' in dir(p)\n"
        "for bad in ('rsa1024', 'nosuch'):\n"
        "    try:\n"
        "        parse_algorithm(bad)\n"
        "    except e.UnsupportedKeyError as err:\n"
        "        assert bad[3:] in str(err) or bad in str(err), err\n"
        "    else:\n"
        "        raise SystemExit(bad)\n"
        "try:\n"
        "    attributes_for(parse_algorithm('ed25519'), decryption=True)\n"
        "except e.UnsupportedKeyError as err:\n"
        "    assert 'cv25519' in str(err)\n"
        "else:\n"
        "    raise SystemExit('ed25519 for decryption')\n"
    )
    loaded_after(code)


def test_cli_root_does_not_load_json() -> None:
    modules = loaded_after("import opcard.cli.app")
    assert "click" in modules
    assert "json" not in modules


def test_pcsc_transport_does_not_load_socket_or_queue() -> None:
    modules = loaded_after("import apdu.transport.pcsc")
    assert "smartcard.scard" in modules
    assert not modules & {"socket", "selectors", "queue"}


def test_cert_export_does_not_load_the_pin_input() -> None:
    modules = loaded_after("import opcard.cli.cert")
    assert not modules & {"opcard.cli.pin_input", "opcard.cli.cert_admin", "cryptography"}
    code = (
        "import click\n"
        "from opcard.cli.cert import cert\n"
        "ctx = click.Context(cert)\n"
        "assert cert.list_commands(ctx) == ['delete', 'export', 'import']\n"
        "from opcard.cli.cert_admin import delete_command, import_command\n"
        "assert cert.get_command(ctx, 'import') is import_command\n"
        "assert cert.get_command(ctx, 'delete') is delete_command\n"
        "assert cert.get_command(ctx, 'nosuch') is None\n"
    )
    assert "opcard.cli.pin_input" in loaded_after(code)


CLI_HELP = (
    "import os, sys\n"
    "os.environ['COLUMNS'] = '80'  # a stored width: opcard.cli.fast answers\n"
    "sys.argv = ['opcard', '--help']\n"
    "from opcard.cli import main\n"
    "try:\n"
    "    main()\n"
    "except SystemExit as e:\n"
    "    assert e.code in (0, None), e.code\n"
)


def test_root_help_does_not_import_the_commands() -> None:
    from opcard.cli.app import COMMANDS

    modules = loaded_after(CLI_HELP)
    assert "opcard.cli.helptext" in modules  # the page stored at build time, without click
    assert not {m for m in modules if m.split(".")[0] in ("click", "typing")}
    assert not modules & {module for module, _ in COMMANDS.values()}
    assert not modules & {"opcard.cli.app", "opcard.cli.pin_input", "apdu.openpgp.constants"}
    assert "logging" not in modules
    # a width not stored: click renders the page, still without the command modules
    modules = loaded_after(CLI_HELP.replace("'80'", "'61'"))
    assert "opcard.cli.app" in modules
    assert not modules & {module for module, _ in COMMANDS.values()}


@pytest.mark.parametrize("width", [40, 60, 80, 100, 200])
def test_root_help_lists_what_the_commands_say(width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from opcard.cli.app import COMMANDS, SUMMARIES, cli

    assert set(SUMMARIES) == set(COMMANDS)  # every sub-command listed without its import
    monkeypatch.setenv("COLUMNS", str(width))
    fast = CliRunner().invoke(cli, ["--help"], terminal_width=width)
    monkeypatch.setattr(cli, "summaries", {})  # click's own listing: every module imported
    slow = CliRunner().invoke(cli, ["--help"], terminal_width=width)
    assert fast.exit_code == slow.exit_code == 0
    assert "Commands:" in fast.output and "serve" in fast.output
    assert fast.output == slow.output


@pytest.mark.parametrize("width", [40, 80, 200])
def test_cert_help_lists_what_its_commands_say(width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """``opcard cert --help`` (and zsh/fish completion) list import/delete from the group's
    summaries, equal to click's own listing with cert_admin imported."""
    from click.testing import CliRunner

    from opcard.cli.app import cli
    from opcard.cli.cert import cert

    assert set(cert.summaries) == set(cert.lazy)
    monkeypatch.setenv("COLUMNS", str(width))
    fast = CliRunner().invoke(cli, ["cert", "--help"], terminal_width=width)
    monkeypatch.setattr(cert, "summaries", {})
    slow = CliRunner().invoke(cli, ["cert", "--help"], terminal_width=width)
    assert fast.exit_code == slow.exit_code == 0
    assert "import" in fast.output and fast.output == slow.output


def test_package_inits_load_nothing() -> None:
    assert {m for m in loaded_after("import opcard") if m.startswith(("opcard", "apdu"))} == {
        "opcard"
    }
    assert {m for m in loaded_after("import apdu") if m.startswith("apdu")} == {"apdu"}
    assert not loaded_after("import apdu.errors") & {"apdu.command", "apdu.record"}
    code = (
        "import apdu, opcard\n"
        "from apdu.command import Command\n"
        "from opcard.errors import WrongPinError, translated\n"
        "assert apdu.Command is Command and opcard.WrongPinError is WrongPinError\n"
        "assert opcard.translated is translated\n"
        "assert set(apdu.__all__) <= set(dir(apdu)) and set(opcard.__all__) <= set(dir(opcard))\n"
        "for package in (apdu, opcard):\n"
        "    try:\n"
        "        package.NoSuchName\n"
        "    except AttributeError as e:\n"
        "        assert 'NoSuchName' in str(e)\n"
        "    else:\n"
        "        raise SystemExit('no AttributeError')\n"
    )
    loaded_after(code)


def test_opcard_exports_every_error() -> None:
    import opcard
    from opcard import errors

    assert sorted(opcard._ERRORS) == sorted(errors.__all__), (
        "opcard/__init__.py _ERRORS must list opcard.errors.__all__"
    )
    for name in errors.__all__:
        assert getattr(opcard, name) is getattr(errors, name)
        assert name in opcard.__all__


def test_card_path_does_not_load_dataclasses() -> None:
    modules = loaded_after("import opcard.card, apdu.transport.pcsc, opcard.cli.backend")
    assert not modules & {"dataclasses", "inspect"}


def test_logging_only_when_someone_loads_it() -> None:
    assert "logging" not in loaded_after("import apdu.channel")
    code = (
        "import io, sys\n"
        "from apdu import log\n"
        "assert not log.enabled() and 'logging' not in sys.modules\n"
        "import logging\n"
        "stream = io.StringIO()\n"
        "logging.basicConfig(stream=stream, level=1, format='%(levelname)s %(name)s %(message)s')\n"
        "assert log.enabled()\n"
        "log.emit('> 00a4')\n"
        "log.note('card answered %d', 3)\n"
        "lines = stream.getvalue().splitlines()\n"
        "assert lines == ['TRAFFIC apdu.traffic > 00a4', 'DEBUG apdu.channel card answered 3']\n"
        "assert log.logger is logging.getLogger('apdu.traffic')\n"
        "assert log.session_logger is logging.getLogger('apdu.channel')\n"
    )
    assert "logging" in loaded_after(code)


def test_pyscard_object_layer_loads_on_first_use() -> None:
    modules = loaded_after("import apdu.transport.pcsc")
    assert {"smartcard", "smartcard.scard"} <= modules
    assert not modules & {"smartcard.Session", "smartcard.System", "smartcard.CardConnection"}
    assert "smartcard.scard.scard" not in modules  # SWIG's wrapper (it imports typing)
    code = (
        "import apdu.transport.pcsc as pcsc\n"
        "import smartcard\n"
        "from smartcard import Session\n"
        "from smartcard.System import readers\n"
        "assert callable(smartcard.listReaders) and 'Session' in smartcard.__all__\n"
        "assert smartcard.scard._scard is pcsc.scard and '__getattr__' not in vars(smartcard)\n"
        "from smartcard.scard import *\n"  # the wrapper, on the extension pcsc loaded
        "assert smartcard.scard.scard._scard is pcsc.scard and SCARD_S_SUCCESS == 0\n"
    )
    assert {"smartcard.Session", "smartcard.System"} <= loaded_after(code)
    # imported the usual way first: the transport uses that package as it is
    code = (
        "import smartcard\nimport apdu.transport.pcsc as p\n"
        "assert p.scard is smartcard.scard._scard\n"
    )
    assert "smartcard.Session" in loaded_after(code)


def test_key_algorithms_without_cryptography() -> None:
    modules = loaded_after("import opcard.algorithms\nfrom opcard.pkcs11 import KeyType")
    assert not {m for m in modules if m.split(".")[0] in ("cryptography", "asn1crypto")}
    assert not modules & {"opcard.publickeys", "opcard.pkcs11.constants", "dataclasses"}
    from cryptography.hazmat.primitives.asymmetric import ec

    from opcard import algorithms, publickeys
    from opcard.pkcs11 import KeyType, constants, keytype

    assert KeyType is constants.KeyType is keytype.KeyType
    assert publickeys.KeyAlgorithm is algorithms.KeyAlgorithm
    assert publickeys.algorithm_of is algorithms.algorithm_of
    names = {curve: c.name for curve, c in publickeys._ec_curves().items()}
    assert names == algorithms.CRYPTOGRAPHY_CURVE_NAMES
    curve = algorithms.parse_algorithm("secp256r1").curve
    assert curve is not None and isinstance(publickeys._ec_curves()[curve], ec.SECP256R1)


def test_signing_path_without_asn1crypto_or_serialization() -> None:
    """opcard sign opens a session and signs: no asn1crypto (the DigestInfo prefixes are
    written into opcard.hashes; certificates are parsed when asked for), no cryptography
    serialization (key encodings import it when used) nor its key modules (opcard.publickeys
    imports them where it makes or reads a cryptography key)."""
    modules = loaded_after("import opcard.session, opcard.hashes, opcard.pkcs11.mechanisms")
    assert not {m for m in modules if m.split(".")[0] == "asn1crypto"}
    assert "cryptography.hazmat.primitives.serialization" not in modules
    keys = {f"cryptography.hazmat.primitives.asymmetric.{k}" for k in ("ec", "rsa", "ed25519")}
    assert not modules & keys  # opcard.publickeys imports them where it makes such keys
    code = (
        "from opcard.objects import Certificate\n"
        "from opcard.publickeys import CardPublicKey, ec_params_der\n"
        "from apdu.openpgp.constants import Curve\n"
        "assert ec_params_der(Curve.NIST_P256).hex() == '06082a8648ce3d030107'\n"
        "from opcard.publickeys import CryptographyPublicKey, public_key_from_point\n"
        "from cryptography.hazmat.primitives.asymmetric import ec, rsa\n"
        "assert CryptographyPublicKey.__args__[:2] == (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)"
        "\n"
        "key = ec.generate_private_key(ec.SECP256R1()).public_key()\n"
        "point = CardPublicKey.from_cryptography(key).point\n"
        "assert public_key_from_point(Curve.NIST_P256, point) == key\n"
    )
    assert "asn1crypto.core" in loaded_after(code)


def test_signing_path_without_uris() -> None:
    """The pkcs11: URI parser (2 ms) is loaded by what parses or shows a URI, not by a session
    that signs (CardObject.uri and Session.find_uri import it: tests/objects/test_obj_objects.py
    uses both)."""
    modules = loaded_after("import opcard.session, opcard.objects, opcard.pkcs11.mechanisms")
    assert "opcard.pkcs11.uri" not in modules


#: What neither the help nor shell completion may load: the protocol layer, the card, pyscard,
#: the library's errors and token layer, APDU logging.
NOT_FOR_HELP = {
    "apdu",
    "smartcard",
    "opcard.errors",
    "opcard.card",
    "opcard.session",
    "opcard.pkcs11",
    "cryptography",
    "logging",
    "json",
    "dataclasses",
}


def _offending(modules: set[str], forbidden: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden))


def test_root_help_loads_no_library_layer() -> None:
    assert _offending(loaded_after(CLI_HELP), NOT_FOR_HELP) == []


@pytest.mark.parametrize(
    ("words", "cword", "expected", "allowed_command"),
    [
        ("opcard ", 1, "plain,cert", None),
        ("opcard c", 1, "plain,cert", None),
        ("opcard cert e", 2, "plain,export", "opcard.cli.cert"),
    ],
)
def test_completion_loads_no_library_layer(
    words: str, cword: int, expected: str, allowed_command: str | None
) -> None:
    from opcard.cli.app import COMMANDS

    code = (
        "import contextlib, io, os, sys\n"
        "os.environ.update(_OPCARD_COMPLETE='bash_complete', "
        f"COMP_WORDS={words!r}, COMP_CWORD='{cword}')\n"
        "sys.argv = ['opcard']\n"
        "from opcard.cli import main\n"
        "raw = io.BytesIO()\n"
        "out = io.TextIOWrapper(raw, encoding='utf-8')\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as e:\n"
        "        assert e.code in (0, None), e.code\n"
        "out.flush()\n"
        f"assert {expected!r} in raw.getvalue().decode().splitlines(), raw.getvalue()\n"
    )
    modules = loaded_after(code)
    assert "opcard.cli.fast" in modules  # answered from opcard.cli.table, without click
    assert not {m for m in modules if m.split(".")[0] in ("click", "typing")}
    commands = {module for module, _ in COMMANDS.values()} - {allowed_command}
    assert _offending(modules, NOT_FOR_HELP | commands | {"opcard.cli.pin_input"}) == []


def test_serve_loads_no_tls_nor_other_commands() -> None:
    """What ``opcard serve --stdio`` imports before it answers (the command and the server):
    not the TLS client (tlslite) nor the other commands' modules."""
    from opcard.cli.app import COMMANDS

    code = (
        "import click\n"
        "from opcard.cli.app import cli\n"
        "serve = cli.get_command(click.Context(cli), 'serve')\n"
        "import opcard.serve.server, opcard.serve.pcsc\n"
    )
    modules = loaded_after(code)
    assert {"opcard.cli.serve", "opcard.serve.server"} <= modules
    others = {module for module, _ in COMMANDS.values()} - {"opcard.cli.serve"}
    assert _offending(modules, {"tlslite", "opcard.tls", "json", *others}) == []


def test_serve_starts_without_subprocess() -> None:
    """The server loads neither subprocess nor signal (1 ms of start-up for each on-demand
    process): the confirmation policy imports them when it runs its command
    (tests/serve/test_serve_confirm.py runs one)."""
    code = "import opcard.serve.stdio, opcard.serve.server, opcard.serve.pcsc, opcard.serve.confirm"
    assert not loaded_after(code) & {"subprocess", "signal"}
    code = (
        "import sys\n"
        "from opcard.serve.confirm import Confirmation, ConfirmWhen, KeyUse, PeerProcess\n"
        "peer = PeerProcess(1, '/usr/bin/ssh', 'ssh host')\n"
        "use = KeyUse('sign', 'AUT', 'Authentication key', 'Token', '0001')\n"
        "for status, allowed in ((0, True), (1, False)):\n"
        "    command = (sys.executable, '-c', f'raise SystemExit({status})')\n"
        "    assert Confirmation(ConfirmWhen.ALL, command).ask(use, peer) is allowed\n"
    )
    assert "subprocess" in loaded_after(code)


def test_on_demand_serve_loads_no_command_line() -> None:
    """``python -m opcard.serve --stdio`` on a socketpair, as p11-kit starts it: C_Initialize
    and C_GetSlotList answered (no reader matches), then the modules the serving child loaded
    (printed when it ends; the process started exits at once, through os._exit)."""
    import os
    import socket
    import struct
    from pathlib import Path

    def frame(code: int, call: int, signature: bytes, args: bytes) -> bytes:
        body = struct.pack(">II", call, len(signature)) + signature + args
        return struct.pack(">III", code, 0, len(body)) + body

    def ay(data: bytes) -> bytes:
        return b"\x01" + struct.pack(">I", len(data)) + data

    def answer(sock: socket.socket) -> bytes:
        data, olen, blen = b"", 0, 0
        while len(data) < 12 + olen + blen:
            chunk = sock.recv(12 + olen + blen - len(data))
            assert chunk, "the server closed the connection"
            data += chunk
            if len(data) >= 12:
                _, olen, blen = struct.unpack(">III", data[:12])
        return data[12 + olen :]

    script = (
        "import runpy, sys\n"
        "try:\n"
        "    runpy.run_module('opcard.serve', run_name='__main__', alter_sys=True)\n"
        "finally:\n"
        "    print('MODULES', sorted(sys.modules), file=sys.stderr)\n"
    )
    repo = str(Path(__file__).resolve().parents[2])
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen(
        [sys.executable, "-c", script, "--stdio", "--reader", "no such reader"],
        stdin=theirs, stdout=theirs, stderr=subprocess.PIPE, cwd=repo,
        env=dict(os.environ, PYTHONPATH=repo),
    )  # fmt: skip
    theirs.close()
    try:
        ours.settimeout(30)
        ours.sendall(b"\x00")
        assert ours.recv(1) == b"\x00"
        handshake = b"PRIVATE-GNOME-KEYRING-PKCS11-PROTOCOL-V-1"
        ours.sendall(frame(1, 1, b"ayyay", ay(handshake) + b"\x00" + ay(b"\x00")))
        assert answer(ours)[:4] == struct.pack(">I", 1)  # C_Initialize, not an error (0)
        ours.sendall(frame(2, 4, b"yfu", b"\x00" + struct.pack(">I", 16)))  # C_GetSlotList
        reply = answer(ours)
        assert reply[:4] == struct.pack(">I", 4), reply.hex()
    finally:
        ours.close()
    _, err = proc.communicate(timeout=60)  # to its end: the serving child holds the pipe
    lines = err.decode().splitlines()
    assert lines and lines[-1].startswith("MODULES "), lines
    modules = set(ast.literal_eval(lines[-1].removeprefix("MODULES ")))
    assert {"opcard.serve.stdio", "opcard.serve.server", "opcard.serve.pcsc"} <= modules
    offending = _offending(
        modules,
        {"click", "opcard.cli", "tlslite", "cryptography.x509", "asn1crypto"}
        | {"dataclasses", "inspect"},
    )
    assert offending == []


def test_cli_resets_sigpipe() -> None:
    """``opcard`` lets SIGPIPE end it (``opcard status | head``) instead of reporting a broken
    pipe. (The C ``_signal`` would save signal.py's 0.5 ms of enums: not worth a private
    module and a type: ignore.)"""
    code = (
        "import atexit, sys\n"
        "def report():\n"
        "    import signal\n"
        "    dfl = signal.getsignal(signal.SIGPIPE) is signal.SIG_DFL\n"
        "    sys.stderr.write(f'SIGPIPE {dfl}\\n')\n"
        "atexit.register(report)\n"
        "import signal\n"
        "signal.signal(signal.SIGPIPE, signal.SIG_IGN)\n"
        "from opcard.cli import main\n"
        "main(['--help'])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "SIGPIPE True" in proc.stderr.splitlines()
