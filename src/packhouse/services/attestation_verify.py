"""Sigstore verification of PEP 740 attestations at upload, when the operator enables it
(setting `attestations_verify`; needs the `attestations` extra: sigstore and
pypi-attestations).

Each attestation must be signed by a Sigstore certificate that the public-good instance's
Fulcio issued (offline: the trust root shipped with sigstore, no network at upload), logged
in Rekor, over the uploaded file (name and sha256), and for the identity of the publisher
that uploaded it: the certificate's OIDC issuer is the registered issuer's URL, and its
source repository is the publisher's `repository` (GitHub: https://github.com/<repository>)
or `project_path` (GitLab: <issuer URL>/<project_path>) claim. A publisher matching on
neither claim cannot vouch for a source repository, so its attestations are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from packhouse.errors import InvalidUpload

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


def source_repository(issuer_url: str, claims: Mapping[str, str]) -> str:
    """The source repository URI a publisher's attestations must be signed for."""
    if "repository" in claims:
        return f"https://github.com/{claims['repository']}"
    if "project_path" in claims:
        return f"{issuer_url.rstrip('/')}/{claims['project_path']}"
    raise InvalidUpload(
        "attestations are verified against the publisher's source repository, and this"
        " publisher matches neither a 'repository' (GitHub) nor a 'project_path' (GitLab)"
        " claim; add one to the publisher, or upload without attestations"
    )


def verify(
    attestations: list[dict[str, Any]],
    filename: str,
    sha256: str,
    issuer_url: str,
    claims: Mapping[str, str],
) -> None:
    """Refuse (InvalidUpload, one problem per attestation) what does not verify."""
    try:
        import pypi_attestations as pa
        from sigstore.verify import policy
    except ImportError:  # pragma: no cover - the extra is installed where it is enabled
        raise InvalidUpload(
            "this server verifies attestations (attestations_verify) but sigstore is not"
            " installed: pip install 'packhouse[attestations]'"
        ) from None
    identity = policy.AllOf(
        [
            policy.OIDCIssuerV2(issuer_url),
            policy.OIDCSourceRepositoryURI(source_repository(issuer_url, claims)),
        ]
    )
    dist = pa.Distribution(name=filename, digest=sha256)
    problems = []
    for index, item in enumerate(attestations):
        try:
            pa.Attestation.model_validate(item).verify(identity, dist, offline=True)
        except (pa.AttestationError, ValueError) as exc:  # ValueError: pydantic's too
            problems.append(f"attestation {index + 1} does not verify: {exc}"[:600])
    if problems:
        raise InvalidUpload(problems)
