"""Authentication and authorisation rules: users, groups, tokens, limits."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from tests.builders import make_wheel
from tests.services.test_pypi_services import upload

from packhouse.auth import tokens
from packhouse.auth.passwords import HASHER
from packhouse.auth.ratelimit import FailureLimiter
from packhouse.config import Settings
from packhouse.db import journal_store, token_store, user_store
from packhouse.db.engine import Database
from packhouse.db.repository_store import Repository
from packhouse.errors import (
    AuthenticationRequired,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
)
from packhouse.services import accounts
from packhouse.services.access import ANONYMOUS, AccessService, Principal, may_manage_token
from packhouse.services.context import Context
from packhouse.services.repos import create_repository, set_permission
from packhouse.storage.memory import MemoryBlobStore
from packhouse.types import Action, Format
from packhouse.wiring import Services


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def svc(memory_services: Services) -> Services:
    s = memory_services
    accounts.create_user(s.ctx, actor="t", name="root", password="root-pw", admin=True)
    accounts.create_user(s.ctx, actor="t", name="alice", password="alice-pw", admin=False)
    accounts.create_user(s.ctx, actor="t", name="bob", password="bob-pw", admin=False)
    for name in ("a", "b"):
        create_repository(s.ctx, actor="t", name=name, fmt=Format.PYPI)
    create_repository(s.ctx, actor="t", name="a", fmt=Format.CONDA)
    create_repository(s.ctx, actor="t", name="open", fmt=Format.PYPI, public=True)
    set_permission(
        s.ctx, actor="t", fmt=Format.PYPI, name="a", principal="alice", action=Action.UPLOAD
    )
    set_permission(
        s.ctx, actor="t", fmt=Format.PYPI, name="b", principal="alice", action=Action.READ
    )
    return s


def repo(svc: Services, name: str, fmt: Format = Format.PYPI) -> Repository:
    return svc.catalog.get(fmt, name)


def token(
    svc: Services,
    owner: str = "alice",
    *,
    repositories: list[str] | None = None,
    actions: Sequence[Action] = (Action.READ,),
    expires: str | None = None,
    name: str = "",
) -> str:
    made = accounts.create_token(
        svc.ctx,
        svc.access,
        svc.catalog,
        actor="t",
        owner=owner,
        name=name,
        repositories=repositories,
        actions=actions,
        expires=expires,
    )
    return made.secret


def login(svc: Services, user: str, password: str) -> Principal:
    return svc.access.authenticate(basic(user, password))


# -- permissions ------------------------------------------------------------------------


def test_new_repositories_are_private_and_public_ones_readable_by_anyone(svc: Services) -> None:
    assert not svc.access.can(ANONYMOUS, repo(svc, "a"), Action.READ)
    assert svc.access.can(ANONYMOUS, repo(svc, "open"), Action.READ)
    assert not svc.access.can(ANONYMOUS, repo(svc, "open"), Action.UPLOAD)
    with pytest.raises(AuthenticationRequired):
        svc.access.check(ANONYMOUS, repo(svc, "a"), Action.READ)
    bob = login(svc, "bob", "bob-pw")
    with pytest.raises(PermissionDenied, match="'bob' may not read"):
        svc.access.check(bob, repo(svc, "a"), Action.READ)


def test_actions_imply_the_lesser_ones(svc: Services) -> None:
    alice = login(svc, "alice", "alice-pw")
    assert svc.access.can(alice, repo(svc, "a"), Action.READ)
    assert svc.access.can(alice, repo(svc, "a"), Action.UPLOAD)
    assert not svc.access.can(alice, repo(svc, "a"), Action.ADMIN)
    assert svc.access.can(alice, repo(svc, "b"), Action.READ)
    assert not svc.access.can(alice, repo(svc, "b"), Action.UPLOAD)
    root = login(svc, "root", "root-pw")
    assert svc.access.can(root, repo(svc, "b"), Action.ADMIN)


def test_groups_authenticated_and_special_grants(svc: Services) -> None:
    bob = login(svc, "bob", "bob-pw")
    accounts.create_group(svc.ctx, actor="t", name="devs")
    set_permission(
        svc.ctx,
        actor="t",
        fmt=Format.PYPI,
        name="b",
        principal="devs",
        action=Action.UPLOAD,
        kind="group",
    )
    assert not svc.access.can(bob, repo(svc, "b"), Action.READ)
    accounts.set_membership(svc.ctx, actor="t", group="devs", user="bob", member=True)
    bob = login(svc, "bob", "bob-pw")
    assert svc.access.can(bob, repo(svc, "b"), Action.UPLOAD)
    accounts.delete_group(svc.ctx, actor="t", name="devs")  # takes its grants along
    bob = login(svc, "bob", "bob-pw")
    assert not svc.access.can(bob, repo(svc, "b"), Action.READ)
    set_permission(
        svc.ctx,
        actor="t",
        fmt=Format.PYPI,
        name="b",
        principal=":authenticated:",
        action=Action.READ,
    )
    assert svc.access.can(bob, repo(svc, "b"), Action.READ)
    assert not svc.access.can(ANONYMOUS, repo(svc, "b"), Action.READ)
    with pytest.raises(InvalidInput, match="unknown special principal"):
        set_permission(
            svc.ctx,
            actor="t",
            fmt=Format.PYPI,
            name="b",
            principal=":everyone:",
            action=Action.READ,
            kind="special",
        )


# -- passwords --------------------------------------------------------------------------


def test_wrong_password_unknown_user_and_disabled_user_are_refused(svc: Services) -> None:
    with pytest.raises(AuthenticationRequired, match="user name or password is wrong"):
        login(svc, "alice", "nope")
    with pytest.raises(AuthenticationRequired, match="user name or password is wrong"):
        login(svc, "nobody", "nope")
    accounts.update_user(svc.ctx, actor="t", name="alice", disabled=True)
    with pytest.raises(AuthenticationRequired, match="disabled"):
        login(svc, "alice", "alice-pw")


def test_unknown_user_and_wrong_password_take_about_the_same_time(svc: Services) -> None:
    def timed(user: str) -> float:
        start = time.perf_counter()
        with pytest.raises(AuthenticationRequired):
            svc.access.login(user, "wrong-password")
        return time.perf_counter() - start

    svc.access.limiter = FailureLimiter(1000, 60)
    # interleaved, best of seven each, so a busy machine slows both alike
    rounds = [(timed("alice"), timed("nobody")) for _ in range(7)]
    known, unknown = min(k for k, _ in rounds), min(u for _, u in rounds)
    assert 0.5 < unknown / known < 2.0, (known, unknown)


def test_verified_passwords_are_remembered_until_the_password_changes(svc: Services) -> None:
    header = basic("alice", "alice-pw")
    assert svc.access.authenticate_cached(header) is None  # not verified yet
    assert svc.access.authenticate(header).name == "alice"
    cached = svc.access.authenticate_cached(header)
    assert cached is not None
    assert cached.name == "alice"
    accounts.set_password(svc.ctx, actor="t", name="alice", password="new-pw")
    assert svc.access.authenticate_cached(header) is None
    with pytest.raises(AuthenticationRequired):
        svc.access.authenticate(header)


def test_passwords_may_not_look_like_tokens(svc: Services) -> None:
    for password in ("ph_secret", "ph-secret"):
        with pytest.raises(InvalidInput, match="may not start with 'ph-' or 'ph_'"):
            accounts.set_password(svc.ctx, actor="t", name="alice", password=password)
    with pytest.raises(InvalidInput, match="longer than 4096"):
        accounts.set_password(svc.ctx, actor="t", name="alice", password="x" * 4097)


def test_failed_logins_are_limited_per_user_and_per_address(svc: Services) -> None:
    now = [0.0]
    svc.access.limiter = FailureLimiter(3, 30, lambda: now[0])
    for _ in range(3):
        with pytest.raises(AuthenticationRequired):
            svc.access.login("alice", "wrong", "10.0.0.1")
    with pytest.raises(RateLimited) as limited:
        svc.access.login("alice", "alice-pw", "10.0.0.2")  # the right password, too
    assert limited.value.retry_after == 30
    with pytest.raises(RateLimited):
        svc.access.login("bob", "bob-pw", "10.0.0.1")  # the address is limited
    assert svc.access.login("bob", "bob-pw", "10.0.0.3").name == "bob"
    now[0] = 31.0
    assert svc.access.login("alice", "alice-pw", "10.0.0.1").name == "alice"


# -- tokens -----------------------------------------------------------------------------


def test_token_credentials_in_every_form(svc: Services) -> None:
    secret = token(svc, repositories=["a"], actions=[Action.READ])
    forms = [
        svc.access.authenticate(basic("__token__", secret)),
        svc.access.authenticate(basic("anything", secret)),
        svc.access.authenticate(f"Bearer {secret}"),
        svc.access.authenticate(None, url_token=secret),
    ]
    for who in forms:
        assert who.name == "alice"
        assert who.token_id is not None
        assert who.token_repositories == frozenset({"a"})


def test_tokens_made_in_the_older_ph_underscore_form_keep_working_in_every_form(
    svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy = "ph_" + "Ab-_" * 10 + "xyz"  # the shape `ph_` + token_urlsafe(32) made
    made = tokens.NewSecret(legacy, tokens.hash_secret(legacy), legacy[:8])
    monkeypatch.setattr(tokens, "new_secret", lambda: made)
    assert token(svc, repositories=["a"]) == legacy
    monkeypatch.undo()
    for who in (
        svc.access.authenticate(basic("__token__", legacy)),
        svc.access.authenticate(basic("anything", legacy)),
        svc.access.authenticate(f"Bearer {legacy}"),
        svc.access.authenticate(None, url_token=legacy),
    ):
        assert who.name == "alice"
        assert who.token_repositories == frozenset({"a"})
    assert token(svc).startswith("ph-")  # new ones take the new form


def test_an_older_password_starting_ph_hyphen_is_still_a_password(svc: Services) -> None:
    """`ph-` passwords were allowed before the `ph-` token form: one is taken for a token only
    when it has a token's whole shape (or the user name is `__token__`)."""
    old = "ph-my-old-password"
    with svc.ctx.db.write() as conn:  # as the older set_password did (it allowed `ph-`)
        user = user_store.require_user(conn, "bob")
        journal_store.append(conn, actor="t", action="user.password", detail={"user": "bob"})
        user_store.update_user(conn, user.id, password_hash=HASHER.hash(old))
    assert login(svc, "bob", old).name == "bob"
    with pytest.raises(AuthenticationRequired, match="malformed"):
        svc.access.authenticate(basic("__token__", old))
    with pytest.raises(AuthenticationRequired, match="unknown or was revoked"):
        svc.access.authenticate(basic("bob", "ph-" + "A" * 43))


