"""PEP 740 attestations as the upload API receives them, and the provenance object served
for a file (pure: JSON in, JSON out).

The legacy upload form's `attestations` field is a JSON array of attestation objects
(`uv publish` sends the `<dist>.<kind>.attestation` files found beside a distribution). Each
is checked for its shape (`version` 1, `verification_material` with a certificate and
transparency entries, `envelope` with a base64 in-toto statement and signature), and its
statement must name exactly the uploaded file, by filename and sha256, with a predicate type
seen once. The signature itself is verified by sigstore, not here.

The provenance object (PEP 740 "Provenance objects") bundles the attestations with the
publisher that uploaded them: `{"version": 1, "attestation_bundles": [{"publisher": {...},
"attestations": [...]}]}`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from packhouse.errors import InvalidUpload

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPES = frozenset(
    {
        "https://docs.pypi.org/attestations/publish/v1",
        "https://slsa.dev/provenance/v1",
    }
)
MAX_ATTESTATIONS = 8
MAX_FIELD_CHARS = 1024 * 1024


def _b64(value: object, what: str, problems: list[str]) -> bytes | None:
    if not isinstance(value, str) or not value:
        problems.append(f"{what} is not a base64 string")
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        problems.append(f"{what} is not valid base64")
        return None


def parse_attestations(text: str, filename: str, sha256: str) -> list[dict[str, Any]]:
    """The attestations of the `attestations` form field for the file `filename` whose bytes
    hash to `sha256`; InvalidUpload listing every problem."""
    if len(text) > MAX_FIELD_CHARS:
        raise InvalidUpload(f"the 'attestations' field is over {MAX_FIELD_CHARS} characters")
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidUpload("the 'attestations' field is not JSON (a JSON array)") from None
    if not isinstance(value, list) or not value:
        raise InvalidUpload("the 'attestations' field must be a non-empty JSON array")
    if len(value) > MAX_ATTESTATIONS:
        raise InvalidUpload(f"at most {MAX_ATTESTATIONS} attestations are taken for a file")
    problems: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        where = f"attestation {index + 1}"
        if not isinstance(item, dict):
            problems.append(f"{where} is not a JSON object")
            continue
        if item.get("version") != 1:
            problems.append(f"{where} has version {item.get('version')!r}; only version 1 is taken")
        material = item.get("verification_material")
        if not isinstance(material, dict):
            problems.append(f"{where} has no 'verification_material' object")
        else:
            _b64(material.get("certificate"), f"{where}'s certificate", problems)
            entries = material.get("transparency_entries")
            if not isinstance(entries, list) or not entries:
                problems.append(f"{where} has no transparency entries")
        envelope = item.get("envelope")
        if not isinstance(envelope, dict):
            problems.append(f"{where} has no 'envelope' object")
            continue
        _b64(envelope.get("signature"), f"{where}'s signature", problems)
        raw = _b64(envelope.get("statement"), f"{where}'s statement", problems)
        if raw is None:
            continue
        predicate = _check_statement(raw, where, filename, sha256, problems)
        if predicate is not None:
            if predicate in seen:
                problems.append(f"{where} repeats the predicate type {predicate}")
            seen.add(predicate)
    if problems:
        raise InvalidUpload(problems)
    return value


def _check_statement(
    raw: bytes, where: str, filename: str, sha256: str, problems: list[str]
) -> str | None:
    try:
        statement = json.loads(raw)
    except ValueError:
        problems.append(f"{where}'s statement is not JSON")
        return None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        problems.append(f"{where}'s statement is not an in-toto {STATEMENT_TYPE} statement")
        return None
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        problems.append(f"{where}'s statement must have exactly one subject, the uploaded file")
        return None
    subject = subjects[0]
    if subject.get("name") != filename:
        problems.append(f"{where} is for {str(subject.get('name'))[:200]!r}, not for {filename!r}")
    digest = subject.get("digest")
    if not isinstance(digest, dict) or str(digest.get("sha256", "")).lower() != sha256:
        problems.append(f"{where} names another sha256 than the uploaded file's ({sha256})")
    predicate = statement.get("predicateType")
    if predicate not in PREDICATE_TYPES:
        problems.append(
            f"{where} has the predicate type {str(predicate)[:200]!r}; taken are"
            f" {', '.join(sorted(PREDICATE_TYPES))}"
        )
        return None
    return str(predicate)


def provenance(attestations: list[dict[str, Any]], publisher: Mapping[str, Any]) -> dict[str, Any]:
    """The PEP 740 provenance object of one file: one bundle, its publisher and attestations."""
    return {
        "version": 1,
        "attestation_bundles": [{"publisher": dict(publisher), "attestations": attestations}],
    }
