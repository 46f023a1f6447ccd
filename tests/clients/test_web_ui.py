"""The web UI in a real browser: Playwright driving Debian's Chromium (headless) against the
real server process. Signs in, makes a token and installs with it through pip, finds a
project by search, reads its rendered description (a `<script>` in it neutralised), filters
a repository as one types, checks a private repository stays hidden from a user without
rights, signs out; and writes screenshots of the main pages, light and dark, to
docs/screenshots/ (shown in the README)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.builders import make_wheel, metadata_text, synth
from tests.conftest import CLIENT_ENV, RunningServer, start_server, stop_server

pytestmark = pytest.mark.clients

CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:
    pytest.skip(
        "Chromium is not installed (apt-get install chromium): the browser tests need it",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
BOB = ("bob", "bob-Pa55word-for-tests")
DESCRIPTION = """# Acme widgets

Widgets for **every** occasion, with a table:

| size | price |
| ---- | ----- |
| S    | 1     |

```python
import acme_widgets
acme_widgets.frob()
```

<script>window.__owned = 1</script>
<img src="x" onerror="window.__owned = 2">
"""


def wheel_with(directory: Path, name: str, version: str, summary: str, description: str) -> Path:
    text = metadata_text(
        name,
        version,
        summary=summary,
        requires_python=">=3.9",
        requires=["idna>=3"],
        extra_headers={
            "Description-Content-Type": "text/markdown",
            "License-Expression": "Apache-2.0",
            "Project-URL": "Source, https://example.invalid/acme",
        },
    )
    return make_wheel(
        directory, name, version, metadata=text.removesuffix("Long description.\n") + description
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data = tmp_path_factory.mktemp("webui") / "data"
    server = start_server(data)
    files = tmp_path_factory.mktemp("webui-files")
    with server.client() as admin:
        assert admin.post("/api/v1/users", json={"name": BOB[0], "password": BOB[1]}).is_success
        made = admin.post(
            "/api/v1/repositories",
            json={"name": "public", "public": True, "description": "Open source we publish"},
        )
        assert made.is_success, made.text
        uploads = [
            ("main", wheel_with(files, "acme-widgets", "1.0.0", "Widgets", DESCRIPTION)),
            ("main", wheel_with(files, "acme-widgets", "1.2.0", "Widgets, frobbed", DESCRIPTION)),
            ("main", wheel_with(files, "acme-billing", "0.4.1", "Invoices", "Billing.\n")),
            ("public", wheel_with(files, "open-gadget", "2.0", "A gadget", "Gadget.\n")),
        ]
        # a private repository for the ranking test: exact name, prefix, a word of the name,
        # a word of the summary (uploaded in the reverse order, so no insertion order helps)
        made = admin.post("/api/v1/repositories", json={"name": "ranked"})
        assert made.is_success, made.text
        for name, summary in [
            ("gizmo-maker", "Builds every widget you need"),
            ("acme-widget-kit", "Kits"),
            ("widget-pro", "The professional one"),
            ("widget", "The plain one"),
        ]:
            uploads.append(("ranked", wheel_with(files, name, "1.0", summary, "Ranked.\n")))
        for repo, path in uploads:
            name, version = path.name.split("-")[:2]
            response = admin.post(
                f"/pypi/{repo}/",
                data={":action": "file_upload", "name": name, "version": version},
                files={"content": (path.name, path.read_bytes())},
            )
            assert response.status_code == 200, response.text
        for version in ("1.0", "1.1"):
            filename, body = synth.package_bytes(
                "acme-tools", version, "py_0", depends=["python >=3.9", "numpy"]
            )
            put = admin.put(f"/conda/main/noarch/{filename}", content=body)
            assert put.is_success, put.text
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def new_page(browser: Any, scheme: str = "light", **options: Any) -> Any:
    context = browser.new_context(color_scheme=scheme, **options)
    page = context.new_page()
    page.csp_errors = []  # what Chromium refused under the pages' Content-Security-Policy
    page.on(
        "console",
        lambda m: page.csp_errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return page


def sign_in(page: Any, site: RunningServer, user: str, password: str) -> None:
    page.goto(site.url + "/")
    page.get_by_role("link", name="Sign in").click()
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(site.url + "/")
    assert page.locator(".who").inner_text() == user


def test_sign_in_make_a_token_and_install_with_pip(
    site: RunningServer, browser: Any, tmp_path: Path
) -> None:
    page = new_page(browser)
    sign_in(page, site, "admin", site.admin_password)
    page.get_by_role("link", name="Tokens").click()
    page.get_by_label("Name").fill("ci-read")
    page.get_by_label("only these:").check()
    page.get_by_label("pypi/main").check()
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#new-token").inner_text()
    assert re.fullmatch(r"ph-[A-Za-z0-9]{43}", secret)
    page.reload()  # shown once: not on the page again
    assert secret not in page.content()
    assert "ci-read" in page.content()
    index = f"http://__token__:{secret}@{site.host}/pypi/main/simple/"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--index-url", index,
         "-d", str(tmp_path), "acme-widgets"],
        capture_output=True, text=True, env={**os.environ, **CLIENT_ENV}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "acme_widgets-1.2.0-py3-none-any.whl").exists()
    assert page.csp_errors == []
    page.context.close()


def test_search_and_read_a_description_with_its_script_neutralised(
    site: RunningServer, browser: Any
) -> None:
    page = new_page(browser)
    sign_in(page, site, "admin", site.admin_password)
    search = page.get_by_role("searchbox", name="Search projects and packages")
    search.fill("frobbed")  # a word of the summary only
    search.press("Enter")
    page.get_by_role("link", name="acme-widgets").click()
    page.wait_for_url(re.compile(r".*/ui/pypi/main/acme-widgets/$"))
    readme = page.locator(".readme")
    assert readme.locator("h1").inner_text() == "Acme widgets"
    assert readme.locator("table td").first.inner_text() == "S"
    assert readme.locator("strong").inner_text() == "every"
    assert readme.locator("script").count() == 0
    assert readme.locator("[onerror]").count() == 0
    assert page.evaluate("window.__owned") is None
    assert page.locator("h1 .version").inner_text() == "1.2.0"
    install = page.locator(".copy pre").first.inner_text()
    assert install == f"pip install --index-url {site.url}/pypi/main/simple/ acme-widgets"
    assert page.locator(".copy-button").first.is_visible()  # the script ran (no inline JS)
    assert page.get_by_role("link", name="1.0.0").is_visible()
    assert page.csp_errors == []
    page.context.close()


def test_filter_a_repository_as_one_types(site: RunningServer, browser: Any) -> None:
    page = new_page(browser)
    sign_in(page, site, "admin", site.admin_password)
    page.goto(site.url + "/ui/pypi/main/")
    rows = page.locator("#names tbody tr")
    assert rows.count() == 2
    page.get_by_label("Filter names").press_sequentially("bill")
    sync_api.expect(rows).to_have_count(1)  # replaced by the script, no submit
    assert "acme-billing" in rows.first.inner_text()
    assert page.url.endswith("?q=bill")
    page.context.close()


def test_search_ranks_as_one_types(site: RunningServer, browser: Any) -> None:
    page = new_page(browser)
    sign_in(page, site, "admin", site.admin_password)
    page.goto(site.url + "/ui/search?q=gizmo")
    titles = page.locator("#results .title")
    sync_api.expect(titles).to_have_count(1)
    box = page.get_by_role("searchbox", name="Search projects and packages")
    box.fill("")
    box.press_sequentially("widget")  # no Enter: the results follow the typing
    sync_api.expect(titles.first).to_have_text("widget")
    sync_api.expect(page).to_have_url(re.compile(r".*/ui/search\?q=widget$"))
    shown = [t.strip() for t in titles.all_inner_texts()]
    # the exact name, the name that starts so, the names with the word (acme-widgets from
    # pypi/main too), then the one whose summary alone says it
    assert shown[:2] == ["widget", "widget-pro"]
    assert sorted(shown[2:4]) == ["acme-widget-kit", "acme-widgets"]
    assert shown[4:] == ["gizmo-maker"]
    box.press_sequentially(" pro")
    sync_api.expect(titles).to_have_count(1)
    sync_api.expect(titles.first).to_have_text("widget-pro")
    assert page.csp_errors == []
    page.context.close()


def test_an_administrator_sets_a_proxy_up_in_the_form(site: RunningServer, browser: Any) -> None:
    page = new_page(browser)
    sign_in(page, site, "admin", site.admin_password)
    page.goto(site.url + "/ui/admin/repositories")
    page.get_by_label("Name", exact=True).fill("mirror")
    page.get_by_label("Upstream URL (a proxy; leave empty for hosted)").fill(
        "https://pypi.example.invalid/simple/"
    )
    page.get_by_role("button", name="Create repository").click()
    page.wait_for_url(re.compile(r".*/ui/admin/repositories/pypi/mirror$"))
    secret = "upstream-Secret-for-the-browser"
    page.get_by_label("Upstream user").fill("reader")
    page.get_by_label(re.compile("Upstream password or token")).fill(secret)
    page.get_by_label(re.compile("Trust fetched index pages for")).fill("10m")
    page.get_by_label(re.compile("offline: serve only what is cached")).check()
    page.get_by_label(re.compile("Leave out upstream files newer than")).fill("2026-06-30")
    page.get_by_role("button", name="Save").click()
    sync_api.expect(page.locator("main dl")).to_contain_text("set (user reader)")
    facts = page.locator("main dl").inner_text()
    assert "600 s" in facts
    assert "only what is cached is served" in facts
    assert "2026-07-01T00:00:00+00:00" in facts
    assert secret not in page.content()
    assert page.get_by_label(re.compile("Upstream password or token")).input_value() == ""
    # bad input: the page says what is wrong (a 400, not a 500)
    page.get_by_label(re.compile("Trust fetched index pages for")).fill("soon")
    with page.expect_response(re.compile(r".*/ui/admin/repositories/pypi/mirror$")) as sent:
        page.get_by_role("button", name="Save").click()
    assert sent.value.status == 400
    assert "cannot read the duration" in page.locator("main .error").inner_text()
    assert secret not in page.content()
    assert page.csp_errors == []
    page.context.close()


def test_a_private_repository_is_hidden_from_a_user_without_rights(
    site: RunningServer, browser: Any
) -> None:
    page = new_page(browser)
    page.goto(site.url + "/")
    assert "pypi/public" in page.content()
    assert "pypi/main" not in page.content()
    sign_in(page, site, *BOB)
    assert "pypi/public" in page.content()
    assert "pypi/main" not in page.content()
    assert "acme" not in page.content()
    page.goto(site.url + "/ui/search?q=acme")
    assert "Nothing you may read matches" in page.content()
    response = page.goto(site.url + "/ui/pypi/main/acme-widgets/")
    assert response.status == 403
    assert "may not read" in page.locator("main").inner_text()
    page.context.close()


def test_sign_out_ends_the_session(site: RunningServer, browser: Any) -> None:
    page = new_page(browser)
    sign_in(page, site, *BOB)
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["ph_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Lax"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(site.url + "/")
    assert page.get_by_role("link", name="Sign in").is_visible()
    assert "ph_session" not in {c["name"] for c in page.context.cookies()}
    # the old cookie, replayed, is worth nothing now
    replay = httpx.get(
        site.url + "/ui/tokens", cookies={"ph_session": session["value"]}, follow_redirects=False
    )
    assert replay.status_code == 303
    page.context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots_of_the_main_pages(site: RunningServer, browser: Any, scheme: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = new_page(browser, scheme, viewport={"width": 1280, "height": 860})
    sign_in(page, site, "admin", site.admin_password)
    shots = {
        "home": "/",
        "repository": "/ui/pypi/main/",
        "project": "/ui/pypi/main/acme-widgets/",
        "conda-package": "/ui/conda/main/acme-tools/",
        "search": "/ui/search?q=acme",
        "admin-journal": "/ui/admin/journal",
    }
    for name, path in shots.items():
        response = page.goto(site.url + path)
        assert response.status == 200, path
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert (background == "rgb(255, 255, 255)") == (scheme == "light"), background
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{scheme}.png"))
    phone = new_page(browser, scheme, viewport={"width": 390, "height": 844}, is_mobile=True)
    sign_in(phone, site, "admin", site.admin_password)
    phone.goto(site.url + "/ui/pypi/main/acme-widgets/")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the project page scrolls sideways on a phone ({width} px)"
    phone.screenshot(path=str(SCREENSHOTS / f"project-phone-{scheme}.png"))
    assert page.csp_errors == []
    assert phone.csp_errors == []
    page.context.close()
    phone.context.close()
