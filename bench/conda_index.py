"""Benchmark `packhouse conda index` against py-rattler's `rattler.index.index_fs`.

    .venv/bin/python bench/conda_index.py --packages 20000

Makes one synthetic channel (half .conda, half .tar.bz2, three subdirs), copies it for each
tool, and times: a cold index, a re-run with no change, and a re-run after adding one
package. Each timing runs in a fresh subprocess and measures only the indexing call.
conda-index is not run: it imports `conda`, which is not on PyPI (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from conda_synth import make_channel, make_package  # noqa: E402

_PACKHOUSE = """
import sys, time
from pathlib import Path
from packhouse.services.conda_index import IndexOptions, index_channel
start = time.perf_counter()
index_channel(Path(sys.argv[1]), IndexOptions(jobs={jobs}))
print(time.perf_counter() - start)
"""

_RATTLER = """
import asyncio, os, sys, time
from rattler.index import index_fs
start = time.perf_counter()
asyncio.run(index_fs(sys.argv[1], write_zst=True, write_shards=True))
print(time.perf_counter() - start, flush=True)
sys.stdout.flush()
os._exit(0)  # py-rattler 0.28 can crash at interpreter exit
"""


def _time(script: str, channel: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-c", script, str(channel)], check=True, capture_output=True, text=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--packages", type=int, default=20_000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    tools = {"packhouse": _PACKHOUSE.format(jobs=args.jobs), "rattler": _RATTLER}
    with tempfile.TemporaryDirectory(prefix="conda-index-bench-") as tmp:
        template = Path(tmp) / "template"
        make_channel(template, args.packages)
        results: dict[str, list[float]] = {}
        for tool, script in tools.items():
            channel = Path(tmp) / tool
            shutil.copytree(template, channel)
            cold = _time(script, channel)
            noop = _time(script, channel)
            make_package(channel / "noarch", "synth-added", "1.0", "0", subdir="noarch")
            added = _time(script, channel)
            results[tool] = [cold, noop, added]
    base = results["rattler"]
    print(
        f"conda index, {args.packages} packages (half .conda, half .tar.bz2, 3 subdirs),"
        f" {os.cpu_count()} CPUs"
    )
    print(f"| {'tool':<10} | {'cold (s)':>9} | {'no change (s)':>13} | {'one added (s)':>13} |")
    print(f"| {'-' * 10} | {'-' * 9}: | {'-' * 13}: | {'-' * 13}: |")
    for tool, (cold, noop, added) in results.items():
        print(f"| {tool:<10} | {cold:9.2f} | {noop:13.2f} | {added:13.2f} |")
    ratios = [a / b for a, b in zip(results["packhouse"], base, strict=True)]
    print(f"| {'ratio':<10} | {ratios[0]:8.2f}x | {ratios[1]:12.2f}x | {ratios[2]:12.2f}x |")


if __name__ == "__main__":
    main()
