"""Patch instructions: parsed in two steps, every problem collected, bad entries skipped."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from packhouse.errors import InvalidUpload
from packhouse.formats.conda.patches import (
    load_patch_instructions,
    parse_patch_instructions,
    patch_records,
    read_patches_package,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "conda"
PATCHES = DATA / "conda-index" / "archives" / "conda-forge-repodata-patches-20180828-0.tar.bz2"


def test_real_conda_forge_patches_are_valid() -> None:
    found = read_patches_package(PATCHES)
    assert "linux-64" in found
    for instructions in found.values():
        _, problems = parse_patch_instructions(instructions)
        assert problems == []


def test_every_problem_is_listed_field_by_field() -> None:
    doc = {
        "patch_instructions_version": 1,
        "packages": {"a-1-0.tar.bz2": 5, "b-1-0.tar.bz2": {"depends": "x", "build": "1"}},
        "packages.conda": {"c-1-0.conda": {"features": 1, "license": None}},
        "revoke": [None],
    }
    with pytest.raises(InvalidUpload) as refused:
        load_patch_instructions(orjson.dumps(doc))
    assert refused.value.problems == [
        "patch_instructions.json: packages['a-1-0.tar.bz2'] must be an object of field"
        " changes, not int",
        "patch_instructions.json: packages['b-1-0.tar.bz2'].depends must be a list of"
        " strings, not str",
        "patch_instructions.json: packages['b-1-0.tar.bz2'].build cannot be patched: it"
        " identifies the package file",
        "patch_instructions.json: packages.conda['c-1-0.conda'].features must be a string,"
        " a list of strings or null, not int",
        "patch_instructions.json: revoke[0] must be a conda package filename, not None",
    ]


def test_patch_records_skips_bad_entries_and_applies_good_ones() -> None:
    records = {
        "a-1-0.conda": orjson.dumps({"name": "a", "version": "1", "depends": []}),
        "b-1-0.conda": orjson.dumps({"name": "b", "version": "1", "depends": []}),
    }
    stored = {
        "packages.conda": {"a-1-0.conda": {"depends": 5}, "b-1-0.conda": {"depends": ["z"]}},
        "remove": "a-1-0.conda",
    }
    result = patch_records({}, records, stored)
    assert orjson.loads(result.packages_conda["a-1-0.conda"])["depends"] == []
    assert orjson.loads(result.packages_conda["b-1-0.conda"])["depends"] == ["z"]
    assert result.removed == []
    assert patch_records({}, records, [1]).packages_conda == records  # type: ignore[arg-type]


def test_patch_records_never_moves_indexed_timestamp() -> None:
    # CEP 47: a patch changes what a record says, not when the channel first indexed it;
    # a record without a stamp does not gain one.
    records = {
        "a-1-0.conda": orjson.dumps({"name": "a", "indexed_timestamp": 1_700_000_000_000}),
        "b-1-0.conda": orjson.dumps({"name": "b"}),
    }
    change = {"indexed_timestamp": 5, "license": "MIT"}
    stored = {
        "patch_instructions_version": 1,
        "packages.conda": {"a-1-0.conda": change, "b-1-0.conda": change},
    }
    result = patch_records({}, records, stored)
    a = orjson.loads(result.packages_conda["a-1-0.conda"])
    b = orjson.loads(result.packages_conda["b-1-0.conda"])
    assert a == {"name": "a", "indexed_timestamp": 1_700_000_000_000, "license": "MIT"}
    assert b == {"name": "b", "license": "MIT"}