def test_read_only_token_cannot_upload_and_scope_limits_repositories(svc: Services) -> None:
    who = svc.access.authenticate(f"Bearer {token(svc, repositories=['pypi/a'])}")
    assert svc.access.can(who, repo(svc, "a"), Action.READ)
    with pytest.raises(PermissionDenied, match="this token may not upload"):
        svc.access.check(who, repo(svc, "a"), Action.UPLOAD)
    assert not svc.access.can(who, repo(svc, "b"), Action.READ)  # alice can, the token not
    uploader = svc.access.authenticate(
        f"Bearer {token(svc, repositories=['a'], actions=[Action.UPLOAD])}"
    )
    assert svc.access.can(uploader, repo(svc, "a"), Action.UPLOAD)


def test_unscoped_token_is_narrowed_by_what_the_owner_holds_at_use(svc: Services) -> None:
    who = svc.access.authenticate(f"Bearer {token(svc, actions=[Action.UPLOAD])}")
    assert svc.access.can(who, repo(svc, "a"), Action.UPLOAD)
    assert not svc.access.can(who, repo(svc, "b"), Action.UPLOAD)  # alice only reads b
    set_permission(svc.ctx, actor="t", fmt=Format.PYPI, name="a", principal="alice", action=None)
    who = svc.access.authenticate(f"Bearer {token(svc, actions=[Action.READ])}")
    assert not svc.access.can(who, repo(svc, "a"), Action.READ)


