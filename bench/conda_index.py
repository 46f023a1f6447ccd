"""`packhouse conda index` against conda-index 0.13's `conda index` and py-rattler's `index_fs`.

    .venv/bin/python bench/conda_index.py --packages 2000 --packages 20000

Per size: one synthetic channel (half .conda, half .tar.bz2, subdirs noarch/linux-64/osx-64,
bench/conda_synth.py), copied for each tool; then a cold index, a re-run with nothing changed,
and a re-run after adding one package. Every run is the tool's whole command in a fresh
process, start-up included, asked for the same files (repodata.json with .zst, CEP 16 shards;
no channeldata, which conda-index leaves off by default). Wall time and the process tree's
peak RSS (wait4); ratios are Packhouse's over conda-index's and over rattler's.

conda-index imports conda, which is not on PyPI: it is installed into a scratch venv by
../shared/clients/install-conda.sh (or pass --conda-venv); without that folder its column
is left out, saying why.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLIENTS = HERE.parent.parent / "shared" / "clients"
sys.path.insert(0, str(HERE))

from conda_synth import make_channel, make_package  # noqa: E402

_RATTLER = """
import asyncio, os, sys
from rattler.index import index_fs
asyncio.run(index_fs(sys.argv[1], write_zst=True, write_shards=True, max_parallel={jobs}))
sys.stdout.flush()
os._exit(0)  # py-rattler can crash at interpreter exit
"""


def run(argv: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in MB of the process tree) of one command."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.stderr:
        process.stderr.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed ({process.returncode}):\n{stderr[-2000:]}")
    return elapsed, usage.ru_maxrss // 1024


def tools(jobs: int, conda_python: Path | None) -> dict[str, list[str]]:
    packhouse = Path(sys.executable).parent / "packhouse"
    found = {
        "packhouse": [
            str(packhouse), "conda", "index", "--zst", "--write-shards", "--no-channeldata",
            "--threads", str(jobs),
        ],
        "rattler": [sys.executable, "-c", _RATTLER.format(jobs=jobs)],
    }  # fmt: skip
    if conda_python is not None:
        found["conda-index"] = [
            str(conda_python), "-m", "conda_index", "--zst", "--write-shards",
            "--threads", str(jobs),
        ]  # fmt: skip
    return found


def conda_venv(given: Path | None, scratch: Path) -> tuple[Path | None, str]:
    if given is not None:
        return given / "bin" / "python", f"conda-index from {given}"
    installer = CLIENTS / "install-conda.sh"
    if not installer.is_file():
        return None, f"conda-index not run: {installer} is missing"
    venv = scratch / "conda-venv"
    subprocess.run(["bash", str(installer), str(venv)], check=True, capture_output=True)
    return venv / "bin" / "python", "conda-index 0.13.0 installed by install-conda.sh"


def bench(
    size: int, jobs: int, commands: dict[str, list[str]], tmp: Path
) -> dict[str, list[tuple[float, int]]]:
    template = tmp / f"template-{size}"
    make_channel(template, size)
    results: dict[str, list[tuple[float, int]]] = {}
    for tool, argv in commands.items():
        channel = tmp / f"{tool}-{size}"
        shutil.copytree(template, channel)
        cold = run([*argv, str(channel)])
        unchanged = run([*argv, str(channel)])
        make_package(channel / "noarch", "synth-added", "1.0", "0", subdir="noarch")
        added = run([*argv, str(channel)])
        results[tool] = [cold, unchanged, added]
        shutil.rmtree(channel)
    shutil.rmtree(template)
    return results


def table(size: int, results: dict[str, list[tuple[float, int]]]) -> list[str]:
    lines = [
        f"| {'packages':>8} | {'tool':<11} | {'cold (s)':>8} | {'no change (s)':>13}"
        f" | {'one added (s)':>13} | {'peak RSS (MB)':>13} |",
    ]
    lines.append(
        "| -------: | ----------- | -------: | ------------: | ------------: | ------------: |"
    )
    for tool, runs in results.items():
        (cold, _), (unchanged, _), (added, _) = runs
        peak = max(r[1] for r in runs)
        lines.append(
            f"| {size:>8,} | {tool:<11} | {cold:8.2f} | {unchanged:13.2f} | {added:13.2f}"
            f" | {peak:13} |"
        )
    ours = results["packhouse"]
    for other in ("conda-index", "rattler"):
        if other in results:
            theirs = results[other]
            ratios = [a[0] / b[0] for a, b in zip(ours, theirs, strict=True)]
            rss = max(r[1] for r in ours) / max(r[1] for r in theirs)
            lines.append(
                f"| {size:>8,} | {'÷ ' + other:<11} | {ratios[0]:7.2f}x | {ratios[1]:12.2f}x"
                f" | {ratios[2]:12.2f}x | {rss:12.2f}x |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--packages", type=int, action="append", help="default: 2000 and 20000")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--conda-venv", type=Path, help="a venv with conda and conda-index")
    args = parser.parse_args()
    sizes = args.packages or [2_000, 20_000]
    with tempfile.TemporaryDirectory(prefix="conda-index-bench-") as name:
        tmp = Path(name)
        conda_python, note = conda_venv(args.conda_venv, tmp)
        commands = tools(args.jobs, conda_python)
        print(f"conda index, half .conda / half .tar.bz2, 3 subdirs, {os.cpu_count()} CPUs,")
        print(f"--threads {args.jobs}; {note}; wall time with start-up, peak RSS per tool")
        print()
        lines: list[str] = []
        for size in sizes:
            results = bench(size, args.jobs, commands, tmp)
            lines += table(size, results)[0 if not lines else 2 :]
            print("\n".join(lines), flush=True)
            print()


if __name__ == "__main__":
    main()
