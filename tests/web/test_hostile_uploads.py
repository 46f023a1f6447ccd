"""Every family of hostile archive, uploaded to the real server: 400 with the reason, nothing
stored, no temporary file left, and the server never answers 500. The archives come from the
format tests' tables (built there, by hand)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import load_module
from tests.conftest import ADMIN_PASSWORD, RunningServer

ROOT = Path(__file__).resolve().parents[2]
FORMATS = ROOT / "tests" / "formats"
zips = load_module("hostile_zip_tricks", FORMATS / "pypi" / "test_pypi_zip_tricks.py")
sdists = load_module("hostile_sdist_tricks", FORMATS / "pypi" / "test_pypi_sdist_tricks.py")
condas = load_module("hostile_conda_tricks", FORMATS / "conda" / "test_conda_package_tricks.py")

Case = tuple[str, Callable[[], bytes], str]


def wheel_cases() -> list[Case]:
    cases: list[Case] = []
    for table in (zips.NOT_IMPLEMENTED, zips.DISAGREE):
        for label, (members, message) in table.items():
            cases.append((label, lambda m=members: zips.build_zip(m), message))
    for label, (make, message) in zips.OUTSIDE.items():
        cases.append((label, make, message))
    cases.append(("80 x 1 MB bomb", lambda: zips.bomb(80, 1_000_000), "a ratio above 100:1"))
    cases.append(
        (
            "script ../../bin/x",
            lambda: zips.wheel_with_entry_points(b"[console_scripts]\n../../bin/x = demo:main\n"),
            "names the script '../../bin/x'",
        )
    )
    return cases


WHEELS = wheel_cases()
SDISTS = [(label, make, message) for label, (make, message) in sdists.HAZARDS.items()]
CONDA_BODIES = sorted(condas.BODIES)


def stored(server: RunningServer) -> tuple[int, list[str]]:
    root = server.data / "blobs"
    blobs = [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "tmp"]
    leftovers = [p.name for p in (server.data / "tmp").iterdir()]
    return len(blobs), leftovers


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, auth=("admin", ADMIN_PASSWORD), timeout=60) as c:
        yield c


def upload_pypi(client: httpx.Client, filename: str, data: bytes) -> httpx.Response:
    fields = {":action": "file_upload", "name": "demo", "version": "1.0"}
    return client.post("/pypi/main/", data=fields, files={"content": (filename, data)})


def check_refused(server: RunningServer, response: httpx.Response, message: str) -> None:
    assert response.status_code == 400, response.text
    assert message in response.text
    blobs, leftovers = stored(server)
    assert blobs == 0
    assert leftovers == []


@pytest.mark.parametrize("case", WHEELS, ids=[c[0] for c in WHEELS])
def test_hostile_wheel_is_refused(server: RunningServer, client: httpx.Client, case: Case) -> None:
    _, make, message = case
    check_refused(server, upload_pypi(client, zips.WHEEL, make()), message)


@pytest.mark.parametrize("case", SDISTS, ids=[c[0] for c in SDISTS])
def test_hostile_sdist_is_refused(server: RunningServer, client: httpx.Client, case: Case) -> None:
    _, make, message = case
    check_refused(server, upload_pypi(client, sdists.SDIST, make()), message)


@pytest.mark.parametrize("case", CONDA_BODIES)
@pytest.mark.parametrize("extension", [".tar.bz2", ".conda"])
def test_hostile_conda_package_is_refused(
    server: RunningServer, client: httpx.Client, extension: str, case: str
) -> None:
    body, message = condas.BODIES[case]
    data = condas.tar_bz2(body) if extension == ".tar.bz2" else condas.conda(body)
    response = client.put(f"/conda/main/noarch/{condas.STEM}{extension}", content=data)
    check_refused(server, response, message)


@pytest.mark.parametrize("case", sorted(condas.ZIP_CASES))
def test_hostile_conda_zip_is_refused(
    server: RunningServer, client: httpx.Client, case: str
) -> None:
    make, _, message = condas.ZIP_CASES[case]
    response = client.put(f"/conda/main/noarch/{condas.STEM}.conda", content=make())
    check_refused(server, response, message)


def test_nothing_was_listed_and_good_uploads_still_work(
    server: RunningServer, client: httpx.Client
) -> None:
    """Runs last in this module: the refusals left no trace, and the same builders' honest
    archives are accepted (so the refusals above are of the tricks, not of the builders)."""
    assert client.get("/pypi/main/simple/demo/").status_code == 404
    assert client.get("/conda/main/noarch/repodata.json").json()["packages.conda"] == {}
    assert upload_pypi(client, zips.WHEEL, zips.build_zip(zips.members())).status_code == 200
    legit = condas.conda(condas.LEGITIMATE)
    assert client.put(f"/conda/main/noarch/{condas.STEM}.conda", content=legit).status_code in (
        200,
        201,
    )
    # the count the refusals were checked with sees uploads: wheel, its METADATA, package
    assert stored(server)[0] == 3
    assert "unexpected error" not in server.log_text()