def test_a_user_can_only_grant_what_they_hold(svc: Services) -> None:
    with pytest.raises(PermissionDenied, match="does not hold upload on 'b'"):
        token(svc, repositories=["b"], actions=[Action.UPLOAD])
    with pytest.raises(PermissionDenied, match="does not hold admin on 'a'"):
        token(svc, repositories=["a"], actions=[Action.ADMIN])
    with pytest.raises(PermissionDenied, match="must name its repositories"):
        token(svc, actions=[Action.ADMIN])
    with pytest.raises(NotFound, match="there is no repository 'nope'"):
        token(svc, repositories=["nope"])
    with pytest.raises(InvalidInput, match="unknown format"):
        token(svc, repositories=["npm/a"])
    assert token(svc, owner="root", actions=[Action.ADMIN]).startswith("ph-")


def test_admin_token_scoped_to_repositories_is_not_a_global_admin(svc: Services) -> None:
    who = svc.access.authenticate(
        f"Bearer {token(svc, owner='root', repositories=['a'], actions=[Action.ADMIN])}"
    )
    assert svc.access.can(who, repo(svc, "a"), Action.ADMIN)
    assert not svc.access.can(who, repo(svc, "b"), Action.READ)
    with pytest.raises(PermissionDenied, match="scoped to every"):
        svc.access.require_admin(who)
    full = svc.access.authenticate(f"Bearer {token(svc, owner='root', actions=[Action.ADMIN])}")
    svc.access.require_admin(full)
    read_only_admin = svc.access.authenticate(f"Bearer {token(svc, owner='root')}")
    with pytest.raises(PermissionDenied):
        svc.access.require_admin(read_only_admin)


