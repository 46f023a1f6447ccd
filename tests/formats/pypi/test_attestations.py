"""PEP 740 attestations as the upload form sends them, checked against the uploaded file,
with real Sigstore-signed attestations from pypi-attestations' test assets."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from packhouse.errors import InvalidUpload
from packhouse.formats.pypi.attestations import parse_attestations, provenance

ASSETS = Path(__file__).parents[2] / "data" / "attestations"
SDIST = "pypi_attestations-0.0.19.tar.gz"
WHEEL = "rfc8785-0.1.2-py3-none-any.whl"


def sha(name: str) -> str:
    return hashlib.sha256((ASSETS / name).read_bytes()).hexdigest()


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ASSETS / name).read_text())
    return loaded


def test_real_attestations_are_taken_and_bundled_like_pypis_provenance() -> None:
    sent = [load(f"{SDIST}.publish.attestation"), load(f"{SDIST}.slsa.attestation")]
    taken = parse_attestations(json.dumps(sent), SDIST, sha(SDIST))
    assert taken == sent
    # PyPI's provenance for this sdist holds its publish attestation: ours bundles the same
    theirs = load(f"{SDIST}.provenance")["attestation_bundles"][0]
    ours = provenance(taken[:1], theirs["publisher"])
    assert ours["version"] == 1
    (bundle,) = ours["attestation_bundles"]
    assert bundle["publisher"] == theirs["publisher"]
    assert [a["envelope"] for a in bundle["attestations"]] == [
        a["envelope"] for a in theirs["attestations"]
    ]


def test_an_attestation_of_another_file_is_refused() -> None:
    sent = json.dumps([load(f"{WHEEL}.publish.attestation")])
    with pytest.raises(InvalidUpload) as caught:
        parse_attestations(sent, SDIST, sha(SDIST))
    assert any(f"is for '{WHEEL}', not for '{SDIST}'" in p for p in caught.value.problems)
    assert any("another sha256" in p for p in caught.value.problems)
    # the right name with other bytes
    with pytest.raises(InvalidUpload, match="another sha256"):
        parse_attestations(sent, WHEEL, "0" * 64)


def _with_statement(statement: dict[str, Any]) -> str:
    item = load(f"{WHEEL}.publish.attestation")
    item["envelope"]["statement"] = base64.b64encode(json.dumps(statement).encode()).decode()
    return json.dumps([item])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ("[]", "non-empty JSON array"),
        ('{"a": 1}', "non-empty JSON array"),
        ("[1]", "not a JSON object"),
        ('[{"version": 2}]', "only version 1"),
        (
            _with_statement({"_type": "https://in-toto.io/Statement/v0.1", "subject": []}),
            "not an in-toto",
        ),
        (
            _with_statement(
                {
                    "_type": "https://in-toto.io/Statement/v1",
                    "subject": [
                        {"name": WHEEL, "digest": {"sha256": sha(WHEEL)}},
                        {"name": "other.whl", "digest": {"sha256": "0" * 64}},
                    ],
                    "predicateType": "https://docs.pypi.org/attestations/publish/v1",
                }
            ),
            "exactly one subject",
        ),
        (
            _with_statement(
                {
                    "_type": "https://in-toto.io/Statement/v1",
                    "subject": [{"name": WHEEL, "digest": {"sha256": sha(WHEEL)}}],
                    "predicateType": "https://example.com/made-up/v1",
                }
            ),
            "predicate type 'https://example.com/made-up/v1'",
        ),
    ],
)
def test_malformed_attestations_are_refused_saying_why(text: str, message: str) -> None:
    with pytest.raises(InvalidUpload, match=message):
        parse_attestations(text, WHEEL, sha(WHEEL))


def test_the_same_predicate_twice_is_refused() -> None:
    one = load(f"{WHEEL}.publish.attestation")
    with pytest.raises(InvalidUpload, match="repeats the predicate type"):
        parse_attestations(json.dumps([one, one]), WHEEL, sha(WHEEL))


def test_a_broken_envelope_lists_every_problem() -> None:
    item = load(f"{WHEEL}.publish.attestation")
    item["envelope"]["signature"] = "not base64!"
    item["verification_material"]["transparency_entries"] = []
    with pytest.raises(InvalidUpload) as caught:
        parse_attestations(json.dumps([item]), WHEEL, sha(WHEEL))
    assert len(caught.value.problems) == 2
