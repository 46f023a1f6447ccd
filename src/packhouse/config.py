"""Typed settings, loaded once by the CLI and passed down.

Sources, strongest first: explicit overrides (command-line options), `PACKHOUSE_*`
environment variables, the TOML file named by `--config` / `PACKHOUSE_CONFIG`, defaults.
Nested fields use `__` in the environment: `PACKHOUSE_S3__BUCKET=blobs`.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from packhouse.errors import InvalidInput

MiB = 1024 * 1024


class S3Settings(BaseModel):
    endpoint_url: str | None = None
    bucket: str = "packhouse"
    prefix: str = "blobs/"
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    # "stream": the server reads from S3 and sends the bytes; "redirect": a presigned URL.
    serve: Literal["stream", "redirect"] = "stream"
    presign_seconds: int = 300


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PACKHOUSE_", env_nested_delimiter="__", extra="forbid"
    )

    data: Path = Path("packhouse-data")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    # Server processes on the one port (`serve --workers`); they share the database and blobs.
    workers: int = Field(default=1, ge=1, le=64)
    # SQLAlchemy URL; empty means SQLite at <data>/packhouse.db.
    database_url: str = ""
    # Seconds a write waits for another writer's SQLite lock before the request is answered
    # 503 with Retry-After (nothing written); PostgreSQL writers queue on an advisory lock.
    db_busy_timeout: float = Field(default=20.0, gt=0, le=600)
    storage: Literal["local", "s3"] = "local"
    s3: S3Settings = Field(default_factory=S3Settings)
    # The URL clients reach the server at, for printed hints; empty means http://host:port.
    public_url: str = ""
    admin_password: SecretStr | None = None
    max_upload_bytes: int = 100 * MiB
    # Cache-Control max-age for index pages (simple pages, JSON API, repodata); 0 (the
    # default) sends `no-cache`: clients revalidate with If-None-Match and see an upload at
    # once. Files and shards are immutable.
    index_max_age: int = 0
    log_level: str = "info"
    access_log: bool = True
    # TLS served by Packhouse itself (small installs without a reverse proxy): PEM files of
    # the certificate chain and its key, the key's password when it is encrypted, and the
    # oldest TLS version accepted.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_key_password: SecretStr | None = None
    tls_min_version: Literal["1.2", "1.3"] = "1.2"
    # Trusted publishing (OIDC): the audience an identity token must name (empty: the host
    # name of the server's URL, which rattler and pixi also derive) and how many minutes a
    # minted upload token lives.
    oidc_audience: str = ""
    oidc_token_minutes: int = Field(default=15, ge=1, le=360)
    # PEP 740: verify uploaded attestations with sigstore (offline trust root) before storing
    # them; needs the `attestations` extra. Off: their shape and subject are still checked.
    attestations_verify: bool = False
    # Failed password logins allowed per user name and per client address within the window
    # (seconds); past that the server answers 429 with Retry-After until the window releases.
    login_failure_limit: int = Field(default=10, ge=1)
    login_failure_window: int = Field(default=300, ge=1)
    # Proxies: seconds a fetched upstream index page is trusted before it is revalidated
    # (a repository's own ttl wins), connect and read timeout for upstream requests, the
    # largest upstream PyPI page and conda index file read, and whether proxies serve only
    # what they have cached.
    upstream_ttl: int = Field(default=600, ge=0)
    upstream_timeout: float = Field(default=30.0, gt=0, le=3600)
    upstream_max_page_bytes: int = Field(default=64 * MiB, ge=1024)
    upstream_max_index_bytes: int = Field(default=2048 * MiB, ge=1024)
    upstream_max_file_bytes: int = Field(default=16 * 1024 * MiB, ge=1024)
    upstream_offline: bool = False
    # Upstream addresses in loopback, private and link-local ranges are refused unless they
    # fall in one of these networks (CIDRs), e.g. ["10.0.0.0/8"] for an internal mirror.
    upstream_allowed_networks: list[str] = Field(default_factory=list)
    # Reverse proxies or load balancers in front of the server (addresses or CIDRs): for
    # requests from them the client is read from X-Forwarded-For (web/client.py).
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("upstream_allowed_networks", "trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(
                    f"{text[:60]!r} is not a network: use CIDRs such as 10.0.0.0/8 or fd00::/8"
                ) from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data / 'packhouse.db').absolute()}"

    @property
    def base_url(self) -> str:
        """Where clients reach the server: `public_url`, else built from host and port (a
        wildcard bind address names this machine's loopback, which works at least here)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        wildcards = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 (mapped away)
        host = wildcards.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{host}:{self.port}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from a TOML file (optional), the environment and explicit overrides.

    Overrides that are None are ignored, so CLI options left unset do not mask the
    environment or the file.
    """
    file_values: dict[str, Any] = {}
    if config_file is not None:
        try:
            file_values = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidInput(f"config file {config_file} does not exist") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"config file {config_file} is not valid TOML: {exc}") from None
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        from_env = Settings()
    except SettingsError as exc:
        raise InvalidInput(
            f"invalid settings: {exc}; lists in the environment are JSON, for example"
            """ PACKHOUSE_UPSTREAM_ALLOWED_NETWORKS='["10.0.0.0/8"]'"""
        ) from None
    except ValidationError as exc:
        raise InvalidInput(f"invalid settings: {_problems(exc)}") from None
    try:
        merged = _deep_merge(file_values, from_env.model_dump(exclude_unset=True), given)
        return Settings.model_validate(merged) if merged else from_env
    except ValidationError as exc:
        raise InvalidInput(f"invalid settings: {_problems(exc)}") from None


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


def _deep_merge(*layers: dict[str, Any]) -> dict[str, Any]:
    """Later layers win, key by key, also inside nested tables such as [s3]."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = _deep_merge(merged[key], value)
            else:
                merged[key] = value
    return merged