def test_expired_revoked_and_malformed_tokens_are_refused(svc: Services) -> None:
    expiring = token(svc, expires="1h", name="short")
    assert svc.access.authenticate(f"Bearer {expiring}").name == "alice"
    real_clock = svc.ctx.clock
    svc.ctx.clock = lambda: real_clock() + timedelta(hours=2)
    with pytest.raises(AuthenticationRequired, match="'short' expired at"):
        svc.access.authenticate(f"Bearer {expiring}")
    svc.ctx.clock = real_clock

    revoked = token(svc)
    token_id = accounts.list_tokens(svc.ctx, "alice")[-1].id
    accounts.revoke_token(svc.ctx, actor="t", token_id=token_id)
    with pytest.raises(AuthenticationRequired, match="unknown or was revoked"):
        svc.access.authenticate(f"Bearer {revoked}")
    for bad in ("ph_abc", revoked[:-1] + ("A" if revoked[-1] != "A" else "B"), "nonsense"):
        with pytest.raises(AuthenticationRequired):
            svc.access.authenticate(f"Bearer {bad}")
    with pytest.raises(AuthenticationRequired, match="malformed"):
        svc.access.authenticate(basic("__token__", "not-a-token"))
    assert svc.access.authenticate_cached(f"Bearer {revoked}") is None


def test_a_disabled_users_tokens_stop_at_once_and_resume_when_enabled(svc: Services) -> None:
    secret = token(svc)
    assert svc.access.authenticate(f"Bearer {secret}").name == "alice"
    accounts.update_user(svc.ctx, actor="t", name="alice", disabled=True)
    with pytest.raises(AuthenticationRequired, match="disabled"):
        svc.access.authenticate(f"Bearer {secret}")
    assert svc.access.authenticate_cached(f"Bearer {secret}") is None
    with pytest.raises(InvalidInput, match="disabled"):
        token(svc)
    accounts.update_user(svc.ctx, actor="t", name="alice", disabled=False)
    assert svc.access.authenticate(f"Bearer {secret}").name == "alice"


def test_last_used_is_written_at_most_once_a_minute(svc: Services) -> None:
    secret = token(svc)
    header = f"Bearer {secret}"
    assert svc.access.authenticate_cached(header) is None  # first use: the slow path writes
    svc.access.authenticate(header)
    (listed,) = accounts.list_tokens(svc.ctx, "alice")
    first = listed.last_used_at
    assert first is not None
    for _ in range(5):
        assert svc.access.authenticate_cached(header) is not None
        svc.access.authenticate(header)
    with svc.ctx.db.read() as conn:
        assert token_store.get(conn, listed.id).last_used_at == first


def test_the_journal_records_token_changes_without_secrets(svc: Services) -> None:
    secret = token(svc, name="ci")
    with svc.ctx.db.read() as conn:
        entries = journal_store.entries(conn, action="token.create")
    assert entries[0].detail is not None
    assert entries[0].detail["name"] == "ci"
    assert secret not in repr(entries)
    assert secret[3:] not in repr(entries)


# -- hostile input and concurrency ------------------------------------------------------


