"""Cold start of each Lambda handler vs a bare ``import boto3``, in fresh interpreters, in the same run.

For every handler, each as a ratio to ``import boto3`` measured in the same rounds:

- its import (what Lambda's init phase runs);
- its cold path to the first record or click: the import, then everything its first invocation loads before
  the use case runs (boto3, the use case's modules, the store, the Slack client, ...), the bundled config
  read as the Lambdas read it (``load_bundled_config``) and, for the finding handler, its first event parsed,
  since Lambda pays all of it in the same cold start.

The imports and the cold paths run as Lambda runs them: with ``AWS_LAMBDA_FUNCTION_NAME`` set, so loading the handlers
package pauses the garbage collector, and the cold path ends as the first invocation does (``end_cold_start``: the
cold start frozen, the collector on again; handlers/_tracing.py). Each cold path is also measured with the collector
on, as Python runs by default (the sandbox, the tests, and every tree before the pause), and both are printed.

Beside each cold path, its *libraries floor*: what the same cold start costs with no code of ours. A first run of
the cold path, not timed, lists the modules it loaded that are not ours (third-party and standard library, in the
order they finished loading); the floor case imports exactly those in a fresh interpreter, so the list follows the
code. The floor is those imports as Python runs them by default (the collector on); a second floor pauses the
collector as the cold path does, to show how much of the pause's gain is the libraries' own collections. Per handler
it prints the cold path as Lambda runs it and with the collector on, both floors (all as ratios to ``import boto3``),
and *ours*: the cold path as Lambda runs it minus the default floor (our modules, our models' classes, the config
read, the first parse, and the collections our objects add), then which cold paths are above the target and whether
their floor alone is. Last, each cold path's peak RSS (``ru_maxrss``) with the collector on and paused, and what one
full collection costs in the warm container the finding handler's cold path leaves, frozen or not. A handler's four
cases run one after the other in every round (each on every tree), so what they compare runs close in time: with the
cases in blocks instead, a tree without the pause measured its two identical cold paths up to 30 ms apart.

Beside the interaction endpoint's cold path, two more rows (SnapStart, docs/architecture.md §6), each ending with the
boto3 clients a Remediate click builds (Secrets Manager for the signing secret, DynamoDB, SQS, KMS), which no cold path
above includes: *its clients too*, the cold path as Lambda runs it then those clients; and *after a SnapStart restore*,
the same click's remaining work in a container whose before-snapshot hook ran before the clock started (the runtime's
SnapStart variable set, the handler imported, its hooks run as the runtime runs them): the config from the container
cache, then the clients. What Lambda spends restoring the snapshot (its ``Restore Duration``) cannot be measured here;
nor can the secret's read or the click's calls, which no row makes.

Target (issue 18): every cold path at most 1.5x. With ``--before DIR`` (a checkout of an older commit, e.g. made
with ``git worktree add DIR <commit>``) the same cases also run against that tree's runtime, in turns with this
one, and print side by side; a module that tree does not have yet is skipped there. One more line prices
Powertools' Tracer, which a traced handler builds on its first invocation in Lambda (aws_xray_sdk, botocore
patched): not part of the cold paths above, which run with tracing off as the sandbox does.

Every module loads from bytecode, each tree's in a cache of the run's own (``PYTHONPYCACHEPREFIX``) written by a first
round that is not counted: the trees are measured alike, whatever the caller's ``PYTHONDONTWRITEBYTECODE`` or a stale
``__pycache__``. ``--as-shipped`` loads the modules as the Lambda assets built on this machine ship them
(infra/lambda_bundle.py, docs/architecture.md §6): the layer's packages and ours from unchecked hash-based bytecode,
read-only, when an interpreter of the Lambda's Python is here to compile them, and then, in turns in a column of its
own, what an asset without bytecode costs (every cold start compiles it); from source only, without one.

Each case is timed inside its interpreter (``time.process_time``: CPU time, which other processes on a shared
machine inflate far less than the wall clock), so interpreter start-up is excluded. Timings only print; nothing
asserts on them.

Run: ``.venv/bin/python bench/bench_import_handlers.py [runs] [--before DIR] [--as-shipped]`` (default 7 runs,
median).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.5
BOTO3 = "import boto3"
TRACER = "Powertools Tracer, built on the first invocation"
FLOOR = "libraries floor"
FLOOR_MEANS = "the modules a cold path loads that are not ours, imported alone"

# CPU time of the timed statements only, and the interpreter's peak RSS in KiB after them. A handler the tree does not
# have exits 3 (n/a); another module it does not have is skipped (--before trees; the venv's editable install, which
# would find it in this tree, is taken off the import system first). ``loaded``: what the interpreter held before the
# clock started (REPORT_LIBRARIES).
SNIPPET = """
import importlib, importlib.util, resource, sys, time
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
{setup}
if {modules!r} and importlib.util.find_spec({modules!r}[0]) is None:
    sys.exit(3)
