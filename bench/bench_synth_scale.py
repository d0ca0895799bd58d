"""Synth time of the whole CDK app for 10 and for 1,000 accounts (100 teams, 4 regions).

Each round synthesizes both organisations in one process (jsii start-up is paid once, before timing),
taking turns so machine noise hits both alike: the member App (with cdk-nag), the Lambda bundle (cached in
build/ after the first round), the central and StackSets stacks (with cdk-nag), ``app.synth()``. Printed
side by side: the median seconds per synth, the resource counts and the largest template, and the ratio
1,000 : 10 (the config's size should cost little: accounts are StackSet targets and bundled JSON, not
resources). Timings only print; nothing asserts on them (tests/functional/infra/test_scale.py asserts the
counts and the CloudFormation limits).

Run: ``.venv/bin/python bench/bench_synth_scale.py [rounds]`` (default 3).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # infra/ and stacksets/
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App  # noqa: E402

from infra.app import build_app  # noqa: E402
from macie_chatops.config import Config  # noqa: E402
from macie_chatops_sandbox.testkit.organisations import org_config  # noqa: E402
from stacksets.context import cdk_json_context  # noqa: E402


def synth_once(config: Config) -> tuple[float, int, int]:
    """Seconds for one full synth; total resources; bytes of the largest template."""
    outdir = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    try:
        started = time.perf_counter()
        app = App(outdir=str(outdir), context=cdk_json_context())
        build_app(config, app=app)
        assembly = app.synth()
        elapsed = time.perf_counter() - started
        templates = [stack.template for stack in assembly.stacks]
        resources = sum(len(t["Resources"]) for t in templates)
        largest = max(len(json.dumps(t, separators=(",", ":"))) for t in templates)
        return elapsed, resources, largest
    finally:
        shutil.rmtree(outdir, ignore_errors=True)


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    cases = {"10 accounts": org_config(accounts=10, teams=3), "1,000 accounts": org_config(accounts=1000, teams=100)}
    for config in cases.values():  # warm-up: jsii start-up, the dependency build, the first asset copies
        synth_once(config)
    times: dict[str, list[float]] = {name: [] for name in cases}
    shape: dict[str, tuple[int, int]] = {}
    for _ in range(rounds):
        for name, config in cases.items():
            elapsed, resources, largest = synth_once(config)
            times[name].append(elapsed)
            shape[name] = (resources, largest)
    print(f"{'':16} {'median s':>9} {'resources':>10} {'largest template B':>19}")
    for name in cases:
        resources, largest = shape[name]
        print(f"{name:16} {statistics.median(times[name]):9.2f} {resources:10d} {largest:19d}")
    small, large = (statistics.median(times[name]) for name in cases)
    print(f"ratio 1,000 : 10 accounts: {large / small:.2f}x synth time ({rounds} rounds, medians)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
