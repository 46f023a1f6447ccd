from __future__ import annotations

from packhouse.services.pages import ENTRY_OVERHEAD, Page, PageCache, entry_size


def test_fresh_only_at_the_serial_it_was_checked() -> None:
    cache = PageCache()
    renders: list[int] = []

    def render() -> Page:
        renders.append(1)
        return Page.of(b"body", "text/html", 7)

    page = cache.get("k", 10, lambda: ("stamp",), render)
    assert cache.fresh("k", 10) is page
    assert cache.fresh("k", 11) is None
    # The serial moved but the stamp did not: no new rendering.
    assert cache.get("k", 11, lambda: ("stamp",), render) is page
    assert cache.fresh("k", 11) is page
    assert len(renders) == 1
    # The stamp moved: rendered again.
    assert cache.get("k", 12, lambda: ("other",), render) is not page
    assert len(renders) == 2


def test_etag_is_strong_and_follows_the_body() -> None:
    a = Page.of(b"one", "text/html", 1)
    b = Page.of(b"two", "text/html", 1)
    assert a.etag.startswith('"')
    assert a.etag != b.etag
    assert Page.of(b"one", "application/json", 2).etag == a.etag


def test_evicts_least_recently_used_by_bytes() -> None:
    page = Page.of(b"xxxx", "text/html", 1)
    cache = PageCache(max_bytes=2 * entry_size("a", page) + 10)
    for key in ("a", "b", "c"):
        cache.get(key, 1, lambda: (), lambda: page)
    assert cache.fresh("a", 1) is None
    assert cache.fresh("b", 1) is not None
    assert cache.fresh("c", 1) is not None


def test_many_tiny_pages_count_their_overhead_against_the_budget() -> None:
    cache = PageCache(max_bytes=64 * 1024)
    for n in range(10_000):
        cache.get(("conda", 1, f"a-{n}", "x"), 1, lambda: (), lambda: Page.of(b"{}", "j", 1))
    kept = sum(cache.fresh(("conda", 1, f"a-{n}", "x"), 1) is not None for n in range(10_000))
    assert 0 < kept <= 64 * 1024 // ENTRY_OVERHEAD
