"""CEP 47 `indexed_timestamp`: stamped when a package enters a channel, never moved after.

Server: the upload time, in the stored record, so repodata, shards and current_repodata serve
it; an identical re-upload keeps it; patch instructions may not set it. Static index: the time
of the run that first indexed the bytes, kept by re-runs, touched files, patches and
`--no-update-cache`; other bytes under the same filename are a new artifact.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.services.test_conda_server import ADMIN, put, repo, repodata, svc, synth

from packhouse.errors import InvalidUpload
from packhouse.services.conda_index import IndexOptions, index_channel
from packhouse.services.conda_uploads import set_patch_instructions
from packhouse.wiring import Services

__all__ = ["svc"]  # the fixture, used by the tests below

NOW = datetime(2026, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)


def stamps(doc: dict[str, Any]) -> dict[str, int]:
    return {
        fn: r["indexed_timestamp"] for fn, r in {**doc["packages"], **doc["packages.conda"]}.items()
    }


def upload(svc: Services, version: str, **kwargs: Any) -> None:
    filename, data = synth.package_bytes("stamped", version, **kwargs)
    put(svc, filename, data)


def test_upload_stamps_the_upload_time_in_milliseconds(
    svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(svc.ctx, "clock", lambda: NOW)
    upload(svc, "1.0")
    expected = int(NOW.timestamp() * 1000)
    assert expected % 1000 == 123
    for kind in ("repodata.json", "current_repodata.json", "repodata_from_packages.json"):
        assert stamps(repodata(svc, "noarch", kind)) == {"stamped-1.0-0.conda": expected}, kind
    # the build timestamp is the builder's, untouched
    record = repodata(svc, "noarch")["packages.conda"]["stamped-1.0-0.conda"]
    assert record["timestamp"] == 1_700_000_000_000


def test_an_identical_re_upload_keeps_the_first_stamp(
    svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(svc.ctx, "clock", lambda: NOW)
    upload(svc, "1.0")
    monkeypatch.setattr(svc.ctx, "clock", lambda: datetime(2027, 1, 1, tzinfo=UTC))
    upload(svc, "1.0")
    assert stamps(repodata(svc, "noarch")) == {"stamped-1.0-0.conda": int(NOW.timestamp() * 1000)}


def test_patch_instructions_may_not_set_it(svc: Services) -> None:
    upload(svc, "1.0")
    bad = {
        "patch_instructions_version": 1,
        "packages.conda": {"stamped-1.0-0.conda": {"indexed_timestamp": 1}},
    }
    with pytest.raises(InvalidUpload, match=r"indexed_timestamp cannot be patched.*CEP 47"):
        set_patch_instructions(svc.ctx, repo(svc), ADMIN, "noarch", json.dumps(bad).encode())


# --- the static index ---------------------------------------------------------------------


def _static(tmp_path: Path) -> Path:
    channel = tmp_path / "channel"
    synth.make_package(channel / "noarch", "stamped", "1.0", "0")
    synth.make_package(channel / "noarch", "stamped", "2.0", "0", extension=".tar.bz2")
    return channel


def _stamps(channel: Path, name: str = "repodata.json") -> dict[str, int]:
    return stamps(json.loads((channel / "noarch" / name).read_text()))


def test_static_index_stamps_once_and_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = _static(tmp_path)
    monkeypatch.setattr("time.time", lambda: 1_800_000_000.25)
    index_channel(channel, IndexOptions(jobs=1))
    first = _stamps(channel)
    assert first == {
        "stamped-1.0-0.conda": 1_800_000_000_250,
        "stamped-2.0-0.tar.bz2": 1_800_000_000_250,
    }
    monkeypatch.setattr("time.time", lambda: 1_900_000_000.0)
    # re-run; a touched file (read again, same bytes); the cached list only; a patch that tries
    os.utime(channel / "noarch" / "stamped-1.0-0.conda")
    index_channel(channel, IndexOptions(jobs=1))
    assert _stamps(channel) == first
    index_channel(channel, IndexOptions(jobs=1, update_cache=False))
    assert _stamps(channel) == first
    patch = tmp_path / "patch_instructions.json"
    patch.write_text(
        json.dumps(
            {
                "patch_instructions_version": 1,
                "packages.conda": {"stamped-1.0-0.conda": {"indexed_timestamp": 5, "license": "X"}},
            }
        )
    )
    index_channel(channel, IndexOptions(jobs=1, patch=patch, shards=True))
    assert _stamps(channel) == first
    record = json.loads((channel / "noarch" / "repodata.json").read_text())["packages.conda"]
    assert record["stamped-1.0-0.conda"]["license"] == "X"  # the rest of the patch applies
    # a new package gets the time of its run; other bytes under a filename are a new artifact
    synth.make_package(channel / "noarch", "stamped", "3.0", "0")
    synth.make_package(
        channel / "noarch", "stamped", "2.0", "0", extension=".tar.bz2", depends=["x"]
    )
    index_channel(channel, IndexOptions(jobs=1))
    assert _stamps(channel) == {
        "stamped-1.0-0.conda": 1_800_000_000_250,
        "stamped-2.0-0.tar.bz2": 1_900_000_000_000,
        "stamped-3.0-0.conda": 1_900_000_000_000,
    }


def test_static_index_honours_an_earlier_repodata_stamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache gone (or the channel indexed by another tool): a repodata.json that already
    gives a stamp for the same bytes is kept."""
    channel = _static(tmp_path)
    monkeypatch.setattr("time.time", lambda: 1_800_000_000.0)
    index_channel(channel, IndexOptions(jobs=1))
    first = _stamps(channel)
    for cache in (channel / ".cache" / "packhouse").iterdir():
        cache.unlink()
    monkeypatch.setattr("time.time", lambda: 1_900_000_000.0)
    index_channel(channel, IndexOptions(jobs=1))
    assert _stamps(channel) == first
    assert _stamps(channel, "repodata_from_packages.json") == first
