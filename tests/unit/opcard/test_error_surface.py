"""One error surface, opcard.errors (the apdu layer's own tables: tests/unit/test_errors.py).

Every exception defined there and exported from ``opcard``; the one translation of apdu
exceptions (its table, cause kept); PIN errors that say which PIN and what to do in Python
calls; "none" and "several" as two exceptions; the command line's exit codes and hints taken
from the exception's class and ``pin``, never from its message.
"""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil

import pytest

import opcard
from apdu import errors as apdu
from apdu.openpgp.constants import KeySlot
from apdu.transport.loopback import LoopbackTransport
from fixtures.card import OpenPGPCard
from fixtures.personalize import personalize
from opcard import errors
from opcard.card import Card
from opcard.errors import PinKind, translate_error, translated
from opcard.exitcodes import ExitCode, classify
from opcard.pkcs11 import ReturnValue

#: Exceptions outside opcard.errors, private to their module (their docstrings say so).
PRIVATE = {
    "opcard.cli.errors.CliError",  # click's exception carrying an exit code and a hint
    "opcard.cli.state.UsageProblem",  # a usage error found by a command: click's UsageError
    "opcard.cli.state.Failure",  # a failure a command describes: CliError without click
    "opcard.cli.fast.Decline",  # the fast front end leaving a command line to click
    "opcard.serve.errors.ServeError",  # the RPC server's own: frames, CK_RV replies, socket
    "opcard.serve.errors.FrameError",
    "opcard.serve.errors.Pkcs11Error",
    "opcard.serve.errors.SocketError",
}


