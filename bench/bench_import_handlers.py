"""Cold import of each Lambda handler vs a bare ``import boto3``, in fresh interpreters, with the ratios measured
at c9917f9 (before issue 13) beside them.

Target: each handler's import at most 1.3x boto3's. Also printed, for honesty: the finding handler's cold path
up to the first record (its import plus what it loads lazily when the first batch arrives: boto3, the config
and finding models, the store, Slack's WebClient, Powertools' batch utilities), since Lambda pays that in the
same cold start, just inside the first invocation. Timings only print; nothing asserts on them.

Run: ``.venv/bin/python bench/bench_import_handlers.py [runs]`` (default 9 runs, median).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.3
BOTO3 = "import boto3"
FIRST_RECORD = "finding handler + first-batch imports"

# Each snippet times its own imports with perf_counter, so interpreter start-up is excluded.
TIMED = "import time; t = time.perf_counter(); {imports}; print(time.perf_counter() - t)"
CASES = {
    BOTO3: "import boto3",
    "handlers.intake (finding)": "import macie_chatops.handlers.intake",
    "handlers.interaction": "import macie_chatops.handlers.interaction",
    "handlers.remediation (remediator)": "import macie_chatops.handlers.remediation",
    "handlers.sweeper": "import macie_chatops.handlers.sweeper",
    FIRST_RECORD: (
        "import macie_chatops.handlers.intake; import boto3; import macie_chatops.intake; "
        "import macie_chatops.slack_client; import macie_chatops.slack_secrets; "
        "import aws_lambda_powertools.utilities.batch"
    ),
}
# Ratios to import boto3 at c9917f9 on the development machine (median of 7), when the modules were
# handlers.finding, handlers.interaction, handlers.remediator and handlers.sweeper.
BEFORE = {
    BOTO3: 1.00,
    "handlers.intake (finding)": 0.31,
    "handlers.interaction": 1.08,
    "handlers.remediation (remediator)": 0.30,
    "handlers.sweeper": 0.28,
    FIRST_RECORD: 2.89,
}


def measure_once(imports: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", TIMED.format(imports=imports)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.strip().splitlines()[-1])


def measure(cases: Mapping[str, str], runs: int) -> dict[str, float]:
    """Median per case (name -> import statements, each timed in a fresh interpreter); the cases take turns in
    every round, so a noisy moment hits them all alike. bench_interaction.py measures its handler with it too."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, imports in cases.items():
            samples[name].append(measure_once(imports))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    medians = measure(CASES, runs)
    baseline = medians[BOTO3]
    print(f"cold import, median of {runs} fresh interpreters (ratio to import boto3; target <= {TARGET_RATIO}x)")
    print(f"  {'':<40} {'now':>11}   {'ratio':>6}   {'before':>6}")
    for name, seconds in medians.items():
        print(f"  {name:<40} {seconds * 1000:8.1f} ms   {seconds / baseline:5.2f}x   {BEFORE[name]:5.2f}x")
    handlers = [name for name in CASES if name.startswith("handlers.")]
    worst = max(handlers, key=lambda name: medians[name])
    ratio = medians[worst] / baseline
    verdict = "within" if ratio <= TARGET_RATIO else "ABOVE"
    print(f"slowest handler import / boto3 = {ratio:.2f}x ({worst}; {verdict} target)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
