"""Cold start of each Lambda handler vs a bare ``import boto3``, in fresh interpreters, in the same run.

For every handler two numbers, each as a ratio to ``import boto3`` measured in the same rounds:

- its import (what Lambda's init phase runs);
- its cold path to the first record or click: the import, then everything its first invocation loads before
  the use case runs (boto3, the use case's modules, the store, the Slack client, ...), the bundled config
  read as the Lambdas read it (``load_bundled_config``) and, for the finding handler, its first event parsed,
  since Lambda pays all of it in the same cold start.

Target (issue 18): every cold path at most 1.5x. With ``--before DIR`` (a checkout of an older commit, e.g. made
with ``git worktree add DIR <commit>``) the same cases also run against that tree's runtime, in turns with this
one, and print side by side; a module that tree does not have yet is skipped there. One more line prices
Powertools' Tracer, which a traced handler builds on its first invocation in Lambda (aws_xray_sdk, botocore
patched): not part of the cold paths above, which run with tracing off as the sandbox does.

Every module loads from bytecode, each tree's in a cache of the run's own (``PYTHONPYCACHEPREFIX``) written by a first
round that is not counted: the trees are measured alike, whatever the caller's ``PYTHONDONTWRITEBYTECODE`` or a stale
``__pycache__``. What compiling from source adds (a Lambda asset shipped without bytecode) is not in these numbers:
docs/architecture.md §6.

Each case is timed inside its interpreter (``time.process_time``: CPU time, which other processes on a shared
machine inflate far less than the wall clock), so interpreter start-up is excluded. Timings only print; nothing
asserts on them.

Run: ``.venv/bin/python bench/bench_import_handlers.py [runs] [--before DIR]`` (default 7 runs, median).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.5
BOTO3 = "import boto3"
TRACER = "Powertools Tracer, built on the first invocation"

# CPU time of the timed statements only. A handler the tree does not have exits 3 (n/a); another module it does
# not have is skipped (--before trees).
SNIPPET = """
import importlib, importlib.util, sys, time
{setup}
if {modules!r} and importlib.util.find_spec({modules!r}[0]) is None:
    sys.exit(3)