def opcard_modules() -> list[str]:
    names = ["opcard"]
    for info in pkgutil.walk_packages(opcard.__path__, "opcard."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return names


def defined_exceptions(module_name: str) -> dict[str, type[BaseException]]:
    module = importlib.import_module(module_name)
    return {
        f"{module_name}.{name}": value
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == module_name
        and not name.startswith("_")  # a module's own private signal (serve.server._Slow)
    }


def test_every_exception_is_defined_in_opcard_errors() -> None:
    elsewhere = {}
    for name in opcard_modules():
        if name != "opcard.errors":
            elsewhere.update(defined_exceptions(name))
    assert set(elsewhere) == PRIVATE
    assert len(opcard_modules()) > 30  # the walk saw the subpackages (tls, pkcs11, cli, serve)


def test_errors_all_is_complete_and_exported_from_opcard() -> None:
    defined = {name.rpartition(".")[2] for name in defined_exceptions("opcard.errors")}
    assert defined <= set(errors.__all__)
    assert {"PinKind", "translate_error", "translated"} <= set(errors.__all__)
    for name in errors.__all__:
        value = getattr(errors, name)
        assert getattr(opcard, name) is value, name
        assert name in opcard.__all__, name
    for name in defined:
        assert issubclass(getattr(errors, name), errors.OpcardError), name


# --- the apdu → opcard table -----------------------------------------------------------------

TABLE = [
    (apdu.WrongPinError(0x63C2), PinKind.USER, errors.WrongPinError, ReturnValue.PIN_INCORRECT),
    (apdu.WrongPinError(0x63C0), PinKind.ADMIN, errors.WrongPinError, ReturnValue.PIN_LOCKED),
    (apdu.PinBlockedError(0x6983), PinKind.USER, errors.PinBlockedError, ReturnValue.PIN_LOCKED),
    (
        apdu.SecurityStatusNotSatisfiedError(0x6982),
        PinKind.ADMIN,
        errors.NotLoggedInError,
        ReturnValue.USER_NOT_LOGGED_IN,
    ),
    (apdu.WrongDataError(0x6A80), None, errors.CardOperationError, ReturnValue.FUNCTION_FAILED),
    (apdu.NoServiceError("no pcscd"), None, errors.PcscUnavailableError, None),
    (apdu.SharingViolationError("held"), None, errors.CardInUseError, None),
    (apdu.NoReaderError("no reader"), None, errors.NoCardError, None),
    (apdu.CardNotPresentError("empty"), None, errors.NoCardError, None),
    (apdu.CardRemovedError("pulled"), None, errors.CardRemovedError, ReturnValue.DEVICE_REMOVED),
    (
        apdu.CardNotAnsweringError("silent", "Reader 0", 2.5),
        None,
        errors.CardNotAnsweringError,
        ReturnValue.DEVICE_ERROR,
    ),
    (apdu.TransportError("broken"), None, errors.CardError, ReturnValue.DEVICE_ERROR),
    (apdu.MalformedResponseError("short"), None, errors.CardError, ReturnValue.DEVICE_ERROR),
    (apdu.TlvError("bad TLV"), None, errors.CardError, ReturnValue.DEVICE_ERROR),
]


@pytest.mark.parametrize(
    ("err", "pin", "expected", "rv"), TABLE, ids=[type(row[0]).__name__ for row in TABLE]
)
def test_translation_table(
    err: apdu.ApduError,
    pin: PinKind | None,
    expected: type[errors.OpcardError],
    rv: ReturnValue | None,
) -> None:
    with pytest.raises(errors.OpcardError) as info, translated("reading the URL", pin):
        raise err
    exc = info.value
    assert type(exc) is expected
    assert exc.__cause__ is err
    assert not isinstance(exc, apdu.ApduError)
    if rv is not None:
        assert exc.return_value is rv
    if isinstance(exc, errors.PinError):
        assert exc.pin is pin
    if expected in (errors.CardOperationError, errors.CardError, errors.NoCardError):
        assert str(exc).startswith("reading the URL: ")
    assert type(translate_error(err, "x", pin)) is expected
    assert type(pickle.loads(pickle.dumps(exc))) is expected


def test_translated_lets_other_exceptions_through() -> None:
    original = errors.UnsupportedKeyError("no")
    with pytest.raises(errors.UnsupportedKeyError) as info, translated("x"):
        raise original
    assert info.value is original


def test_card_status_error_keeps_the_status_word_and_not_answering_its_reader() -> None:
    exc = translate_error(apdu.WrongDataError(0x6A80), "write DO 5F50")
    assert isinstance(exc, errors.CardOperationError) and exc.sw == 0x6A80
    silent = translate_error(apdu.CardNotAnsweringError("silent", "Reader 0", 2.5), "signing")
    assert isinstance(silent, errors.CardNotAnsweringError)
    assert (silent.reader, silent.timeout) == ("Reader 0", 2.5)


# --- PIN errors: which PIN, and what to do -----------------------------------------------------


def test_wrong_pin_messages() -> None:
    two = errors.WrongPinError(PinKind.USER, 2)
    assert str(two) == "wrong user PIN: 2 tries left"
    assert str(errors.WrongPinError(PinKind.RESET_CODE, 1)) == "wrong reset code: 1 try left"
    none = errors.WrongPinError(PinKind.USER, 0)
    assert str(none).startswith("wrong user PIN: no tries left, the user PIN is now blocked")
    assert "session.unblock_pin(" in str(none)
    assert none.return_value is ReturnValue.PIN_LOCKED and none.retries == 0
    admin = errors.WrongPinError(PinKind.ADMIN, 0)
    assert "session.factory_reset()" in str(admin)
    unknown = errors.WrongPinError(PinKind.USER, None)
    assert str(unknown) == "wrong user PIN: an unknown number of tries left"


@pytest.mark.parametrize("pin", list(PinKind))
def test_python_messages_name_python_calls_not_the_command_line(pin: PinKind) -> None:
    for exc in (
        errors.WrongPinError(pin, 0),
        errors.PinBlockedError(pin),
        errors.NotLoggedInError.needs(pin),
    ):
        assert exc.pin is pin
        assert pin.label in str(exc)
        assert "session." in str(exc)
        assert "opcard " not in str(exc) and "'opcard" not in str(exc)
        copy = pickle.loads(pickle.dumps(exc))
        assert type(copy) is type(exc) and copy.pin is pin and str(copy) == str(exc)


def test_not_logged_in_names_the_login_call() -> None:
    admin = errors.NotLoggedInError.needs(PinKind.ADMIN)
    assert str(admin) == "this needs the admin PIN: log in with session.login_admin(admin_pin)"
    user = errors.NotLoggedInError.needs(PinKind.USER, "signing")
    assert str(user) == "signing needs the user PIN: log in with session.login(pin)"


def test_the_command_line_reads_the_pin_kind_not_the_message() -> None:
    # the message names another PIN: the CLI goes by exc.pin
    blocked = errors.PinBlockedError(PinKind.ADMIN, what="changing the user PIN")
    code, message, hint = classify(blocked)
    assert (code, message) == (ExitCode.PinBlocked, "the admin PIN is blocked")
    assert "'opcard reset'" in hint
    code, message, hint = classify(errors.WrongPinError(PinKind.RESET_CODE, 0))
    assert code is ExitCode.WrongPin
    assert message == "wrong reset code: no tries left, the reset code is now blocked"
    assert "opcard pin set-reset-code" in hint
    code, message, hint = classify(errors.WrongPinError(PinKind.USER, 0))
    assert "opcard pin unblock" in hint and "session." not in hint
    code, message, hint = classify(errors.WrongPinError(PinKind.USER, 2))
    assert (code, message) == (ExitCode.WrongPin, "wrong user PIN: 2 tries left")


# --- exit codes as docs/cli.md lists them ------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (errors.WrongPinError(PinKind.USER, 1), ExitCode.WrongPin),  # 5
        (errors.PinBlockedError(PinKind.USER), ExitCode.PinBlocked),  # 6
        (errors.ObjectNotFoundError("no key in the SIG slot"), ExitCode.NotFound),  # 10
        (errors.MultipleObjectsError("3 keys match"), ExitCode.Error),  # 1
        (errors.PcscUnavailableError("no pcscd"), ExitCode.NoCard),  # 3
        (errors.NoCardError("none"), ExitCode.NoCard),  # 3
        (errors.CardInUseError(["R"]), ExitCode.CardInUse),  # 12
        (errors.CardRemovedError("pulled"), ExitCode.CardError),  # 9
        (errors.CardNotAnsweringError("silent", "R", 30.0), ExitCode.NotAnswering),  # 13
        (errors.UnsupportedKeyError("RSA-1024"), ExitCode.Unsupported),  # 8
        (errors.PinFormatError("too short", pin=PinKind.USER), ExitCode.BadInput),  # 11
        (errors.NotLoggedInError.needs(PinKind.ADMIN), ExitCode.CardError),  # 9
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_exit_codes(exc: errors.OpcardError, code: ExitCode) -> None:
    assert classify(exc)[0] is code
    assert (
        int(code)
        == {
            "WrongPin": 5,
            "PinBlocked": 6,
            "NotFound": 10,
            "Error": 1,
            "NoCard": 3,
            "CardInUse": 12,
            "CardError": 9,
            "Unsupported": 8,
            "BadInput": 11,
            "NotAnswering": 13,
        }[code.name]
    )


def test_pcscd_not_running_gets_its_own_hint() -> None:
    code, _, hint = classify(translate_error(apdu.NoServiceError("no pcscd"), "listing readers"))
    assert code is ExitCode.NoCard and "pcscd" in hint


# --- not found and ambiguous, and PIN kinds, from a session on the emulated card ---------------


def card(variant: str | None = "demo-ecc") -> Card:
    emu = OpenPGPCard("extended")
    if variant:
        personalize(emu, variant)
    return Card(LoopbackTransport(emu.transmit, emu.atr, "Loopback 00", on_power=emu.reset))


def test_lookup_errors_none_and_several() -> None:
    assert issubclass(errors.ObjectNotFoundError, errors.ObjectLookupError)
    assert issubclass(errors.MultipleObjectsError, errors.ObjectLookupError)
    assert not issubclass(errors.MultipleObjectsError, errors.ObjectNotFoundError)
    assert issubclass(errors.ObjectLookupError, LookupError)
    with card() as c, c.session() as session:
        with pytest.raises(errors.MultipleObjectsError, match="3 private keys"):
            session.get_private_key()
        assert session.get_private_key(KeySlot.SIG).slot is KeySlot.SIG
    with card(None) as c, c.session() as session, pytest.raises(errors.ObjectNotFoundError):
        session.get_private_key(KeySlot.SIG)


def test_pin_errors_from_the_session_say_which_pin() -> None:
    with card() as c, c.session() as session:
        with pytest.raises(errors.WrongPinError) as user:
            session.login("999999")
        assert (user.value.pin, user.value.retries) == (PinKind.USER, 2)
        assert isinstance(user.value.__cause__, apdu.WrongPinError)
        with pytest.raises(errors.WrongPinError) as admin:
            session.login_admin("99999999")
        assert admin.value.pin is PinKind.ADMIN
        with pytest.raises(errors.NotLoggedInError) as write:
            session.set_data(0x5F50, b"https://example.org/key.asc")
        assert write.value.pin is PinKind.ADMIN
        assert "session.login_admin(" in str(write.value)
        with pytest.raises(errors.NotLoggedInError) as sign:
            session.sign(KeySlot.AUT, b"data")
        assert sign.value.pin is PinKind.USER and "session.login(" in str(sign.value)
        assert session.pin_status() == {"user": 2, "reset_code": 0, "admin": 2}
        with pytest.raises(errors.PinFormatError) as short:
            session.login_admin("1234")
        assert short.value.pin is PinKind.ADMIN and isinstance(short.value, ValueError)
        with pytest.raises(errors.PinFormatError) as code:
            session.unblock_pin("654321", reset_code="1")
        assert code.value.pin is PinKind.RESET_CODE
        assert session.pin_status() == {"user": 2, "reset_code": 0, "admin": 2}  # nothing sent
