"""kill -9 the real server during PyPI and conda uploads, several rounds; after each restart
nothing acknowledged is lost and nothing is half-written (bench/crash_rounds.py holds the
rounds and their checks; it runs many more: `bench/crash_rounds.py --rounds 200`).

PACKHOUSE_CRASH_ROUNDS=50 runs more rounds here too.
"""

from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path

import httpx

from tests.builders import load_module

crash = load_module(
    "crash_rounds", Path(__file__).resolve().parents[2] / "bench" / "crash_rounds.py"
)


def test_nothing_acknowledged_is_lost_and_nothing_half_written_across_kill_9(
    tmp_path: Path,
) -> None:
    rounds = int(os.environ.get("PACKHOUSE_CRASH_ROUNDS", "5"))
    seed = random.randrange(1 << 30)
    lines: list[str] = []
    summary = crash.run_rounds(
        tmp_path / "data", rounds, seed, max_delay=0.8, big_max=3 << 20, emit=lines.append
    )
    report = f"seed {seed}\n" + "\n".join(lines)
    assert summary.rounds == rounds, report
    assert not summary.problems, report
    # the kills landed while uploads were going on, and uploads got through between them
    assert summary.resent > 0, report
    assert summary.acked > rounds, report
    assert summary.pages > 0, report


def test_the_checks_find_what_a_crash_could_leave(tmp_path: Path) -> None:
    """The round's checks are not vacuous: a lost blob, a journal row without its artifact,
    a temporary file left behind and an acknowledged upload that is not there are found."""
    server = crash.Server(tmp_path / "data")
    ledger = crash.Ledger()
    server.start()
    try:
        makers = crash.Makers(random.Random(1), 2 << 20)
        kept, lost = makers.pypi(False), makers.conda("conda-put")
        with server_client(server) as client:
            for upload in (kept, lost):
                ledger.record(upload, crash.send(client, upload))
        checker = crash.Checker(server, ledger)
        assert checker.problems() == []

        checker.blob(lost.sha256).unlink()
        (server.data / "tmp" / "incoming-left").write_bytes(b"half")
        ledger.acked["crashpkg-9.9-py3-none-any.whl"] = crash.Upload(
            "pypi-small", "crashpkg-9.9-py3-none-any.whl", b"never sent"
        )
        db = sqlite3.connect(server.data / "packhouse.db")
        with db:
            db.execute(
                "INSERT INTO journal (time, actor, action, repository, filename, detail)"
                " VALUES ('2026-01-01 00:00:00', 'x', 'upload', 'pypi/main', 'ghost.whl', '{}')"
            )
        db.close()
        checker = crash.Checker(server, ledger)  # one that has not downloaded them yet
        found = "\n".join(checker.problems())
    finally:
        server.stop()
    assert f"listed without its blob {lost.sha256}" in found
    assert "incoming-left" in found
    assert "packhouse fsck is not clean" in found
    assert "(ghost.whl) has no matching artifact" in found
    assert "crashpkg-9.9-py3-none-any.whl is not listed" in found
    assert f"acknowledged {lost.filename} does not download" in found
    assert kept.filename not in found


def server_client(server: object) -> httpx.Client:
    return httpx.Client(
        base_url=server.url,  # type: ignore[attr-defined]
        auth=("admin", crash.ADMIN_PASSWORD),
        timeout=60,
    )


def test_kill_9_of_one_worker_loses_nothing_and_its_replacement_clears_its_leftovers(
    tmp_path: Path,
) -> None:
    """`serve --workers 2`: one worker killed at random moments during uploads while the
    other goes on; granian starts a new one, and nothing acknowledged is lost."""
    seed = random.randrange(1 << 30)
    lines: list[str] = []
    summary = crash.run_rounds(
        tmp_path / "data",
        3,
        seed,
        max_delay=1.5,
        big_max=3 << 20,
        emit=lines.append,
        workers=2,
        kill="worker",
    )
    report = f"seed {seed}\n" + "\n".join(lines)
    assert summary.rounds == 3, report
    assert not summary.problems, report
    assert summary.acked > 0, report

    # what a dead worker leaves is cleared by the one started in its place, not only by
    # the next `serve`: an abandoned upload file (no process holds its lock) is gone
    server = crash.Server(tmp_path / "data", workers=2)
    server.start()
    try:
        left = tmp_path / "data" / "tmp" / "incoming-left-by-a-dead-worker"
        left.write_bytes(b"half an upload")
        killed = server.kill_worker(random.Random(seed))
        server.wait_for_workers(killed)
        assert not left.exists()
    finally:
        server.stop()
