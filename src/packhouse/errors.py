"""The domain error tree. Imports nothing of ours and carries no HTTP.

    PackhouseError
    ├── NotFound
    │   ├── RepositoryNotFound
    │   ├── ProjectNotFound
    │   └── ArtifactNotFound
    ├── InvalidInput                 something the caller sent is wrong
    │   ├── InvalidName
    │   ├── NotAcceptable            none of the media types the client accepts can be served
    │   ├── InvalidUpload            carries the full list of problems, field by field
    │   └── UnsafeArchive            a zip/tar/conda archive that must not be read further
    ├── MethodNotAllowed             the path exists but does not take that method
    ├── Conflict
    │   ├── FileExists               same filename, different bytes (or a deleted filename)
    │   └── AlreadyExists            a repository, user or group of that name exists
    ├── TooLarge                     a body or archive member over a configured limit
    ├── AuthenticationRequired       no credentials, or credentials that are not valid
    ├── PermissionDenied             valid credentials without the right
    ├── RateLimited                  too many failed logins; carries retry_after seconds
    ├── StorageFull                  the server's disk (or quota) ran out while storing
    ├── Unavailable                  the database is locked or unreachable, past the retries;
    │                                carries retry_after seconds
    └── UpstreamError                a proxy's upstream failed or sent something unusable
        ├── UpstreamRefused          the upstream URL or an address it resolves to is not allowed
        ├── UpstreamTimeout          the upstream did not connect or answer in time
        └── UpstreamTooLarge         the upstream sent more than the cap (also a TooLarge)

`web/errors.py` is the one place that maps these to HTTP status codes; the CLI prints
`str(error)`. Every message says what was wrong and, where it helps, what to do.
"""

from __future__ import annotations


class PackhouseError(Exception):
    """Base of every error Packhouse raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(PackhouseError):
    pass


class RepositoryNotFound(NotFound):
    pass


class ProjectNotFound(NotFound):
    pass


class ArtifactNotFound(NotFound):
    pass


class InvalidInput(PackhouseError):
    pass


class InvalidName(InvalidInput):
    pass


class NotAcceptable(InvalidInput):
    pass


class InvalidUpload(InvalidInput):
    """An upload refused for one or more reasons; `problems` lists them all."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class UnsafeArchive(InvalidUpload):
    pass


class MethodNotAllowed(PackhouseError):
    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed


class Conflict(PackhouseError):
    pass


class FileExists(Conflict):
    pass


class AlreadyExists(Conflict):
    pass


class TooLarge(PackhouseError):
    pass


class AuthenticationRequired(PackhouseError):
    pass


class PermissionDenied(PackhouseError):
    pass


class RateLimited(PackhouseError):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageFull(PackhouseError):
    """No space left where the server stores uploads or its database: nothing was kept."""

    def __init__(
        self,
        message: str = "the server has no space left to store this (its disk or quota is"
        " full); nothing was kept: try again once the operator has freed space",
    ) -> None:
        super().__init__(message)


class Unavailable(PackhouseError):
    """A dependency of the server (its database) is busy or unreachable for now: the request
    changed nothing and may be sent again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamError(PackhouseError):
    pass


class UpstreamRefused(UpstreamError):
    """Not asked at all: a scheme other than http(s), or an address outside what is allowed."""


class UpstreamTimeout(UpstreamError):
    pass


class UpstreamTooLarge(UpstreamError, TooLarge):
    """An upstream page or file over its cap: a TooLarge, answered as the upstream's fault."""
