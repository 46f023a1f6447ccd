"""A schemathesis check for `/api/v1`: no answer is a 500 (an unhandled error). Other 5xx
are meant: 502 when an OIDC issuer given to register cannot be reached, 503 when the
database stays locked. Loaded with SCHEMATHESIS_HOOKS=tests.reliability.schemathesis_hooks
(see docs/reliability.md)."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.check
def no_internal_error(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code == 500:
        raise AssertionError(
            f"500 Internal Server Error for {case.method} {case.formatted_path}:"
            f" {response.text[:300]}"
        )
    return None
