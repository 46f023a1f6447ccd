"""A server holding a bit of everything (for export, import and static-tree tests): PyPI
files (one yanked, one deleted), conda packages with patch instructions, repositories with
bases, an upstream, a cooldown and an allow list, a user, a group, a token, grants."""

from __future__ import annotations

import json
from pathlib import Path

from tests.builders import make_sdist, make_wheel
from tests.clients.test_pypi_clients import twine_upload
from tests.conftest import RunningServer

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "tests" / "data" / "conda" / "conda" / "test-recipes" / "noarch"
CONDA_FILES = ("dependency-1.0-0.conda", "dependency-2.0-0.conda", "dependent-1.0-0.conda",
               "dependent-2.0-0.conda")  # fmt: skip


def populate(server: RunningServer, dist: Path) -> None:
    dist.mkdir(exist_ok=True)
    twine_upload(
        server,
        make_wheel(dist, "ph-move-base", "1.0"),
        make_sdist(dist, "ph-move-base", "1.0"),
        make_wheel(dist, "ph-move-base", "1.1"),
        make_wheel(dist, "ph-move-app", "1.0", requires=["ph-move-base"]),
        make_wheel(dist, "ph-move-gone", "1.0"),
    )
    cli = server.run_cli
    cli("yank", "main", "ph-move-base", "1.1", "--reason", "broken")
    cli("delete", "main", "ph-move-gone", "1.0", "--yes")
    cli("repo", "create", "team", "--format", "pypi")
    twine_upload(server, make_wheel(dist, "ph-move-team", "2.0"), repo="team")
    cli("repo", "create", "upstream", "--upstream", "https://pypi.example.org/simple/",
        "--min-age", "3d", "--ttl", "1h")  # fmt: skip
    cli("repo", "create", "all", "--bases", "team,main,upstream", "--allow-upstream",
        "ph-move-app", "--exclude-newer", "2026-06-30",
        "--cooldown-exempt", "ph-move-team")  # fmt: skip
    cli("user", "add", "alice", input="alice-Pa55word-long\n")
    cli("group", "create", "devs")
    cli("group", "add", "devs", "alice")
    cli("repo", "grant", "team", "devs", "upload", "--group")
    cli("repo", "grant", "main", ":authenticated:", "read")
    cli("token", "create", "--user", "alice", "--repo", "pypi/team", "--scope", "upload",
        "--expires", "30d", "--name", "laptop")  # fmt: skip
    with server.client() as client:
        for name in CONDA_FILES:
            path = RECIPES / name
            put = client.put(f"/conda/main/noarch/{name}", content=path.read_bytes())
            assert put.status_code == 201, put.text
        doc = {
            "patch_instructions_version": 1,
            "packages.conda": {"dependent-1.0-0.conda": {"depends": ["dependency >=1"]}},
        }
        patched = client.put("/conda/main/noarch/patch_instructions.json", content=json.dumps(doc))
        assert patched.status_code < 300, patched.text
