"""Request and response bodies of the management API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictBool

from packhouse.auth.redact import redact_url
from packhouse.db.journal_store import JournalEntry
from packhouse.db.repository_store import Repository
from packhouse.db.token_store import Token
from packhouse.db.user_store import Grant, Group, User
from packhouse.services.repos import RepoSettings
from packhouse.types import Action, Format
from packhouse.web.api.params import (
    DESCRIPTION_LENGTH,
    MAX_ENTRIES,
    NAME_LENGTH,
    Name,
    RepoEntry,
)


class InputModel(BaseModel):
    """A request body: unknown fields are refused (a misspelt field must not be silently
    ignored). Its flags are StrictBool: `"yes"` is not `true`."""

    model_config = ConfigDict(extra="forbid")


class UserOut(BaseModel):
    name: str
    admin: bool
    disabled: bool
    service: bool = Field(
        default=False, description="A service account: no password, acts only through tokens."
    )
    groups: list[str] = []

    @classmethod
    def of(cls, user: User, groups: frozenset[str] = frozenset()) -> UserOut:
        return cls(
            name=user.name,
            admin=user.is_admin,
            disabled=user.disabled,
            service=user.is_service,
            groups=sorted(groups),
        )


class UserCreate(InputModel):
    name: Name = Field(examples=["alice"])
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="Required, except for a service account, which has none.",
    )
    admin: StrictBool = False
    service: StrictBool = Field(
        default=False,
        description="A service account (a CI bot): no password, cannot sign in, only holds"
        " tokens (`packhouse user add NAME --service`).",
    )


class UserUpdate(InputModel):
    password: str | None = Field(default=None, min_length=1, max_length=4096)
    admin: StrictBool | None = None
    disabled: StrictBool | None = None


class Me(BaseModel):
    name: str
    anonymous: bool
    admin: bool
    groups: list[str]
    token_id: int | None = None
    token_repositories: list[str] | None = None
    token_actions: list[Action] | None = None


class GroupOut(BaseModel):
    name: str
    members: list[str]

    @classmethod
    def of(cls, group: Group) -> GroupOut:
        return cls(name=group.name, members=list(group.members))


class GroupCreate(InputModel):
    name: Name = Field(examples=["developers"])


class TokenOut(BaseModel):
    id: int
    name: str
    user: str
    shown: str = Field(description="The first characters of the secret, to recognise it.")
    repositories: list[str] | None = Field(description="None: every repository the user can reach.")
    actions: list[Action]
    expires_at: datetime | None
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool

    @classmethod
    def of(cls, token: Token) -> TokenOut:
        return cls(
            id=token.id,
            name=token.name,
            user=token.user_name,
            shown=token.shown,
            repositories=None if token.repositories is None else list(token.repositories),
            actions=sorted(token.actions, key=[Action.READ, Action.UPLOAD, Action.ADMIN].index),
            expires_at=token.expires_at,
            created_at=token.created_at,
            last_used_at=token.last_used_at,
            revoked=token.revoked,
        )


class TokenCreate(InputModel):
    name: str = Field(default="", max_length=200, examples=["ci upload"])
    user: Name | None = Field(default=None, description="The owner; default: the caller.")
    repositories: list[RepoEntry] | None = Field(
        default=None,
        max_length=MAX_ENTRIES,
        description="NAME or FORMAT/NAME entries; None: every repository the owner can reach.",
        examples=[["pypi/main"]],
    )
    actions: list[Action] = Field(default=[Action.READ], min_length=1, max_length=len(Action))
    expires: str | None = Field(
        default=None,
        max_length=40,
        description="30d, 12h, 90m, 2w, or a date such as 2026-12-31 (UTC); at most ten years"
        " ahead. A call made with a token that expires must pass one no later than that"
        " token's.",
    )


class TokenCreated(TokenOut):
    secret: str = Field(description="Shown once: store it now, it cannot be shown again.")


class RepositoryOut(BaseModel):
    name: str
    format: Format
    kind: str
    description: str
    bases: list[str]
    public: bool
    uploads_enabled: bool
    upstream_url: str | None
    last_serial: int
    url: str
    upstream: UpstreamOut | None = None
    allow_upstream: list[str] = []
    cooldown: CooldownOut | None = None

    @classmethod
    def of(cls, repo: Repository, public: bool, base_url: str) -> RepositoryOut:
        path = (
            f"/pypi/{repo.name}/simple/" if repo.format is Format.PYPI else f"/conda/{repo.name}/"
        )
        return cls(
            name=repo.name,
            format=repo.format,
            kind=repo.kind.value,
            description=repo.description,
            bases=list(repo.bases),
            public=public,
            uploads_enabled=repo.uploads_enabled,
            upstream_url=redact_url(repo.upstream_url) if repo.upstream_url else None,
            last_serial=repo.last_serial,
            url=base_url + path,
            upstream=UpstreamOut(
                user=repo.proxy.user,
                has_secret=repo.proxy.password is not None,
                ttl=repo.proxy.ttl,
                offline=repo.proxy.offline,
            )
            if repo.upstream_url
            else None,
            allow_upstream=list(repo.allow_upstream),
            cooldown=CooldownOut(
                min_age=repo.cooldown.min_age,
                exclude_newer=repo.cooldown.exclude_newer,
                exempt=list(repo.cooldown.exempt),
            )
            if repo.cooldown.active or repo.cooldown.exempt
            else None,
        )


class UpstreamOut(BaseModel):
    """How a proxy reaches its upstream; the secret itself is never returned."""

    user: str | None
    has_secret: bool
    ttl: int | None = Field(description="Seconds; null: the server's upstream_ttl setting.")
    offline: bool


class CooldownOut(BaseModel):
    min_age: int | None = Field(description="Seconds.")
    exclude_newer: datetime | None
    exempt: list[str]


Seconds = Annotated[int, Field(ge=0, le=3650 * 86400)]
NameList = Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=1000)]


class RepositorySettingsIn(InputModel):
    """Settings a repository may change. Omitted fields stay as they are; `clear` resets
    upstream_auth, ttl, min_age or exclude_newer."""

    description: str | None = Field(default=None, max_length=DESCRIPTION_LENGTH)
    bases: list[RepoEntry] | None = Field(default=None, max_length=MAX_ENTRIES)
    upstream_url: str | None = Field(default=None, max_length=2000)
    upstream_user: str | None = Field(default=None, max_length=200)
    upstream_password: SecretStr | None = Field(
        default=None, description="The upstream's password or token; never shown again."
    )
    ttl: Seconds | None = None
    offline: StrictBool | None = None
    allow_upstream: NameList | None = None
    min_age: Seconds | None = Field(default=None, description="Seconds; hide younger files.")
    exclude_newer: datetime | None = None
    cooldown_exempt: NameList | None = None
    clear: list[Literal["upstream_auth", "ttl", "min_age", "exclude_newer"]] = []

    def settings(self) -> RepoSettings:
        return RepoSettings(
            bases=self.bases,
            description=self.description,
            upstream_url=self.upstream_url,
            upstream_user=self.upstream_user,
            upstream_password=(
                self.upstream_password.get_secret_value() if self.upstream_password else None
            ),
            ttl=self.ttl,
            offline=self.offline,
            allow_upstream=self.allow_upstream,
            min_age=self.min_age,
            exclude_newer=(
                self.exclude_newer.replace(tzinfo=UTC)
                if self.exclude_newer and self.exclude_newer.tzinfo is None
                else self.exclude_newer
            ),
            cooldown_exempt=self.cooldown_exempt,
            clear=frozenset(self.clear),
        )


class RepositoryCreate(RepositorySettingsIn):
    name: RepoEntry = Field(examples=["team"])
    format: Format = Format.PYPI
    public: StrictBool = Field(default=False, description="Let anonymous callers read it.")
    description: str | None = Field(default="", max_length=DESCRIPTION_LENGTH)
    kind: Literal["hosted", "proxy"] = Field(
        default="hosted", description="proxy: a caching mirror of upstream_url."
    )


class PermissionOut(BaseModel):
    principal: str
    kind: str
    action: Action

    @classmethod
    def of(cls, grant: Grant) -> PermissionOut:
        return cls(
            principal=grant.principal, kind=grant.principal_kind, action=Action(grant.action)
        )


class PermissionSet(InputModel):
    principal: str = Field(
        min_length=1, max_length=NAME_LENGTH, examples=["alice", ":authenticated:"]
    )
    kind: Literal["user", "group", "special"] | None = Field(
        default=None, description="Default: special for :anonymous:/:authenticated:, else user."
    )
    action: Action


class JournalOut(BaseModel):
    serial: int
    time: datetime
    actor: str
    action: str
    repository: str | None
    project: str | None
    filename: str | None
    detail: dict[str, Any] | None

    @classmethod
    def of(cls, e: JournalEntry) -> JournalOut:
        return cls(
            serial=e.serial,
            time=e.time,
            actor=e.actor,
            action=e.action,
            repository=e.repository,
            project=e.project,
            filename=e.filename,
            detail=e.detail,
        )
