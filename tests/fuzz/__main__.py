"""``python -m tests.fuzz``: fuzz a real central and edge for as many requests as you ask.

Theory of operation: starts a real central and edge in a temporary folder
(:mod:`tests.fuzz.nodes`), then runs the fuzzer (:mod:`tests.fuzz.engine`) in chunks of
``--check-every`` examples with seeds ``--seed``, ``--seed + 1``, …, checking
the servers, their logs and the canary namespace after each chunk. Prints
progress, then the requests tried by method and by status; exits 1 at the
first failure, printing it with the seed that found it.

Run from the checkout: ``.venv/bin/python -m tests.fuzz --requests 1000000``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz.engine import Fuzzer, Report
from tests.fuzz.nodes import fuzzer_of_real_nodes


def print_report(report: Report, started: float) -> None:
    took_s = time.monotonic() - started
    print(f"\n{report.requests} requests in {took_s:.0f} s ({report.requests / took_s:.0f}/s)")
    print("by status: " + ", ".join(f"{k} {v}" for k, v in report.by_status.most_common()))
    print("by kind: " + ", ".join(f"{k} {v}" for k, v in report.by_kind.most_common()))
    for path, count in sorted(report.by_method.items()):
        print(f"  {path:<40} {count}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--requests", type=int, default=100_000, help="about this many requests")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--check-every", type=int, default=5000, metavar="N")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="edgekv-fuzz-") as folder,
        fuzzer_of_real_nodes(Path(folder)) as fuzzer,
    ):
        return fuzz(fuzzer, args.requests, args.seed, args.check_every)


def fuzz(fuzzer: Fuzzer, requests: int, first_seed: int, check_every: int) -> int:
    started = time.monotonic()

    def progress(report: Report) -> None:
        rate = report.requests / max(1e-9, time.monotonic() - started)
        print(f"\r{report.requests:>9} requests  {rate:6.0f}/s", end="", file=sys.stderr)

    try:
        asyncio.run(fuzzer.prepare())
        chunk_seed = first_seed
        while fuzzer.report.requests < requests:
            try:
                fuzzer.run(check_every, chunk_seed, progress)
            finally:
                asyncio.run(fuzzer.verify())
            chunk_seed += 1
    except AssertionError:
        print_report(fuzzer.report, started)
        failures = fuzzer.report.failures
        print(f"\nFAILED with seed {chunk_seed}: {failures[0]}", file=sys.stderr)
        shrunk = failures[-1]
        if len(failures) > 1 and str(shrunk) != str(failures[0]):
            print(f"the smallest request hypothesis found that fails: {shrunk}", file=sys.stderr)
        return 1
    finally:
        fuzzer.close()
    print_report(fuzzer.report, started)
    print("no failure: nothing answered UNKNOWN or INTERNAL, central and edge agreed, "
          "both stayed up with clean logs, the canary is unchanged")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
