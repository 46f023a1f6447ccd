"""One meaning of a repository name given by a person: `pypi/NAME` and `conda/NAME` name one
repository; a bare `NAME` every repository so named, for `repo grant`/`revoke` and a token's
`--repo` alike. Each command says what it reached. A refusal for a missing right names the
command that grants it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from packhouse.errors import PermissionDenied
from packhouse.services import accounts
from packhouse.services.repos import create_repository, set_permission
from packhouse.types import Action, Format
from packhouse.wiring import Services
from tests.auth.test_cli_accounts import cli


def _grants(data: Path, repo: str) -> set[str]:
    out = cli(data, "journal", "--json", "--limit", "100")
    return {
        f"{e['detail']['principal']}:{e['detail']['action']}"
        for e in map(json.loads, out.splitlines())
        if e["action"] == "perm.grant" and e["repository"] == repo
    }


def test_a_bare_name_reaches_every_repository_so_named_and_says_so(tmp_path: Path) -> None:
    cli(tmp_path, "repo", "create", "team")
    cli(tmp_path, "repo", "create", "team", "--format", "conda")
    cli(tmp_path, "repo", "create", "solo", "--format", "conda")
    for user in ("alice", "bob", "carol"):
        cli(tmp_path, "user", "add", user, input=f"{user}-password\n")

    assert "granted upload on pypi/team, conda/team to alice" in cli(
        tmp_path, "repo", "grant", "team", "alice", "upload"
    )
    assert "granted read on pypi/team to bob" in cli(
        tmp_path, "repo", "grant", "pypi/team", "bob", "read"
    )
    assert "granted read on conda/team to carol" in cli(
        tmp_path, "repo", "grant", "team", "carol", "read", "--format", "conda"
    )
    # a bare name of one repository reaches that one, whatever its format
    assert "granted read on conda/solo to bob" in cli(
        tmp_path, "repo", "grant", "solo", "bob", "read"
    )
    assert _grants(tmp_path, "pypi/team") == {"alice:upload", "bob:read"}
    # a grant replaces what the principal held, and says what it replaced
    assert "granted read on pypi/team (was upload) to alice" in cli(
        tmp_path, "repo", "grant", "pypi/team", "alice", "read"
    )
    assert "granted read on pypi/team to alice" in cli(
        tmp_path, "repo", "grant", "pypi/team", "alice", "read"
    )
    assert _grants(tmp_path, "conda/team") == {"alice:upload", "carol:read"}

    made = cli(
        tmp_path, "token", "create", "--user", "alice", "--repo", "team", "--scope", "upload"
    )
    assert "upload on team (pypi/team, conda/team)" in made
    one = cli(tmp_path, "token", "create", "--user", "bob", "--repo", "pypi/team")
    assert "read on pypi/team." in one

    assert "revoked alice's access to pypi/team (was read), conda/team (was upload)" in cli(
        tmp_path, "repo", "revoke", "team", "alice"
    )
    missing = cli(tmp_path, "repo", "grant", "nothing", "alice", "read", code=1)
    assert "there is no repository 'nothing'" in missing
    assert "`packhouse repo list`" in missing
    wrong = cli(tmp_path, "repo", "grant", "npm/team", "alice", "read", code=1)
    assert "unknown format 'npm'" in wrong


def test_refusals_name_the_command_that_grants_the_right(memory_services: Services) -> None:
    svc = memory_services
    ctx = svc.ctx
    accounts.create_user(ctx, actor="t", name="ci", password=None, admin=False, service=True)
    repo = create_repository(ctx, actor="t", name="main", fmt=Format.PYPI)
    create_repository(ctx, actor="t", name="main", fmt=Format.CONDA)
    ci = svc.access.principal_of(accounts.get_user(ctx, "ci"))
    with pytest.raises(PermissionDenied) as refused:
        svc.access.check(ci, repo, Action.UPLOAD)
    assert "`packhouse repo grant pypi/main ci upload`" in str(refused.value)
    with pytest.raises(PermissionDenied) as no_token:
        accounts.create_token(
            ctx, svc.access, svc.catalog, actor="t", owner="ci", repositories=["main"],
            actions=[Action.UPLOAD],
        )  # fmt: skip
    assert "`packhouse repo grant main ci upload`" in str(no_token.value)

    set_permission(
        ctx, actor="t", fmt=Format.PYPI, name="main", principal="ci", action=Action.UPLOAD
    )
    made = accounts.create_token(
        ctx, svc.access, svc.catalog, actor="t", owner="ci", repositories=["pypi/main"],
        actions=[Action.READ],
    )  # fmt: skip
    as_token = svc.access.authenticate(f"Bearer {made.secret}", None, None)
    with pytest.raises(PermissionDenied) as narrow:
        svc.access.check(as_token, repo, Action.UPLOAD)
    text = str(narrow.value)
    assert "its scope leaves that out" in text
    assert "`packhouse token create --user ci --repo pypi/main --scope upload`" in text
    with pytest.raises(PermissionDenied, match="`packhouse user admin ci` makes them one"):
        svc.access.require_admin(ci)