@pytest.mark.parametrize("value", ["é", "Zm9v\u00e9", "\u2603\u2603\u2603\u2603"])
def test_basic_credentials_that_are_not_ascii_are_refused_with_401(
    svc: Services, value: str
) -> None:
    with pytest.raises(AuthenticationRequired, match="not valid base64"):
        svc.access.authenticate(f"Basic {value}")
    assert svc.access.authenticate_cached(f"Basic {value}") is None


def test_remembered_logins_are_keyed_by_an_hmac_with_a_key_of_each_service(
    svc: Services,
) -> None:
    svc.access.authenticate(basic("alice", "alice-pw"))
    unsalted = hashlib.sha256(b"alice\0alice-pw").digest()
    assert svc.access._verified  # the verification was remembered
    assert unsalted not in svc.access._verified
    other = AccessService(svc.ctx)
    assert other._credential_key("alice", "alice-pw") != svc.access._credential_key(
        "alice", "alice-pw"
    )
    assert other._sent_key("Bearer x") != svc.access._sent_key("Bearer x")


@pytest.fixture
def threaded(tmp_path: Path) -> Iterator[Services]:
    """Services over an SQLite file (the in-memory database serves one thread at a time)."""
    settings = Settings(data=tmp_path)
    db = Database(settings.sqlalchemy_url)
    db.upgrade()
    s = Services.of(Context(settings=settings, db=db, blobs=MemoryBlobStore()))
    accounts.create_user(s.ctx, actor="t", name="alice", password="alice-pw", admin=False)
    accounts.create_user(s.ctx, actor="t", name="bob", password="bob-pw", admin=False)
    s.access.snapshot()
    yield s
    s.close()


def test_concurrent_wrong_passwords_cannot_all_pass_the_limit(threaded: Services) -> None:
    svc = threaded
    svc.access.limiter = FailureLimiter(3, 60)
    outcomes: list[str] = []

    def attempt(n: int) -> None:
        try:  # each a different password: verified side by side, not one after the other
            svc.access.login("alice", f"wrong-{n}", "10.0.0.9")
        except RateLimited:
            outcomes.append("limited")
        except AuthenticationRequired:
            outcomes.append("wrong")

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("wrong") == 3, outcomes
    assert outcomes.count("limited") == 9