t = time.process_time()
for name in {modules!r}:
    if importlib.util.find_spec(name) is not None:
        importlib.import_module(name)
{timed}
print(time.process_time() - t)
"""
BYTECODE = "every module from bytecode, in the run's own cache (a first round, not counted, writes it)"
AS_SHIPPED = "the layer's packages and our package compiled from source, the standard library and boto3 from bytecode"
# What infra/lambda_bundle.py ships without bytecode (pip --no-compile, sources only) and Lambda cannot cache (its
# code and layer directories are read-only): the layer's top-level packages (RUNTIME_REQUIREMENTS and what they
# pull in) and our own, which is the tree's runtime directory.
LAYER_PACKAGES = (
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_inspection",
    "typing_extensions",
    "slack_sdk",
    "aws_lambda_powertools",
)
LOAD_CONFIG = "from macie_chatops.config import load_bundled_config; load_bundled_config()"
STORE = "macie_chatops.store"
SLACK = ("macie_chatops.slack_client", "macie_chatops.slack_secrets")


@dataclass(frozen=True)
class Case:
    modules: tuple[str, ...]
    config: bool = False  # the first invocation reads the bundled config
    setup: str = ""  # run before the clock starts
    timed: str = ""  # timed after the imports

    def snippet(self) -> str:
        timed = "\n".join(part for part in (self.timed, LOAD_CONFIG if self.config else "") if part)
        return SNIPPET.format(setup=self.setup, modules=self.modules, timed=timed)


def cold_path(handler: str, *first: str, config: bool, timed: str = "") -> Case:
    return Case((f"macie_chatops.handlers.{handler}", "boto3", *first), config=config, timed=timed)


# The finding handler's first record parses an event: the event models build their schemas then (§6).
FIRST_PARSE = (
    "from pathlib import Path; from macie_chatops.finding import parse_event; "
    "parse_event(Path('tests/events/personal-review.json').read_text())"
)


# What each handler's first record or click loads, from the handlers' own lazy imports (handlers/*.py, _root.py), with
# the environment the stack gives them (a digest queue for the intake, a click, the remediator and the sweeper).
COLD_PATHS: dict[str, Case] = {
    "finding (intake)": cold_path(
        "intake",
        "macie_chatops.intake",
        "macie_chatops.exemption_store",
        "macie_chatops.jobs",
        STORE,
        *SLACK,
        "macie_chatops.group_store",
        "macie_chatops.slack_pacing",
        "macie_chatops.approvals",
        config=True,
        timed=FIRST_PARSE,
    ),
    "interaction (a click)": cold_path(
        "interaction",
        "macie_chatops.interaction",
        "macie_chatops.exemption_store",
        "macie_chatops.group_store",
        "macie_chatops.jobs",
        STORE,
        *SLACK,
        "macie_chatops.approvals",
        "macie_chatops.bulk_continuation",  # the click's dependencies, with the continuation queue (§22)
        config=True,
    ),
    "remediator": cold_path(
        "remediation",
        "macie_chatops.remediation",
        "macie_chatops.sessions",
        "macie_chatops.move",
        STORE,
        *SLACK,
        "macie_chatops.slack_pacing",
        "macie_chatops.approvals",
        "macie_chatops.group_store",
        config=True,
    ),
    "sweeper (nothing stuck)": cold_path(
        "sweeper",
        "macie_chatops.sweeper",
        "macie_chatops.job_queue",
        STORE,
        "macie_chatops.approvals",
        "macie_chatops.group_store",
        config=False,
    ),
    "reminders": cold_path("reminders", "macie_chatops.reminders", STORE, *SLACK, config=True),
    "reconciler": cold_path("reconciler", "macie_chatops.reconciler", STORE, config=True),
    "security_hub": cold_path("security_hub", "macie_chatops.security_hub", STORE, config=False),
    "digests (digest writer)": cold_path("digests", "macie_chatops.digest_writer", STORE, *SLACK, config=True),
}
IMPORTS: dict[str, Case] = {
    name: Case((case.modules[0],)) for name, case in COLD_PATHS.items()
}  # the handler module alone
EXTRA: dict[str, Case] = {
    TRACER: Case(
        (),
        setup="import boto3; from aws_lambda_powertools import Logger",
        timed="from aws_lambda_powertools import Tracer; Tracer(service='bench', patch_modules=('botocore',))",
    ),
}


def tree_env(tree: Path, env: Mapping[str, str]) -> dict[str, str]:
    return {**env, "PYTHONPATH": os.pathsep.join(str(tree / part) for part in ("runtime", "sandbox"))}


def forget_shipped_bytecode(cache: Path, tree: Path) -> None:
    """Remove from a bytecode cache what a Lambda compiles from source (``--as-shipped``). The cache is a
    ``PYTHONPYCACHEPREFIX``: ``/a/b/m.py`` has its bytecode at ``<cache>/a/b/m.<tag>.pyc``."""
    shutil.rmtree(cache / (tree / "runtime").relative_to("/"), ignore_errors=True)
    for name in LAYER_PACKAGES:
        spec = importlib.util.find_spec(name)
        origin = Path(spec.origin) if spec is not None and spec.origin else None
        if origin is None:
            continue
        if origin.name == "__init__.py":  # a package: all of it
            shutil.rmtree(cache / origin.parent.relative_to("/"), ignore_errors=True)
        else:  # one module (typing_extensions.py)
            for compiled in (cache / origin.parent.relative_to("/")).glob(f"{origin.stem}.*.pyc"):
                compiled.unlink()


def measure_once(case: Case, tree: Path, env: Mapping[str, str]) -> float | None:
    """CPU seconds of the case in a fresh interpreter on ``tree``'s runtime; None when the tree lacks the handler."""
    result = subprocess.run([sys.executable, "-c", case.snippet()], cwd=tree, env=env, capture_output=True, text=True)
    if result.returncode == 3:
        return None
    if result.returncode != 0:
        raise RuntimeError(f"{case.modules} on {tree}: {result.stderr.strip()[-2000:]}")
    return float(result.stdout.strip().splitlines()[-1])


Medians = dict[tuple[str, str], float]


def measure(cases: Mapping[str, Case], envs: Mapping[str, tuple[Path, Mapping[str, str]]], runs: int) -> Medians:
    """Median per (tree, case); every round runs every case on every tree in turns, so a noisy moment hits all."""
    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(runs):
        for name, case in cases.items():
            for label, (tree, env) in envs.items():
                seconds = measure_once(case, tree, env)
                if seconds is not None:
                    samples.setdefault((label, name), []).append(seconds)
    return {key: statistics.median(values) for key, values in samples.items()}


