from __future__ import annotations

from pathlib import Path

import pytest

from packhouse.config import load_settings
from packhouse.errors import InvalidInput


def test_file_then_environment_then_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "packhouse.toml"
    config.write_text('port = 9000\nhost = "127.0.0.2"\n[s3]\nbucket = "from-file"\n')
    monkeypatch.setenv("PACKHOUSE_PORT", "9001")
    monkeypatch.setenv("PACKHOUSE_S3__PREFIX", "env/")
    settings = load_settings(config, data=tmp_path, host=None)
    assert settings.port == 9001
    assert settings.host == "127.0.0.2"
    assert settings.s3.bucket == "from-file"
    assert settings.s3.prefix == "env/"
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path.absolute() / 'packhouse.db'}"
    assert load_settings(config, port=1234).port == 1234


def test_bad_files_and_values_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        load_settings(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("port = = 1")
    with pytest.raises(InvalidInput, match="not valid TOML"):
        load_settings(broken)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('port = "eighty"\nno_such_setting = 1\n')
    with pytest.raises(InvalidInput, match="port") as info:
        load_settings(wrong)
    assert "no_such_setting" in str(info.value)


def test_ports_out_of_range_are_refused() -> None:
    with pytest.raises(InvalidInput, match="port"):
        load_settings(port=99999)
    with pytest.raises(InvalidInput, match="port"):
        load_settings(port=0)


def test_base_url_never_names_a_wildcard_address() -> None:
    assert load_settings(host="0.0.0.0", port=8080).base_url == "http://127.0.0.1:8080"  # noqa: S104
    assert load_settings(host="::", port=8080).base_url == "http://[::1]:8080"
    assert load_settings(host="::1", port=81).base_url == "http://[::1]:81"
    assert (
        load_settings(public_url="https://pkgs.example.com/", port=81).base_url
        == "https://pkgs.example.com"
    )


def test_upstream_networks_are_checked_when_settings_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PACKHOUSE_UPSTREAM_ALLOWED_NETWORKS", '["10.0.0.0/8", "fd00::/8"]')
    assert load_settings().upstream_allowed_networks == ["10.0.0.0/8", "fd00::/8"]
    monkeypatch.setenv("PACKHOUSE_UPSTREAM_ALLOWED_NETWORKS", '["10.0.0.0/33"]')
    with pytest.raises(InvalidInput, match="is not a network"):
        load_settings()
    monkeypatch.setenv("PACKHOUSE_UPSTREAM_ALLOWED_NETWORKS", "10.0.0.0/8")
    with pytest.raises(InvalidInput, match="lists in the environment are JSON"):
        load_settings()
