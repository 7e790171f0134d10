"""Run every benchmark in ``bench/``, one after another, each in its own process.

    .venv/bin/python bench/run.py --rows 1000000
    make bench BENCH_ARGS="--rows 1000000"          # the same

Each script gets a fresh throw-away chDB directory of its own (chDB allows one process
per directory) and runs alone, so no two benchmarks compete for the CPU. ``--rows`` and
``--repeat`` are passed to every script that accepts them; without them each script uses
its own default. Ends with one line per script (exit code, wall time); exits non-zero if
any script failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# Run in this order; any other bench/*.py found is run after these, alphabetically.
ORDER = (
    "generate_traffic.py",
    "analytics_endpoint.py",
    "cache_hit.py",
    "traffic_endpoints.py",
)


def scripts(only: list[str] | None = None) -> list[Path]:
    found = {
        path.name: path
        for path in BENCH.glob("*.py")
        if path.name != Path(__file__).name and not path.name.startswith("_")
    }
    ordered = [found[name] for name in ORDER if name in found]
    ordered += sorted(path for name, path in found.items() if name not in ORDER)
    if only:
        wanted = {name if name.endswith(".py") else f"{name}.py" for name in only}
        unknown = wanted - set(found)
        if unknown:
            raise SystemExit(f"no such bench script: {', '.join(sorted(unknown))}")
        ordered = [path for path in ordered if path.name in wanted]
    return ordered


def accepted_options(script: Path) -> str:
    """The script's --help text (argparse parses before any setup, so this is cheap)."""
    result = subprocess.run(  # noqa: S603 - this interpreter on a script in bench/
        [sys.executable, str(script), "--help"], capture_output=True, text=True, check=False
    )
    return result.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help="rows to generate (default: each script's own)")
    parser.add_argument("--repeat", type=int, help="timed runs per measurement, where accepted")
    parser.add_argument(
        "--only", nargs="+", metavar="SCRIPT", help="run only these (e.g. analytics_endpoint)"
    )
    args = parser.parse_args()

    outcomes: list[tuple[str, int, float]] = []
    for script in scripts(args.only):
        options = accepted_options(script)
        command = [sys.executable, str(script)]
        for flag, value in (("--rows", args.rows), ("--repeat", args.repeat)):
            if value is not None and flag in options:
                command += [flag, str(value)]
        print(f"\n=== {script.name} {' '.join(command[2:])}".rstrip(), flush=True)
        started = time.perf_counter()
        # This interpreter, a script found in bench/, and integer options.
        returncode = subprocess.run(command, check=False).returncode  # noqa: S603
        outcomes.append((script.name, returncode, time.perf_counter() - started))

    print("\n=== summary")
    width = max((len(name) for name, _, _ in outcomes), default=0)
    for name, returncode, seconds in outcomes:
        status = "ok" if returncode == 0 else f"FAILED (exit {returncode})"
        print(f"  {name:<{width}}  {seconds:7.1f} s  {status}")
    return 0 if all(returncode == 0 for _, returncode, _ in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