loaded = set(sys.modules)
t = time.process_time()
for name in {modules!r}:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as missing:  # without a find_spec first: its search is no part of a cold start
        if missing.name != name:
            raise
{timed}
{report}
"""
REPORT_TIME = "elapsed = time.process_time() - t\nprint(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
# Instead of the cold path's time: one full collection in the container it leaves, timed after a first one untimed (with
# the collector on from the start, the passes it would have made by then; after a frozen cold start, nearly nothing).
REPORT_WARM_COLLECTION = "import gc\ngc.collect()\nt = time.process_time()\ngc.collect()\n" + REPORT_TIME
WARM = "a full collection in the warm container of the finding handler's cold path"
# Instead of the time: every module the case loaded that is not ours, in the order they finished loading (the import
# system re-inserts a module into sys.modules when it is done), under its own name (an alias such as os.path, whose
# spec names posixpath, is left to its owner). All of them, not the top-level packages only: pydantic's, Powertools'
# and botocore's submodules load when used, not with their package.
REPORT_LIBRARIES = """print(repr([
    name for name, module in list(sys.modules.items())
    if name not in loaded and name.partition(".")[0] != "macie_chatops"
    and getattr(module, "__spec__", None) is not None and module.__spec__.name == name
]))"""
# The libraries floor of a cold path: the modules it loads that are not ours, imported with no module of ours and
# without the cold path's find_spec checks (they are this tree's own list); paused, with the collector paused and the
# end of the pause timed, as the handlers package and handlers/_tracing.end_cold_start do it.
FLOOR_SNIPPET = """
import gc, importlib, importlib.util, resource, sys, time
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
{pause}
t = time.process_time()
for name in {modules!r}:
    importlib.import_module(name)
{end}
elapsed = time.process_time() - t
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
# As Lambda runs a handler: the runtime's variable set, so the handlers package pauses the collector; the first
# invocation's end ends the pause (a --before tree without the pause has no end_cold_start, and nothing to end).
IN_LAMBDA = "import os; os.environ['AWS_LAMBDA_FUNCTION_NAME'] = 'bench'"
END_OF_FIRST_INVOCATION = """try:
    from macie_chatops.handlers._tracing import end_cold_start
except ImportError:
    pass
else:
    end_cold_start()"""
PAUSED = "as Lambda"  # a cold path as Lambda runs it: the collector paused
COLLECTOR_ON = "collector on"
FLOOR_PAUSED = f"{FLOOR}, paused"
BYTECODE = "every module from bytecode, in the run's own cache (a first round, not counted, writes it)"
SHIPPED = "as shipped: the layer's packages and ours from unchecked hash-based bytecode, read-only"
FROM_SOURCE = "the layer's packages and our package compiled from source (an asset without bytecode)"
SOURCES_ONLY = "sources only"  # the column of FROM_SOURCE beside SHIPPED
# What infra/lambda_bundle.py ships (with bytecode or without) and Lambda cannot cache in (its code and layer
# directories are read-only): the layer's top-level packages (RUNTIME_REQUIREMENTS and what they pull in) and our
# own, which is the tree's runtime directory. The standard library and boto3 come from the runtime's bytecode.
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
    floor: bool = False  # a libraries floor: ``modules`` are the libraries' own, imported as they are
    paused: bool = False  # the collector paused: as Lambda runs our handlers (IN_LAMBDA), or a floor's own gc.disable
    ends_first_invocation: bool = False  # paused: the timed part ends as the first invocation does
    warm: bool = False  # times REPORT_WARM_COLLECTION instead of the case

    def snippet(self, report: str = REPORT_TIME) -> str:
        if self.warm and report == REPORT_TIME:
            report = REPORT_WARM_COLLECTION
        if self.floor:
            pause, end = ("gc.disable()", "gc.freeze(); gc.enable()") if self.paused else ("", "")
            return FLOOR_SNIPPET.format(modules=self.modules, pause=pause, end=end)
        ending = END_OF_FIRST_INVOCATION if self.paused and self.ends_first_invocation else ""
        timed = "\n".join(part for part in (self.timed, LOAD_CONFIG if self.config else "", ending) if part)
        setup = "\n".join(part for part in (IN_LAMBDA if self.paused else "", self.setup) if part)
        return SNIPPET.format(setup=setup, modules=self.modules, timed=timed, report=report)

    def as_lambda(self, *, first_invocation: bool) -> Case:
        """The same case as Lambda runs it: the collector paused; ``first_invocation``: and the pause ended."""
        return replace(self, paused=True, ends_first_invocation=first_invocation)


