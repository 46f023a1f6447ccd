"""run_exports.json, index.html and channeldata.json of a conda group with a proxy, in-process:
they list what the group's repodata lists (own, bases, proxies last, the confusion rule, the
cooldowns), never only the hosted packages."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.services.test_conda_sources_proxy import (
    NOW_MS,
    Channel,
    body,
    channel_fixture,
    records,
    repo,
    svc_fixture,
    upstream_fixture,
)
from tests.upstream_server import Document

from packhouse.formats.conda.version import version_key
from packhouse.services.conda_proxied import FilePage
from packhouse.services.repos import RepoSettings, update_repository
from packhouse.types import Format
from packhouse.wiring import Services

__all__ = ["channel_fixture", "svc_fixture", "upstream_fixture"]  # the fixtures


def channeldata(svc: Services, channel: str = "grp") -> dict[str, Any]:
    page = svc.conda.channeldata(repo(svc, channel))
    doc: dict[str, Any] = json.loads(page.read() if isinstance(page, FilePage) else page.body)
    return doc


def channel_index(svc: Services, channel: str = "grp") -> str:
    page = svc.conda.channel_index(repo(svc, channel))
    return (page.read() if isinstance(page, FilePage) else page.body).decode()


def listed(html: str) -> set[str]:
    """The package files a subdir's index.html links to."""
    return {
        f for f in re.findall(r'<a href="([^"]+)">', html) if f.endswith((".conda", ".tar.bz2"))
    }


def run_exports(svc: Services, subdir: str = "noarch") -> dict[str, Any]:
    doc = json.loads(body(svc, "grp", "run_exports.json", subdir))
    return {**doc["packages"], **doc["packages.conda"]}


def derived(svc: Services, subdirs: list[str]) -> dict[str, tuple[str, list[str]]]:
    """{name: (newest version, subdirs)} as the group's repodata.json files list them."""
    found: dict[str, tuple[str, list[str]]] = {}
    for subdir in subdirs:
        for record in records(svc, "grp", subdir).values():
            version, where = found.get(record["name"], (record["version"], []))
            newest = max(version, record["version"], key=version_key)
            found[record["name"]] = (newest, sorted({*where, subdir}))
    return found


