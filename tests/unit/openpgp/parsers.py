"""Every data object parser of apdu.openpgp, by name (shared by the property and robustness
tests)."""

from __future__ import annotations

from collections.abc import Callable

from apdu.openpgp.objects import (
    Aid,
    AlgorithmInformation,
    ApplicationRelatedData,
    CaFingerprints,
    CardholderData,
    ExtendedCapabilities,
    ExtendedLengthInfo,
    Fingerprints,
    GeneralFeatureManagement,
    GenerationTimes,
    HistoricalBytes,
    KdfDo,
    KeyInformation,
    PwStatus,
    SecuritySupportTemplate,
    Uif,
    parse_algorithm_attributes,
    parse_public_key,
)


def _caps_v2(data: bytes) -> ExtendedCapabilities:
    return ExtendedCapabilities.parse(data, v3=False)


PARSERS: dict[str, Callable[[bytes], object]] = {
    "Aid": Aid.parse,
    "HistoricalBytes": HistoricalBytes.parse,
    "ExtendedCapabilities": ExtendedCapabilities.parse,
    "ExtendedCapabilities.v2": _caps_v2,
    "AlgorithmAttributes": parse_algorithm_attributes,
    "AlgorithmInformation": AlgorithmInformation.parse,
    "PwStatus": PwStatus.parse,
    "Fingerprints": Fingerprints.parse,
    "CaFingerprints": CaFingerprints.parse,
    "GenerationTimes": GenerationTimes.parse,
    "KeyInformation": KeyInformation.parse,
    "Uif": Uif.parse,
    "KdfDo": KdfDo.parse,
    "CardholderData": CardholderData.parse,
    "SecuritySupportTemplate": SecuritySupportTemplate.parse,
    "GeneralFeatureManagement": GeneralFeatureManagement.parse,
    "ExtendedLengthInfo": ExtendedLengthInfo.parse,
    "PublicKey": parse_public_key,
    "ApplicationRelatedData": ApplicationRelatedData.parse,
}


def reparse(name: str, value: object) -> object:
    """Parse ``bytes(value)`` again with the parser ``name``."""
    return PARSERS[name](bytes(value))  # type: ignore[call-overload]
