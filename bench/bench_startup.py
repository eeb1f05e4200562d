"""Start-up time of the command line: `r1console --help`, `--version`, `status --help`.

Each row runs a fresh interpreter N times (rows interleaved, so a changing machine load hits
them alike) and reports min and median wall time. Rows:
  python -c pass        the interpreter alone: the floor no command line can go under;
  r1console ...         the lazy command line (only the command being run is imported);
  eager ...             the same --help with every command module imported (what cli.py did
                        before), for the ratio.
Bytecode: by default compiled once into a temporary PYTHONPYCACHEPREFIX (what an installed
r1console has); --no-bytecode measures with PYTHONDONTWRITEBYTECODE=1 (a fresh editable checkout
on a machine that sets it).

Run: python bench/bench_startup.py [-n 15] [--no-bytecode]           (about 20 s)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EAGER = "from r1console.cli import ALL, build_parser; build_parser(ALL).parse_args(['--help'])"
ROWS = [
    ("python -c pass", ["-c", "pass"]),
    ("r1console --help", ["-m", "r1console", "--help"]),
    ("r1console --version", ["-m", "r1console", "--version"]),
    ("r1console status --help", ["-m", "r1console", "status", "--help"]),
    ("eager --help (all commands imported)", ["-c", EAGER]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=15, help="runs per row (15)")
    parser.add_argument("--no-bytecode", action="store_true", help="PYTHONDONTWRITEBYTECODE=1, no .pyc")
    args = parser.parse_args()

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cache = tempfile.TemporaryDirectory(prefix="r1c-pycache-")
    if args.no_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = cache.name
    times: dict[str, list[float]] = {label: [] for label, _ in ROWS}
    for _, argv in ROWS:  # warm-up: writes the bytecode, fills the OS cache
        subprocess.run([sys.executable, *argv], env=env, capture_output=True, check=True)
    for _ in range(args.n):
        for label, argv in ROWS:
            start = time.perf_counter()
            subprocess.run([sys.executable, *argv], env=env, capture_output=True, check=True)
            times[label].append(time.perf_counter() - start)
    cache.cleanup()

    load = os.getloadavg()[0]
    mode = "no bytecode (PYTHONDONTWRITEBYTECODE=1)" if args.no_bytecode else "cached bytecode"
    print(f"start-up, {args.n} runs per row, {mode}, load average {load:.2f}, {sys.executable}")
    floor = statistics.median(times["python -c pass"])
    eager = statistics.median(times[ROWS[-1][0]])
    print(f"| {'command':<38} | {'min ms':>7} | {'median ms':>9} | {'minus python':>12} | {'vs eager':>8} |")
    print(f"|{'-' * 40}|{'-' * 9}|{'-' * 11}|{'-' * 14}|{'-' * 10}|")
    for label, _ in ROWS:
        med = statistics.median(times[label])
        print(f"| {label:<38} | {min(times[label]) * 1e3:>7.1f} | {med * 1e3:>9.1f} | "
              f"{(med - floor) * 1e3:>12.1f} | {med / eager:>7.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