def cold_path(handler: str, *first: str, config: bool, timed: str = "") -> Case:
    return Case((f"macie_chatops.handlers.{handler}", "boto3", *first), config=config, timed=timed)


# The finding handler's first record parses an event: the event models build their schemas then (§6).
FIRST_PARSE = (
    "from pathlib import Path; from macie_chatops.finding import parse_event; "
    "parse_event(Path('tests/events/personal-review.json').read_text())"
)


def bundled_read(function: str) -> str:
    """Timed: the first invocation reads its part of the bundled config without the models (bundled_config.py); a
    --before tree without that function read the whole config, as its handler did."""
    return (
        f"try:\n    from macie_chatops.bundled_config import {function} as read\n"
        "except ImportError:\n    from macie_chatops.config import load_bundled_config as read\nread()"
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
        "macie_chatops.interaction",  # not exemption_store: only a dismissal's submission builds it (§6)
        "macie_chatops.group_store",
        "macie_chatops.jobs",
        STORE,
        *SLACK,
        "macie_chatops.approvals",  # not bulk_continuation: only a bulk click that continues builds it (§6)
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
    # The reminders read their part of the bundled config without its models (bundled_config.py).
    "reminders": cold_path(
        "reminders",
        "macie_chatops.reminders",
        STORE,
        *SLACK,
        config=False,
        timed=bundled_read("reminder_config"),
    ),
    # The reconciler reads three values of the bundled config without its models (bundled_config.py).
    "reconciler": cold_path(
        "reconciler",
        "macie_chatops.reconciler",
        STORE,
        config=False,
        timed=bundled_read("reconciler_settings"),
    ),
    "security_hub": cold_path("security_hub", "macie_chatops.security_hub", STORE, config=False),
    # The digest writer reads no config (handlers/digests.py): its groups and the store carry what it renders.
    "digests (digest writer)": cold_path(
        "digests", "macie_chatops.digest_writer", STORE, *SLACK, "macie_chatops.slack_pacing", config=False
    ),
}
# The handler module alone, as Lambda's init phase imports it (the collector paused; the first invocation is later).
IMPORTS: dict[str, Case] = {
    name: Case((case.modules[0],)).as_lambda(first_invocation=False) for name, case in COLD_PATHS.items()
}
EXTRA: dict[str, Case] = {
    TRACER: Case(
        (),
        setup="import boto3; from aws_lambda_powertools import Logger",
        timed="from aws_lambda_powertools import Tracer; Tracer(service='bench', patch_modules=('botocore',))",
    ),
}


INTERACTION = "interaction (a click)"
WITH_CLIENTS = f"{INTERACTION}: cold path and its clients, {PAUSED}"
RESTORED = f"{INTERACTION}: after a SnapStart restore, its clients"
RESTORED_COLD_PATH = f"{INTERACTION}: after a SnapStart restore, cold path"
# The interaction function's environment as the stack sets it, with made-up credentials (no client may look further
# for any: the bench makes no call), set before the clock starts.
CLICK_ENVIRONMENT = """import os
os.environ.update({
    "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_EC2_METADATA_DISABLED": "true", "STATE_TABLE_NAME": "bench", "SLACK_SECRET_ARN": "bench",
    "REMEDIATION_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/210987654321/bench", "APPROVAL_KEY_ID": "bench",
})"""
# The clients a Remediate click builds (handlers/interaction.py: the signing secret's, the dependencies', the approval
# signer's), through the handler's own cache with its own timeouts.
CLICK_CLIENTS = """from macie_chatops.handlers import interaction as handler
for service in ("secretsmanager", "dynamodb", "sqs", "kms"):
    handler._cache.client(service, handler.read_settings(), handler._aws_timeouts())"""