def measure_statements(statements: Mapping[str, str], runs: int) -> dict[str, float]:
    """Median CPU seconds per case (name -> import statements, each in a fresh interpreter on this tree, the cases
    in turns); bench_interaction.py measures its handler with it."""
    samples: dict[str, list[float]] = {name: [] for name in statements}
    for _ in range(runs):
        for name, statement in statements.items():
            snippet = f"import time; t = time.process_time(); {statement}; print(time.process_time() - t)"
            result = subprocess.run(
                [sys.executable, "-c", snippet], cwd=ROOT, capture_output=True, text=True, check=True
            )
            samples[name].append(float(result.stdout.strip().splitlines()[-1]))
    return {name: statistics.median(values) for name, values in samples.items()}


def bundle(tree: Path, directory: Path, env: Mapping[str, str]) -> Path:
    """The bundled config of the shipped accounts.yaml, as ``tree``'s CDK app writes it (its own Config.to_json)."""
    path = directory / f"config-{abs(hash(tree))}.json"
    script = "from macie_chatops.config import load_config; print(load_config('accounts.yaml').to_json())"
    document = subprocess.run(
        [sys.executable, "-c", script], cwd=tree, env=env, capture_output=True, text=True, check=True
    ).stdout
    path.write_text(document, encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="?", type=int, default=7)
    parser.add_argument("--before", type=Path, help="a checkout of an older commit, measured in turns with this one")
    parser.add_argument("--as-shipped", action="store_true", help=AS_SHIPPED + " (as a Lambda loads them today)")
    args = parser.parse_args()
    trees = {"now": ROOT} | ({"before": args.before.resolve()} if args.before else {})
    with tempfile.TemporaryDirectory() as directory:
        envs: dict[str, tuple[Path, dict[str, str]]] = {}
        for label, tree in trees.items():
            env = tree_env(tree, {**os.environ, "POWERTOOLS_TRACE_DISABLED": "true"})  # the sandbox's; see TRACER
            env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode: see BYTECODE
            env["PYTHONPYCACHEPREFIX"] = str(Path(directory) / f"pycache-{label}")
            env["MACIE_CHATOPS_CONFIG_JSON"] = str(bundle(tree, Path(directory), env))
            envs[label] = (tree, env)
        cases = {BOTO3: Case(("boto3",))} | {f"{n}: import": c for n, c in IMPORTS.items()}
        cases |= {f"{n}: cold path": c for n, c in COLD_PATHS.items()}
        measure(cases, envs, 1)  # writes the bytecode: not counted
        if args.as_shipped:
            for tree, env in envs.values():
                forget_shipped_bytecode(Path(env["PYTHONPYCACHEPREFIX"]), tree)
                env["PYTHONDONTWRITEBYTECODE"] = "1"
        medians = measure(cases, envs, args.runs)
        traced = {**envs["now"][1], "POWERTOOLS_TRACE_DISABLED": "false", "LAMBDA_TASK_ROOT": directory}
        measure(EXTRA, {"now": (ROOT, traced)}, 1)
        tracer = measure(EXTRA, {"now": (ROOT, traced)}, args.runs)

    print(f"cold start, CPU time, median of {args.runs} fresh interpreters; ratio to import boto3 in the same run")
    print(f"({AS_SHIPPED if args.as_shipped else BYTECODE})")
    print(f"(target: every cold path <= {TARGET_RATIO}x)")
    header = f"  {'':<44} {'now':>9} {'ratio':>7}"
    if "before" in trees:
        header += f" {'before':>9} {'ratio':>7}"
    print(header)
    for name in cases:
        line = f"  {name:<44}"
        for label in trees:
            seconds, baseline = medians.get((label, name)), medians[(label, BOTO3)]
            line += "       n/a        " if seconds is None else f" {seconds * 1000:6.1f} ms {seconds / baseline:6.2f}x"
        print(line)
    boto3_now = medians[("now", BOTO3)]
    slowest = max(COLD_PATHS, key=lambda n: medians[("now", f"{n}: cold path")])
    ratio = medians[("now", f"{slowest}: cold path")] / boto3_now
    verdict = "within" if ratio <= TARGET_RATIO else "ABOVE"
    print(f"slowest cold path / boto3 = {ratio:.2f}x ({slowest}; {verdict} the target)")
    added = tracer[("now", TRACER)]
    print(f"{TRACER}: +{added * 1000:.1f} ms, +{added / boto3_now:.2f}x of import boto3 (boto3 and Logger loaded)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