def test_the_same_right_password_sent_at_once_is_verified_once_and_never_limited(
    threaded: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # uv downloads in parallel with the same credentials before any is remembered
    svc = threaded
    svc.access.limiter = FailureLimiter(2, 60)
    verify = svc.access.passwords.verify
    calls: list[int] = []

    def counted(stored: str | None, password: str) -> bool:
        calls.append(1)
        return verify(stored, password)

    monkeypatch.setattr(svc.access.passwords, "verify", counted)
    names: list[str] = []
    threads = [
        threading.Thread(target=lambda: names.append(svc.access.login("alice", "alice-pw").name))
        for _ in range(12)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert names == ["alice"] * 12
    assert len(calls) == 1


def test_a_successful_login_does_not_count_against_the_limit(svc: Services) -> None:
    svc.access.limiter = FailureLimiter(2, 60)
    for _ in range(3):
        svc.access.authenticate_cached(basic("alice", "alice-pw"))
        svc.access._verified.clear()  # make every login verify again
        assert svc.access.login("alice", "alice-pw", "10.0.0.8").name == "alice"
    with pytest.raises(AuthenticationRequired):
        svc.access.login("alice", "wrong", "10.0.0.8")
    assert svc.access.login("alice", "alice-pw", "10.0.0.8").name == "alice"


def test_password_verifications_run_at_most_cpu_count_at_a_time(
    threaded: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = threaded
    verifier = svc.access.passwords
    assert verifier.concurrency == (os.cpu_count() or 1)
    running, most = [0], [0]
    lock = threading.Lock()
    real = verifier._verify_unlimited

    def counting(password_hash: str | None, password: str) -> bool:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.02)
            return real(password_hash, password)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(verifier, "_verify_unlimited", counting)
    svc.access.limiter = FailureLimiter(1000, 60)

    def wrong_login(n: int) -> None:
        with pytest.raises(AuthenticationRequired):
            login(svc, "bob", f"x{n}")  # different passwords: not verified one by one

    count = 3 * verifier.concurrency + 2
    threads = [threading.Thread(target=wrong_login, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == verifier.concurrency


def test_each_service_has_its_own_dummy_hash(svc: Services) -> None:
    import packhouse.auth.passwords as passwords

    assert not hasattr(passwords, "_dummy")
    first = svc.access.passwords
    second = AccessService(svc.ctx).passwords
    assert first is not second
    assert first.dummy_hash is None  # made on first use, not when the service is built
    assert not first.verify(None, "anything")
    assert first.dummy_hash is not None
    assert second.dummy_hash is None


def test_a_child_token_expires_no_later_than_the_token_that_made_it(svc: Services) -> None:
    parent = svc.access.authenticate(f"Bearer {token(svc, expires='1h')}")
    assert parent.token_expires_at is not None
    with pytest.raises(PermissionDenied, match="must expire"):
        accounts.create_token(
            svc.ctx, svc.access, svc.catalog, actor="alice", owner="alice",
            not_after=parent.token_expires_at,
        )  # fmt: skip
    with pytest.raises(PermissionDenied, match="no later than"):
        accounts.create_token(
            svc.ctx, svc.access, svc.catalog, actor="alice", owner="alice", expires="2h",
            not_after=parent.token_expires_at,
        )  # fmt: skip
    made = accounts.create_token(
        svc.ctx, svc.access, svc.catalog, actor="alice", owner="alice", expires="30m",
        not_after=parent.token_expires_at,
    )  # fmt: skip
    assert made.token.expires_at is not None
    assert made.token.expires_at <= parent.token_expires_at


def _made(svc: Services, secret: str) -> tuple[Principal, token_store.Token]:
    who = svc.access.authenticate(f"Bearer {secret}")
    assert who.token_id is not None
    return who, accounts.get_token(svc.ctx, who.token_id)


def test_who_may_manage_which_token(svc: Services) -> None:
    reader, reader_token = _made(svc, token(svc, repositories=["a"]))
    _, unscoped = _made(svc, token(svc))
    _, on_b = _made(svc, token(svc, repositories=["pypi/b"]))
    set_permission(
        svc.ctx, actor="t", fmt=Format.PYPI, name="a", principal="alice", action=Action.ADMIN
    )
    admin_a, admin_a_token = _made(svc, token(svc, repositories=["a"], actions=[Action.ADMIN]))
    _, on_pypi_a = _made(svc, token(svc, repositories=["pypi/a"]))
    password = login(svc, "alice", "alice-pw")
    root = login(svc, "root", "root-pw")
    bob = login(svc, "bob", "bob-pw")

    assert may_manage_token(reader, reader_token)  # itself
    assert not may_manage_token(reader, unscoped)
    assert not may_manage_token(reader, admin_a_token)
    assert may_manage_token(admin_a, reader_token)  # admin over all it covers
    assert may_manage_token(admin_a, on_pypi_a)  # 'a' covers 'pypi/a'
    assert not may_manage_token(admin_a, on_b)
    assert not may_manage_token(admin_a, unscoped)  # covers every repository
    assert may_manage_token(password, unscoped)
    assert not may_manage_token(bob, unscoped)
    assert may_manage_token(root, unscoped)


def test_uploads_keep_the_access_snapshot_and_the_catalog_but_structure_changes_do_not(
    svc: Services, tmp_path: Path
) -> None:
    secret = token(svc, "alice", actions=(Action.READ,))
    header = basic("__token__", secret)
    assert svc.access.authenticate(header).name == "alice"
    snap = svc.access.snapshot()
    orders_before = svc.catalog.order(repo(svc, "a"))

    # a file changes: the serial moves, what decides access does not
    uploaded = upload(svc, "a", make_wheel(tmp_path, "kept-pkg", "1.0"))
    assert svc.access.snapshot() is snap
    assert svc.access.authenticate_cached(header) is not None  # still known, not re-resolved
    a = repo(svc, "a")
    assert a.last_serial == svc.ctx.db.watcher.current() > orders_before[0].last_serial
    assert svc.catalog.order(a)[0].last_serial == a.last_serial
    assert uploaded.created

    # a change of structure: read again, and a revoked token is refused at once
    (made,) = [t for t in svc.access.snapshot().tokens.values() if t.user_name == "alice"]
    accounts.revoke_token(svc.ctx, actor="t", token_id=made.id)
    assert svc.access.snapshot() is not snap
    assert svc.access.authenticate_cached(header) is None
    with pytest.raises(AuthenticationRequired):
        svc.access.authenticate(header)