# A SnapStart init: the runtime's variable, the handler imported, its before-snapshot hooks run (last registered first)
# and its after-restore hooks, as awslambdaric runs them. A tree without the hooks is n/a.
SNAPSTART_RESTORED = """import importlib.util, os, sys
if importlib.util.find_spec("macie_chatops.handlers._snapstart") is None:
    sys.exit(3)
os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
import macie_chatops.handlers.interaction
import snapshot_restore_py
hooks = snapshot_restore_py.get_before_snapshot()
if not hooks:
    sys.exit("the interaction handler registered no before-snapshot hook")
while hooks:
    func, args, kwargs = hooks.pop()
    func(*args, **kwargs)
for func, args, kwargs in snapshot_restore_py.get_after_restore():
    func(*args, **kwargs)"""
# After the restore, a click reads the config from the container cache the prime filled (not load_bundled_config).
CACHED_CONFIG = (
    "from macie_chatops.handlers import interaction as handler\nhandler._cache.config(handler.read_settings())"
)


def snapstart_cases() -> dict[str, Case]:
    """The interaction's click with its clients: cold, as Lambda runs it; and after a SnapStart restore, with its
    clients and as the cold paths are measured (the imports and the config: what the prime did)."""
    click = COLD_PATHS[INTERACTION]
    with_clients = replace(click, setup=CLICK_ENVIRONMENT, timed=CLICK_CLIENTS).as_lambda(first_invocation=True)
    restored = replace(click, config=False, setup=f"{CLICK_ENVIRONMENT}\n{SNAPSTART_RESTORED}", timed=CACHED_CONFIG)
    return {
        WITH_CLIENTS: with_clients,
        RESTORED_COLD_PATH: restored.as_lambda(first_invocation=True),
        RESTORED: replace(restored, timed=f"{CACHED_CONFIG}\n{CLICK_CLIENTS}").as_lambda(first_invocation=True),
    }


def tree_env(tree: Path, env: Mapping[str, str]) -> dict[str, str]:
    return {**env, "PYTHONPATH": os.pathsep.join(str(tree / part) for part in ("runtime", "sandbox"))}


def shipped_sources(tree: Path) -> list[Path]:
    """The packages (directories) and modules the Lambda assets ship: ours from ``tree``, the layer's from this venv."""
    shipped = [tree / "runtime" / "macie_chatops"]
    for name in LAYER_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            origin = Path(spec.origin)
            shipped.append(origin.parent if origin.name == "__init__.py" else origin)  # typing_extensions.py
    return shipped


def forget_shipped_bytecode(cache: Path, tree: Path) -> None:
    """Remove from a bytecode cache what an asset without bytecode makes a Lambda compile from source. The cache is a
    ``PYTHONPYCACHEPREFIX``: ``/a/b/m.py`` has its bytecode at ``<cache>/a/b/m.<tag>.pyc``."""
    for source in shipped_sources(tree):
        if source.is_dir():
            shutil.rmtree(cache / source.relative_to("/"), ignore_errors=True)
        else:
            for compiled in (cache / source.parent.relative_to("/")).glob(f"{source.stem}.*.pyc"):
                compiled.unlink()


def compile_as_shipped(cache: Path, tree: Path) -> None:
    """Replace in a bytecode cache what the assets ship compiled with what infra/lambda_bundle.py writes: unchecked
    hash-based bytecode (this interpreter's, in the cache, where the assets keep theirs beside the sources)."""
    command = [sys.executable, "-m", "compileall", "-q", "-f", "--invalidation-mode", "unchecked-hash"]
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(cache)}
    subprocess.run([*command, *map(str, shipped_sources(tree))], env=env, capture_output=True, check=True)


def run_case(case: Case, tree: Path, env: Mapping[str, str], report: str = REPORT_TIME) -> str | None:
    """The case's last line of output in a fresh interpreter on ``tree``'s runtime; None when the tree lacks the
    handler."""
    snippet = case.snippet(report)
    result = subprocess.run([sys.executable, "-c", snippet], cwd=tree, env=env, capture_output=True, text=True)
    if result.returncode == 3:
        return None
    if result.returncode != 0:
        raise RuntimeError(f"{case.modules} on {tree}: {result.stderr.strip()[-2000:]}")
    return result.stdout.strip().splitlines()[-1]


