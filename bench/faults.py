"""The audit's fault plan (shared/research/reliability-s2.md, rows 1-19), as far as this machine allows.

    python3 bench/faults.py                  # every row, each with its default number of runs
    python3 bench/faults.py --only ssh-cut   # rows whose name contains this (repeatable)
    python3 bench/faults.py --runs 3         # override the runs of every selected row
    python3 bench/faults.py --cheap          # only the rows cheap enough for the test suite
    python3 bench/faults.py --json out.json  # also write the results

Every ``bench/faults_*.py`` module is imported; each defines ``ROWS``: objects with ``name``,
``area`` and ``async def run(runs: int) -> dict`` returning the keys fault, runs, lost, duplicated,
recovery_s, passed (bool), detail. (``faultlib.Row`` adds ``default_runs`` and ``cheap``.) A row
that cannot run here says so (``skipped``) and counts as not passed. One table is printed:
fault, runs, lost, duplicated, recovery time, pass/fail. Exit code 0 only if every row that ran passed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def load_rows() -> list:
    rows = []
    for path in sorted(HERE.glob("faults_*.py")):
        module = importlib.import_module(path.stem)
        for row in getattr(module, "ROWS", []):
            rows.append(row)
    return rows


def _fmt(value, width: int) -> str:
    if value is None:
        text = "-"
    elif isinstance(value, float):
        text = f"{value:.2f}"
    else:
        text = str(value)
    return text[:width].ljust(width)


def print_table(results: list[dict]) -> None:
    cols = [("row", 18), ("area", 7), ("fault", 44), ("runs", 5), ("lost", 6), ("dup", 6), ("recovery_s", 10),
            ("result", 6)]
    print("  ".join(name.ljust(w) for name, w in cols))
    print("  ".join("-" * w for _, w in cols))
    for r in results:
        verdict = "skip" if r.get("skipped") else ("PASS" if r["passed"] else "FAIL")
        cells = [r["name"], r["area"], r["fault"], r["runs"], r["lost"], r["duplicated"], r["recovery_s"], verdict]
        print("  ".join(_fmt(v, w) for v, (_, w) in zip(cells, cols)))
    print()
    for r in results:
        if r.get("detail"):
            print(f"{r['name']}: {r['detail']}")


async def run_rows(rows: list, runs: int | None) -> list[dict]:
    results = []
    for row in rows:
        n = runs if runs is not None else getattr(row, "default_runs", 1)
        started = time.monotonic()
        print(f"[faults] {row.name} ({n} run{'s' if n != 1 else ''}) ...", file=sys.stderr, flush=True)
        try:
            result = await row.run(n)
        except Exception as err:  # noqa: BLE001 - a crashed row is a failed row, with its traceback
            result = {"fault": row.name, "runs": n, "lost": None, "duplicated": None, "recovery_s": None,
                      "passed": False, "detail": f"crashed: {err!r}\n{traceback.format_exc(limit=6)}"}
        result = {"name": row.name, "area": row.area, **result, "elapsed_s": round(time.monotonic() - started, 1)}
        print(f"[faults] {row.name}: {'skipped' if result.get('skipped') else 'pass' if result['passed'] else 'FAIL'}"
              f" in {result['elapsed_s']} s", file=sys.stderr, flush=True)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="rows whose name contains NAME")
    parser.add_argument("--runs", type=int, default=None, metavar="N", help="runs per row (default: each row's own)")
    parser.add_argument("--cheap", action="store_true", help="only the rows the test suite runs too")
    parser.add_argument("--list", action="store_true", help="list the rows and exit")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONPATH", str(HERE.parent))
    rows = load_rows()
    if args.list:
        for row in rows:
            print(f"{row.name:20} {row.area:7} runs={getattr(row, 'default_runs', 1):<3} "
                  f"{'cheap' if getattr(row, 'cheap', False) else ''}")
        return 0
    if args.only:
        rows = [r for r in rows if any(o in r.name for o in args.only)]
    if args.cheap:
        rows = [r for r in rows if getattr(r, "cheap", False)]
    if not rows:
        print("no rows selected", file=sys.stderr)
        return 2
    results = asyncio.run(run_rows(rows, args.runs))
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    ran = [r for r in results if not r.get("skipped")]
    return 0 if ran and all(r["passed"] for r in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
