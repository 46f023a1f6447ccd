"""`packhouse user|group|token|journal` on a data directory, in-process."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from packhouse.cli.main import app

runner = CliRunner()


def cli(data: Path, *args: str, input: str | None = None, code: int = 0) -> str:
    if not (data / "packhouse.db").exists():
        assert runner.invoke(app, ["db", "upgrade", "--data", str(data)]).exit_code == 0
    result = runner.invoke(app, [*args, "--data", str(data)], input=input)
    assert result.exit_code == code, result.output
    return result.output


def test_users_groups_tokens_and_the_journal(tmp_path: Path) -> None:
    cli(tmp_path, "user", "add", "alice", input="alice-password\n")
    cli(tmp_path, "repo", "create", "team")
    cli(tmp_path, "group", "create", "devs")
    cli(tmp_path, "group", "add", "devs", "alice")
    assert "alice" in cli(tmp_path, "group", "list")
    assert "devs" in cli(tmp_path, "user", "list")
    refused = cli(tmp_path, "token", "create", "--user", "alice", "--repo", "team", code=1)
    assert "does not hold read on 'team'" in refused
    cli(tmp_path, "repo", "grant", "team", "devs", "upload", "--group")
    out = cli(
        tmp_path, "token", "create", "--user", "alice", "--repo", "team", "--scope", "upload",
        "--expires", "30d", "--name", "laptop",
    )  # fmt: skip
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("ph-")
    (listed,) = [json.loads(x) for x in cli(tmp_path, "token", "list", "--json").splitlines()]
    assert listed["name"] == "laptop"
    assert listed["actions"] == ["upload"]
    assert secret not in json.dumps(listed)
    cli(tmp_path, "token", "revoke", str(listed["id"]))
    assert cli(tmp_path, "token", "list", "--json").strip() == ""
    assert "no token with id 99" in cli(tmp_path, "token", "revoke", "99", code=1)
    bad = cli(tmp_path, "token", "create", "--user", "alice", "--expires", "soon", code=1)
    assert "use a duration such as 30d" in bad
    for huge in ("999999999d", "9999-12-31"):
        far = cli(tmp_path, "token", "create", "--user", "alice", "--expires", huge, code=1)
        assert "at most 3650 days ahead" in far
    assert "no token with id" in cli(tmp_path, "token", "revoke", "9" * 25, code=1)
    cli(tmp_path, "group", "remove", "devs", "alice")
    cli(tmp_path, "user", "disable", "alice")
    actions = [json.loads(x)["action"] for x in cli(tmp_path, "journal", "--json").splitlines()]
    assert actions[:4] == ["user.disable", "group.remove", "token.revoke", "token.create"]
    only = cli(tmp_path, "journal", "--action", "token.create", "--json").splitlines()
    assert len(only) == 1
    assert secret not in cli(tmp_path, "journal", "--limit", "100")


def test_data_commands_refuse_a_directory_without_a_database(tmp_path: Path) -> None:
    result = runner.invoke(app, ["user", "list", "--data", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "no Packhouse database" in result.output
    assert "packhouse db upgrade" in result.output
    assert not (tmp_path / "nowhere").exists()