def measure_once(case: Case, tree: Path, env: Mapping[str, str]) -> tuple[float, int] | None:
    """CPU seconds of the case and the peak RSS (KiB) of its fresh interpreter on ``tree``'s runtime; None when the
    tree lacks the handler."""
    line = run_case(case, tree, env)
    if line is None:
        return None
    seconds, rss_kib = line.split()
    return float(seconds), int(rss_kib)


def libraries_floor(case: Case, tree: Path, env: Mapping[str, str]) -> Case | None:
    """The libraries floor of a cold path on ``tree``: a first run of the cold path, not timed, lists the modules
    that are not ours it loads (standard library included), in load order; the floor imports exactly those. None
    when the tree lacks the handler."""
    line = run_case(case, tree, env, REPORT_LIBRARIES)
    return None if line is None else Case(tuple(ast.literal_eval(line)), floor=True)


Medians = dict[tuple[str, str], float]
# A case the same on every tree, or one per tree (a floor: each tree's cold path loads its own libraries).
Cases = Mapping[str, Case | Mapping[str, Case]]


@dataclass(frozen=True)
class Measured:
    seconds: Medians  # median CPU seconds per (tree, case)
    rss_kib: Medians  # median peak RSS per (tree, case)


def measure(cases: Cases, envs: Mapping[str, tuple[Path, Mapping[str, str]]], runs: int) -> Measured:
    """Medians per (tree, case); every round runs every case on every tree in turns, so a noisy moment hits all."""
    samples: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for _ in range(runs):
        for name, cased in cases.items():
            for label, (tree, env) in envs.items():
                case = cased if isinstance(cased, Case) else cased.get(label)
                measured = None if case is None else measure_once(case, tree, env)
                if measured is not None:
                    samples.setdefault((label, name), []).append(measured)
    return Measured(
        seconds={key: statistics.median(s for s, _ in values) for key, values in samples.items()},
        rss_kib={key: statistics.median(r for _, r in values) for key, values in samples.items()},
    )


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


def ships_bytecode() -> bool:
    """Whether the Lambda assets built on this machine carry bytecode (an interpreter of the Lambda's Python)."""
    sys.path.insert(0, str(ROOT))
    from infra.lambda_bundle import find_lambda_python

    return find_lambda_python() is not None


def environments(trees: Mapping[str, Path], directory: Path, form: str) -> dict[str, tuple[Path, dict[str, str]]]:
    """Each column's tree and environment: its own bytecode cache and bundled config."""
    envs: dict[str, tuple[Path, dict[str, str]]] = {}
    for label, tree in trees.items():
        env = tree_env(tree, {**os.environ, "POWERTOOLS_TRACE_DISABLED": "true"})  # the sandbox's; see TRACER
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode: see BYTECODE
        env["PYTHONPYCACHEPREFIX"] = str(directory / f"pycache-{label}")
        env["MACIE_CHATOPS_CONFIG_JSON"] = str(bundle(tree, directory, env))
        envs[label] = (tree, env)
    if form == SHIPPED:  # and beside it, in turns, the same tree without bytecode
        tree, env = envs["now"]
        envs[SOURCES_ONLY] = (tree, {**env, "PYTHONPYCACHEPREFIX": str(directory / "pycache-sources-only")})
    return envs


def as_loaded(envs: Mapping[str, tuple[Path, dict[str, str]]], form: str) -> None:
    """After the first round: each column's shipped packages as ``form`` loads them, nothing written any more."""
    if form == BYTECODE:
        return
    for label, (tree, env) in envs.items():
        cache = Path(env["PYTHONPYCACHEPREFIX"])
        if form == SHIPPED and label != SOURCES_ONLY:
            compile_as_shipped(cache, tree)
        else:
            forget_shipped_bytecode(cache, tree)
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # Lambda's directories are read-only


def floors(envs: Mapping[str, tuple[Path, Mapping[str, str]]]) -> dict[str, dict[str, Case]]:
    """Per cold path, each column's libraries floor (:func:`libraries_floor`), derived from the code in this run."""
    derived: dict[str, dict[str, Case]] = {}
    for name, case in COLD_PATHS.items():
        for label, (tree, env) in envs.items():
            floor = libraries_floor(case, tree, env)
            if floor is not None:
                derived.setdefault(name, {})[label] = floor
    return derived


