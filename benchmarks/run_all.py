"""Run every ``benchmarks/bench_*.py`` in turn and print their tables (``make bench``).

Each benchmark runs in its own interpreter (the one running this script), so
one benchmark's heap and caches do not colour the next one's figures.
Arguments after ``--`` are passed to every benchmark.  Exits non-zero if any
benchmark failed.

Run: ``.venv/bin/python benchmarks/run_all.py [NAME_SUBSTRING ...] [-- ARGS]``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent


def main(argv: Optional[list[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    passed: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, passed = args[:cut], args[cut + 1 :]
    scripts = sorted(HERE.glob("bench_*.py"))
    if args:
        scripts = [s for s in scripts if any(word in s.name for word in args)]
    if not scripts:
        print("no benchmarks matched", file=sys.stderr)
        return 2

    print(f"mxfd benchmarks: python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    if hasattr(os, "getloadavg"):
        print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    failed: list[str] = []
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH")]))
    for script in scripts:
        print()
        print(f"=== {script.name} " + "=" * max(0, 60 - len(script.name)))
        sys.stdout.flush()
        t0 = time.perf_counter()
        result = subprocess.run([sys.executable, str(script), *passed], env=env, check=False)
        if result.returncode:
            failed.append(script.name)
            print(f"!!! {script.name} exited with status {result.returncode}")
        else:
            print(f"({script.name}: {time.perf_counter() - t0:.1f} s)")
    print()
    if failed:
        print("failed: " + ", ".join(failed))
        return 1
    print(f"all {len(scripts)} benchmarks ran")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
