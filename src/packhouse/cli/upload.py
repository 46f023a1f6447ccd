"""`packhouse upload` and `packhouse conda patch`: talk to a running server over HTTP.

Wheels and sdists go to a PyPI repository through the legacy upload API; `.conda` and
`.tar.bz2` packages go to a conda channel with `PUT /conda/<repo>/<subdir>/<filename>`
(the subdir read from the package's info/index.json).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from packhouse.cli.common import console, err_console, fail
from packhouse.errors import PackhouseError

if TYPE_CHECKING:
    import httpx
    from rich.progress import Progress, TaskID

__all__ = ["patch", "upload"]

CHUNK = 256 * 1024
DEFAULT_URL = "http://127.0.0.1:8080"

UrlOption = Annotated[
    str,
    typer.Option("--url", envvar="PACKHOUSE_URL", help="The server's URL.", show_default=True),
]
UserOption = Annotated[
    str | None, typer.Option("--user", "-u", envvar="PACKHOUSE_USER", help="User name.")
]
PasswordOption = Annotated[
    str | None,
    typer.Option(
        "--password", "-p", envvar="PACKHOUSE_PASSWORD", help="Password.", show_default=False
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="PACKHOUSE_TOKEN", help="An API token (ph-...).", show_default=False
    ),
]
RepoOption = Annotated[str, typer.Option("--repo", "-r", help="Repository (channel) name.")]


@dataclass(frozen=True)
class _Plan:
    path: Path
    kind: str  # "pypi" or "conda"
    url_path: str
    fields: dict[str, str]


def _auth(user: str | None, password: str | None, token: str | None) -> dict[str, str]:
    if token:
        return {"Authorization": f"Bearer {token}"}
    if user and password is not None:
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {basic}"}
    if user:
        fail("--user needs --password (or PACKHOUSE_PASSWORD); or use --token", 2)
    return {}


def _plan(path: Path, repo: str) -> _Plan:
    from packhouse.formats.conda.archive import read_package
    from packhouse.formats.conda.names import parse_filename
    from packhouse.formats.pypi.filenames import parse_dist_filename
    from packhouse.services.conda_uploads import subdir_of

    name = path.name
    if name.endswith((".conda", ".tar.bz2")):
        if parse_filename(name) is None:
            raise PackhouseError(f"{name} is not named '<name>-<version>-<build>.conda/.tar.bz2'")
        subdir = subdir_of(read_package(path).index)
        if subdir is None:
            raise PackhouseError(f"{name}: info/index.json names no subdir (nor platform/arch)")
        return _Plan(path, "conda", f"/conda/{repo}/{subdir}/{name}", {})
    if not name.endswith((".whl", ".tar.gz", ".zip")):
        raise PackhouseError(
            f"{name} is not a package file: packhouse upload takes wheels (.whl), source"
            " distributions (.tar.gz, .zip) and conda packages (.conda, .tar.bz2)"
        )
    dist = parse_dist_filename(name)
    sha256 = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            sha256.update(chunk)
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": dist.name,
        "version": str(dist.version),
        "filetype": "bdist_wheel" if dist.kind == "wheel" else "sdist",
        "pyversion": "py3" if dist.kind == "wheel" else "source",
        "sha256_digest": sha256.hexdigest(),
    }
    return _Plan(path, "pypi", f"/pypi/{repo}/", fields)


class _Tracked:
    """A file whose reads advance a progress bar (httpx reads multipart files in chunks)."""

    def __init__(self, fh: IO[bytes], progress: Progress, task: TaskID) -> None:
        self._fh, self._progress, self._task = fh, progress, task

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self._progress.advance(self._task, len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


def _chunks(path: Path, progress: Progress, task: TaskID) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            progress.advance(task, len(chunk))
            yield chunk


def _send(client: httpx.Client, plan: _Plan, progress: Progress) -> httpx.Response:
    size = plan.path.stat().st_size
    task = progress.add_task(plan.path.name, total=size)
    try:
        if plan.kind == "conda":
            return client.put(
                plan.url_path,
                content=_chunks(plan.path, progress, task),
                headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
            )
        with plan.path.open("rb") as fh:
            files = {"content": (plan.path.name, _Tracked(fh, progress, task))}
            return client.post(plan.url_path, data=plan.fields, files=files)  # type: ignore[arg-type]
    finally:
        progress.update(task, completed=size, visible=False)


def upload(
    files: Annotated[list[Path], typer.Argument(help="Wheels, sdists, .conda or .tar.bz2 files.")],
    repo: RepoOption,
    url: UrlOption = DEFAULT_URL,
    user: UserOption = None,
    password: PasswordOption = None,
    token: TokenOption = None,
) -> None:
    """Upload packages to a running server: wheels and sdists to a PyPI repository, conda
    packages to a channel (into the subdir their info/index.json names).

    Credentials: --user/--password, or --token, or PACKHOUSE_USER/PACKHOUSE_PASSWORD or
    PACKHOUSE_TOKEN. Re-uploading an identical file is fine; different bytes under the same
    filename are refused.

    Examples:

      packhouse upload --repo main dist/*

      PACKHOUSE_TOKEN=ph-... packhouse upload --repo main --url https://pkgs.example.com \\
          linux-64/*.conda noarch/*.conda
    """
    import httpx
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    headers = _auth(user, password, token)
    plans: list[_Plan] = []
    for path in files:
        if not path.is_file():
            fail(f"{path} is not a file", 2)
        try:
            plans.append(_plan(path, repo))
        except PackhouseError as error:
            fail(f"{path}: {error.message}", 2)
    failed = 0
    with (
        _client(url, headers) as client,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        ) as progress,
    ):
        for plan in plans:
            try:
                response = _send(client, plan, progress)
            except httpx.HTTPError as error:
                fail(_unreachable(url, error))
            if response.status_code < 300:
                progress.console.print(response.text.strip(), highlight=False, soft_wrap=True)
                continue
            failed += 1
            progress.console.print(
                f"[bold red]error:[/] {plan.path.name}: {_explain(response, plan, repo)}",
                highlight=False,
                soft_wrap=True,
            )
    if failed:
        raise typer.Exit(1)
    console.print(f"uploaded {len(plans)} file(s) to {repo}", highlight=False)


def _client(url: str, headers: dict[str, str]) -> httpx.Client:
    import httpx

    from packhouse.auth.redact import redact_text, redact_url

    try:
        return httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=300)
    except httpx.InvalidURL as error:
        fail(f"the --url {redact_url(url)} is not a valid URL: {redact_text(str(error))}", 2)


def _unreachable(url: str, error: httpx.HTTPError) -> str:
    """The error for a failed connection, without the URL's password or token."""
    from packhouse.auth.redact import redact_text, redact_url

    return f"cannot reach the server at {redact_url(url)}: {redact_text(str(error))}"


def _explain(response: httpx.Response, plan: _Plan, repo: str) -> str:
    text = response.text.strip()
    status = response.status_code
    if text.startswith(str(status)):
        text = text[len(str(status)) :].strip()
    hint = {
        401: " (send credentials: --user/--password or --token)",
        # the server names the command that grants the right; older servers did not
        403: ""
        if "`packhouse " in text
        else f" (an administrator grants it: `packhouse repo grant {plan.kind}/{repo} USER"
        " upload`)",
        404: f" (is there a {plan.kind} repository named {repo!r}?)",
    }.get(status, "")
    return f"{status} {text}{hint}"


def patch(
    file: Annotated[
        Path,
        typer.Argument(help="patch_instructions.json, or a repodata-patches package", exists=True),
    ],
    repo: RepoOption,
    subdir: Annotated[
        str | None,
        typer.Option(help="The subdir (needed for a .json; a package names its own)."),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    user: UserOption = None,
    password: PasswordOption = None,
    token: TokenOption = None,
) -> None:
    """Set a hosted channel's repodata patch instructions (needs admin on the channel).

    Examples:

      packhouse conda patch --repo main --subdir linux-64 patch_instructions.json

      packhouse conda patch --repo main conda-forge-repodata-patches-20180828-0.tar.bz2
    """
    import httpx
    import orjson

    from packhouse.formats.conda.patches import load_patch_instructions, read_patches_package

    headers = _auth(user, password, token)
    try:
        if file.name.endswith((".conda", ".tar.bz2")):
            found = read_patches_package(file)
            documents = {s: v for s, v in found.items() if subdir in (None, s)}
        else:
            if subdir is None:
                fail("--subdir is needed with a patch_instructions.json", 2)
            documents = {subdir: load_patch_instructions(file.read_bytes(), str(file))}
    except PackhouseError as error:
        fail(error.message, 2)
    if not documents:
        fail(f"{file} holds no patch instructions{f' for {subdir}' if subdir else ''}", 2)
    with _client(url, headers) as client:
        for name, instructions in sorted(documents.items()):
            try:
                response = client.put(
                    f"/conda/{repo}/{name}/patch_instructions.json",
                    content=orjson.dumps(instructions),
                    headers={"Content-Type": "application/json"},
                )
            except httpx.HTTPError as error:
                fail(_unreachable(url, error))
            if response.status_code >= 300:
                fail(f"{name}: {response.status_code} {response.text.strip()}")
            console.print(response.text.strip(), highlight=False)