def print_table(cases: Cases, envs: Mapping[str, object], medians: Medians) -> None:
    header = f"  {'':<58}" + "".join(f" {label[:12]:>12} {'ratio':>7}" for label in envs)
    print(header)
    for name in cases:
        line = f"  {name:<58}"
        for label in envs:
            seconds, baseline = medians.get((label, name)), medians[(label, BOTO3)]
            line += (
                "          n/a        " if seconds is None else f" {seconds * 1000:9.1f} ms {seconds / baseline:6.2f}x"
            )
        print(line)


def cold(name: str, how: str = PAUSED) -> str:
    """The case name of a cold path: as Lambda runs it (the collector paused), or with the collector on."""
    return f"{name}: cold path, {how}"


def print_floors(label: str, medians: Medians) -> None:
    """Per handler in one column: its cold path as Lambda runs it and with the collector on, its libraries floor
    (Python's default) and paused, ours (the cold path as Lambda runs it minus the default floor) and the pause's gain
    on the cold path and on its floor alone; then which cold paths are above the target, and whether their floor
    alone is."""
    boto3 = medians[(label, BOTO3)]
    print(
        f"cold path vs libraries floor ({label}): ratios to import boto3. lambda: the cold path as Lambda runs it "
        f"(collector paused); on: collector on; floor: the libraries alone as Python imports them (collector on); "
        f"paused: the floor with the collector paused. ours = lambda - floor (on: on - floor). pause: what pausing "
        f"changes on the cold path (lambda - on) and on the floor alone (paused - floor)"
    )
    above: list[str] = []
    for name in COLD_PATHS:
        paused, on = medians.get((label, cold(name))), medians.get((label, cold(name, COLLECTOR_ON)))
        floor, floor_paused = medians.get((label, f"{name}: {FLOOR}")), medians.get((label, f"{name}: {FLOOR_PAUSED}"))
        if paused is None or on is None or floor is None or floor_paused is None:
            print(f"  {name:<24} n/a")
            continue
        print(
            f"  {name:<24} lambda {paused / boto3:4.2f}x  on {on / boto3:4.2f}x  floor {floor / boto3:4.2f}x  "
            f"paused {floor_paused / boto3:4.2f}x  ours {(paused - floor) * 1000:+6.1f} ms "
            f"(on {(on - floor) * 1000:+6.1f})"
            f"  pause {(paused - on) * 1000:+6.1f} ms (floor alone {(floor_paused - floor) * 1000:+6.1f})"
        )
        if paused / boto3 > TARGET_RATIO:
            alone = "above it alone" if floor / boto3 > TARGET_RATIO else "within it alone"
            above.append(f"{name} {paused / boto3:.2f}x (floor {floor / boto3:.2f}x: {alone})")
    print(f"above {TARGET_RATIO}x as Lambda runs them: " + ("; ".join(above) if above else "none"))


def print_memory(label: str, rss_kib: Medians) -> None:
    """Per handler in one column: the peak RSS of its cold path with the collector on and as Lambda runs it."""
    print(f"peak RSS of each cold path ({label}; ru_maxrss, median): collector on, as Lambda (paused), difference")
    for name in COLD_PATHS:
        on, paused = rss_kib.get((label, cold(name, COLLECTOR_ON))), rss_kib.get((label, cold(name)))
        if on is None or paused is None:
            print(f"  {name:<24} n/a")
            continue
        print(
            f"  {name:<24} on {on / 1024:6.1f} MiB  lambda {paused / 1024:6.1f} MiB  {(paused - on) / 1024:+5.1f} MiB"
        )


