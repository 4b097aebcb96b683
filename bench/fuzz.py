"""The fuzzer's longer run, before a release: tests/system/test_fuzz.py (Schemathesis over
every operation in openapi.yaml, against the real server) with a bigger budget.

    python bench/fuzz.py [--minutes 30] [--examples 200]

The suite's own run (bin/test) spends about two and a half minutes; this one spends
``--minutes`` and tries up to ``--examples`` cases per operation and phase. It prints the
fuzzer's summary; any server error or answer outside the spec fails it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--examples", type=int, default=200)
    args = parser.parse_args()
    env = {
        **os.environ,
        "WEIR_FUZZ_SECONDS": str(args.minutes * 60),
        "WEIR_FUZZ_EXAMPLES": str(args.examples),
    }
    command = [sys.executable, "-m", "pytest", "-q", "-s", "tests/system/test_fuzz.py"]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
