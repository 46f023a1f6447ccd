"""Property tests over the app in process: any Authorization header, any Accept header and
any path under the server's prefixes get an answer below 500 (a domain error mapped in
web/errors.py, or a page), never a crash. The Basic and Bearer parsers are also driven
directly through `Access.authenticate`."""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from packhouse.auth.passwords import hash_password
from packhouse.config import Settings
from packhouse.db import user_store
from packhouse.db.engine import Database
from packhouse.errors import PackhouseError
from packhouse.services.context import Context
from packhouse.services.repos import create_repository, set_permission
from packhouse.storage.memory import MemoryBlobStore
from packhouse.types import Action, Format
from packhouse.web.app import create_app
from packhouse.wiring import Services
from tests.builders import make_wheel

ALICE = ("alice", "alice-password-1")
CHECKS = settings(
    max_examples=int(os.environ.get("PH_FUZZ_FAST", 150)),  # raised for a longer hunt
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

latin1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f")
header_text = st.text(alphabet=latin1, max_size=200).map(str.strip)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, TestClient]]:
    tmp = tmp_path_factory.mktemp("props")
    (tmp / "tmp").mkdir()
    db = Database("sqlite://")
    db.upgrade()
    svc = Services.of(Context(settings=Settings(data=tmp), db=db, blobs=MemoryBlobStore()))
    with svc.ctx.db.write() as conn:
        user_store.create_user(conn, ALICE[0], hash_password(ALICE[1]), is_admin=True)
    create_repository(svc.ctx, actor="t", name="open", fmt=Format.PYPI)
    create_repository(svc.ctx, actor="t", name="forge", fmt=Format.CONDA)
    for name, fmt in (("open", Format.PYPI), ("forge", Format.CONDA)):
        set_permission(
            svc.ctx, actor="t", fmt=fmt, name=name, principal=":anonymous:", action=Action.READ
        )
    with TestClient(create_app(svc.ctx.settings, svc), raise_server_exceptions=False) as client:
        wheel = make_wheel(Path(tmp), "demo", "1.0")
        answer = client.post(
            "/pypi/open/",
            data={":action": "file_upload", "name": "demo", "version": "1.0"},
            files={"content": (wheel.name, wheel.read_bytes())},
            auth=ALICE,
        )
        assert answer.status_code == 200, answer.text
        yield svc, client
    svc.close()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


authorization = st.one_of(
    header_text,
    st.tuples(st.sampled_from(["Basic", "basic", "Bearer", "Token", ""]), header_text).map(
        " ".join
    ),
    st.tuples(st.text(max_size=20), st.text(max_size=30)).map(lambda up: basic(*up)),
    st.binary(max_size=40).map(lambda b: "Basic " + base64.b64encode(b).decode()),
    st.text(alphabet="abcdefghijkABC0123456789-_", max_size=40).map(lambda t: f"Bearer ph-{t}"),
)


@CHECKS
@given(authorization)
def test_authorization_header_parsing(app: tuple[Services, TestClient], header: str) -> None:
    svc, _ = app
    with contextlib.suppress(PackhouseError):
        svc.access.authenticate(header, None, "192.0.2.1")
    with contextlib.suppress(PackhouseError):
        svc.access.authenticate_cached(header)


@CHECKS
@given(
    authorization,
    st.sampled_from(
        ["/pypi/open/simple/demo/", "/conda/forge/noarch/repodata.json", "/api/v1/repositories"]
    ),
)
def test_any_authorization_header_gets_an_answer(
    app: tuple[Services, TestClient], header: str, path: str
) -> None:
    _, client = app
    answer = client.get(path, headers={"Authorization": header.encode("latin-1")})
    assert answer.status_code < 500, (header, answer.status_code, answer.text)


accept_values = st.one_of(
    header_text,
    st.lists(
        st.sampled_from(
            [
                "text/html",
                "application/vnd.pypi.simple.v1+json",
                "application/json",
                "application/vnd.pypi.simple.v1+html",
                "*/*",
                "text/*",
                "x/y",
                ";q=",
                "q=0.5",
            ]
        ),
        max_size=5,
    ).map(", ".join),
)


@CHECKS
@given(
    accept_values,
    st.sampled_from(
        [
            "/pypi/open/simple/",
            "/pypi/open/simple/demo/",
            "/pypi/open/pypi/demo/json",
            "/nope",
            "/api/v1/nope",
        ]
    ),
)
def test_any_accept_header_gets_an_answer(
    app: tuple[Services, TestClient], accept: str, path: str
) -> None:
    _, client = app
    answer = client.get(path, headers={"Accept": accept.encode("latin-1")})
    assert answer.status_code < 500, (accept, path, answer.status_code, answer.text)


segment = st.one_of(
    st.text(min_size=1, max_size=30).map(lambda s: quote(s, safe="")),
    st.sampled_from(
        [
            "..",
            ".",
            "%2e%2e",
            "%00",
            "%2F",
            "demo",
            "demo-1.0-py3-none-any.whl",
            "noarch",
            "repodata.json",
            "simple",
            "json",
            "a" * 300,
            "~",
            "%ff",
        ]
    ),
)
prefixes = st.sampled_from(
    [
        "/pypi/open",
        "/pypi/open/simple",
        "/pypi/open/pypi",
        "/conda/forge",
        "/conda/forge/noarch",
        "/files",
        "/files/" + "0" * 64,
        "/t/ph-x/conda/forge",
        "/api/v1",
        "/api/v1/repositories",
        "/ui",
        "/static",
        "",
    ]
)


@CHECKS
@given(prefixes, st.lists(segment, max_size=4), st.booleans(), st.sampled_from(["GET", "HEAD"]))
def test_any_path_gets_an_answer(
    app: tuple[Services, TestClient], prefix: str, parts: list[str], slash: bool, method: str
) -> None:
    _, client = app
    path = prefix + "".join("/" + p for p in parts) + ("/" if slash else "")
    answer = client.request(method, path or "/", follow_redirects=False)
    assert answer.status_code < 500, (method, path, answer.status_code, answer.text[:300])