def print_snapstart(medians: Medians) -> None:
    """The interaction's click with its clients, cold and after a SnapStart restore (this tree)."""
    boto3 = medians[("now", BOTO3)]
    cold_click, restored = medians.get(("now", WITH_CLIENTS)), medians.get(("now", RESTORED))
    restored_path = medians.get(("now", RESTORED_COLD_PATH))
    if cold_click is None or restored is None or restored_path is None:
        print(f"{INTERACTION} with SnapStart: n/a")
        return
    print(
        f"{INTERACTION} after a SnapStart restore: cold path {restored_path * 1000:.1f} ms "
        f"({restored_path / boto3:.2f}x of import boto3); with its clients {restored * 1000:.1f} ms "
        f"({restored / boto3:.2f}x), against {cold_click * 1000:.1f} ms ({cold_click / boto3:.2f}x) cold. "
        "Not measurable here: the restore itself (Lambda's Restore Duration), the secret's read, the click's calls"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="?", type=int, default=7)
    parser.add_argument("--before", type=Path, help="a checkout of an older commit, measured in turns with this one")
    parser.add_argument(
        "--as-shipped", action="store_true", help="the modules as the Lambda assets built here ship them"
    )
    args = parser.parse_args()
    form = (SHIPPED if ships_bytecode() else FROM_SOURCE) if args.as_shipped else BYTECODE
    trees = {"now": ROOT} | ({"before": args.before.resolve()} if args.before else {})
    with tempfile.TemporaryDirectory() as directory:
        envs = environments(trees, Path(directory), form)
        cases: dict[str, Case | Mapping[str, Case]] = {BOTO3: Case(("boto3",))}
        cases |= {f"{n}: import, {PAUSED}": c for n, c in IMPORTS.items()}
        derived = floors(envs)
        for (
            n,
            c,
        ) in COLD_PATHS.items():  # a handler's four cases one after the other: what they compare runs close in time
            cases[cold(n)] = c.as_lambda(first_invocation=True)
            cases[cold(n, COLLECTOR_ON)] = c
            if n in derived:
                cases[f"{n}: {FLOOR}"] = derived[n]
                cases[f"{n}: {FLOOR_PAUSED}"] = {label: replace(f, paused=True) for label, f in derived[n].items()}
            if n == INTERACTION:
                cases |= snapstart_cases()
        measure(cases, envs, 1)  # writes the bytecode: not counted
        as_loaded(envs, form)
        measured = measure(cases, envs, args.runs)
        medians = measured.seconds
        traced = {**envs["now"][1], "POWERTOOLS_TRACE_DISABLED": "false", "LAMBDA_TASK_ROOT": directory}
        measure(EXTRA, {"now": (ROOT, traced)}, 1)
        tracer = measure(EXTRA, {"now": (ROOT, traced)}, args.runs).seconds
        finding = COLD_PATHS["finding (intake)"]
        warm_cases = {
            PAUSED: replace(finding.as_lambda(first_invocation=True), warm=True),
            COLLECTOR_ON: replace(finding, warm=True),
        }
        warm = measure(warm_cases, {"now": envs["now"]}, args.runs).seconds

    print(f"cold start, CPU time, median of {args.runs} fresh interpreters; ratio to import boto3 in the same run")
    print(f"({form}" + (f"; {SOURCES_ONLY}: {FROM_SOURCE})" if SOURCES_ONLY in envs else ")"))
    print(f"(target: every cold path <= {TARGET_RATIO}x as Lambda runs it; {FLOOR}: {FLOOR_MEANS})")
    print(f"({PAUSED}: AWS_LAMBDA_FUNCTION_NAME set, the collector paused from the handlers package to the first")
    print(f" invocation's end; {COLLECTOR_ON}: Python's default, as the sandbox and the tests run)")
    print_table(cases, envs, medians)
    for label in envs:
        print_floors(label, medians)
    for label in envs:
        print_memory(label, measured.rss_kib)
    boto3_now = medians[("now", BOTO3)]
    slowest = max(COLD_PATHS, key=lambda n: medians[("now", cold(n))])
    ratio = medians[("now", cold(slowest))] / boto3_now
    verdict = "within" if ratio <= TARGET_RATIO else "ABOVE"
    print(f"slowest cold path as Lambda runs it / boto3 = {ratio:.2f}x ({slowest}; {verdict} the target)")
    print_snapstart(medians)
    added = tracer[("now", TRACER)]
    print(f"{TRACER}: +{added * 1000:.1f} ms, +{added / boto3_now:.2f}x of import boto3 (boto3 and Logger loaded)")
    frozen, unfrozen = warm[("now", PAUSED)], warm[("now", COLLECTOR_ON)]
    print(f"{WARM}: {unfrozen * 1000:.1f} ms with the collector on, {frozen * 1000:.1f} ms with the cold start frozen")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