def summary(doc: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    return {n: (p["version"], p["subdirs"]) for n, p in doc["packages"].items()}


def test_the_listings_follow_the_resolution(svc: Services, channel: Channel) -> None:
    channel.add("pinned", "1.0", run_exports={"weak": ["pinned >=1.0"]})
    channel.publish()
    served = records(svc, "grp")
    assert set(served) == {
        "acme-1.0-0.conda",  # hosted; the upstream's acme 99.0 is kept out
        "six-1.16.0-0.conda",
        "six-1.17.0-0.tar.bz2",
        "pinned-1.0-0.conda",
    }
    exports = run_exports(svc)
    assert set(exports) == set(served)
    assert exports["pinned-1.0-0.conda"] == {"run_exports": {"weak": ["pinned >=1.0"]}}
    assert exports["six-1.16.0-0.conda"] == {"run_exports": {}}
    zst = svc.conda.page(repo(svc, "grp"), "noarch", "run_exports.json.zst")
    assert zst.etag != svc.conda.page(repo(svc, "grp"), "noarch", "run_exports.json").etag
    html = body(svc, "grp", "index.html").decode()
    assert listed(html) == set(served)
    assert 'href="repodata.json"' in html
    # channeldata: the subdirs with hosted records, and those the proxy has cached
    doc = channeldata(svc)
    assert doc["subdirs"] == ["noarch"]
    assert summary(doc) == derived(svc, ["noarch"])
    assert doc["packages"]["acme"]["summary"] == "synthetic package acme"  # the hosted one
    assert doc["packages"]["pinned"]["run_exports"] == {"1.0": {"weak": ["pinned >=1.0"]}}
    assert "numpy" not in doc["packages"]
    records(svc, "grp", "linux-64")  # a client read linux-64 through the group
    doc = channeldata(svc)
    assert doc["subdirs"] == ["linux-64", "noarch"]
    assert summary(doc) == derived(svc, ["linux-64", "noarch"])
    assert summary(doc)["acme"] == ("99.0", ["linux-64", "noarch"])  # upstream's in linux-64
    page = channel_index(svc)
    for name in ("acme", "numpy", "pinned", "six"):
        assert f"<tr><td>{name}</td>" in page
    assert '<a href="linux-64/">' in page
    assert channel.upstream.asked("/noarch/acme") == []


def test_the_listings_hide_what_a_cooldown_holds_back(svc: Services, channel: Channel) -> None:
    channel.add("six", "1.18.0", timestamp=NOW_MS)
    channel.add("young", "1.0", timestamp=NOW_MS)
    channel.publish()
    assert "young" in channeldata(svc)["packages"]
    update_repository(
        svc.ctx, actor="t", fmt=Format.CONDA, name="grp",
        settings=RepoSettings(min_age=3 * 86400),
    )  # fmt: skip
    served = records(svc, "grp")
    assert "six-1.18.0-0.conda" not in served
    assert set(run_exports(svc)) == set(served)
    assert listed(body(svc, "grp", "index.html").decode()) == set(served)
    doc = channeldata(svc)
    assert "young" not in doc["packages"]
    assert doc["packages"]["six"]["version"] == "1.17.0"
    assert summary(doc) == derived(svc, ["noarch"])
    assert "<tr><td>young</td>" not in channel_index(svc)


def test_a_group_without_proxies_is_unchanged(svc: Services) -> None:
    doc = channeldata(svc, "main")
    assert set(doc["packages"]) == {"acme"}
    assert doc["packages"]["acme"]["version"] == "1.0"


def test_the_upstreams_run_exports_and_channeldata_are_taken_where_it_serves_them(
    svc: Services, channel: Channel
) -> None:
    documents = channel.upstream.documents
    documents["/chan/noarch/run_exports.json"] = Document(
        json.dumps(
            {
                "info": {"subdir": "noarch", "version": 1},
                "packages": {"six-1.17.0-0.tar.bz2": {"run_exports": {"weak": ["six"]}}},
                "packages.conda": {
                    "six-1.16.0-0.conda": {"run_exports": {"strong": ["six >=1.16"]}},
                    "acme-99.0-0.conda": {"run_exports": {"weak": ["squatted"]}},
                },
            }
        ).encode()
    )
    documents["/chan/channeldata.json"] = Document(
        json.dumps(
            {
                "channeldata_version": 1,
                "packages": {
                    "six": {
                        "summary": "Python 2 and 3",
                        "home": "https://six.example",
                        "binary_prefix": True,
                    },
                    "acme": {"summary": "squatted"},
                },
                "subdirs": ["noarch"],
            }
        ).encode()
    )
    exports = run_exports(svc)
    assert exports["six-1.17.0-0.tar.bz2"] == {"run_exports": {"weak": ["six"]}}
    assert exports["six-1.16.0-0.conda"] == {"run_exports": {"strong": ["six >=1.16"]}}
    assert exports["acme-1.0-0.conda"] == {"run_exports": {}}  # hosted: its own
    doc = channeldata(svc)
    six = doc["packages"]["six"]
    assert (six["summary"], six["home"], six["binary_prefix"]) == (
        "Python 2 and 3",
        "https://six.example",
        True,
    )
    assert six["run_exports"] == {"1.16.0": {"strong": ["six >=1.16"]}, "1.17.0": {"weak": ["six"]}}
    assert six["version"] == "1.17.0"  # versions from the records, as repodata lists them
    assert doc["packages"]["acme"]["summary"] == "synthetic package acme"  # the hosted one
    channeldata(svc)
    run_exports(svc)
    assert len(channel.upstream.asked("/chan/channeldata.json")) == 1  # kept for the ttl
    assert len(channel.upstream.asked("/chan/noarch/run_exports.json")) == 1
