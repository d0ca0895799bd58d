"""The Lambda code, built without Docker: the runtime package + the config JSON, and a dependency layer.

Two directories, each content-addressed under ``build/`` (git-ignored):

- ``build/lambda-deps/<key>/python/``: the runtime dependencies for the Lambda architecture, installed by
  ``pip install --only-binary=:all: --platform manylinux2014_aarch64 --python-version 3.13 --target ...``
  (wheels only, so an x86_64 machine gets the aarch64 build of pydantic-core). The key hashes the target
  platform, Python version, the requested packages and requirements.lock, so a repeated synth or test
  run reuses it and a re-lock rebuilds it. It ships as a Lambda layer: a config change then re-uploads
  only the small code asset, and the 20-odd MB layer asset keeps its hash.
- ``build/lambda-code/<hash>/``: ``macie_chatops/`` copied from ``runtime/`` and ``config.json``
  (``Config.to_json()``) beside it; the Lambdas read it through $MACIE_CHATOPS_CONFIG_JSON.

Both ship bytecode compiled by an interpreter of the Lambda's Python (:func:`find_lambda_python`), the layer in
``build/lambda-layer/<hash>/`` (a compiled copy of the downloaded one, so an offline cache of ``lambda-deps`` stays
valid): Lambda's directories are read-only, so without it every cold start compiles pydantic, slack_sdk, Powertools
and our package from source (docs/architecture.md §6). Without such an interpreter both ship as sources, with a
:class:`BundleWarning` and asset hashes of their own.

Never shipped: the sandbox (its own top-level package), tests, PyYAML (the Lambdas read JSON), moto, boto3
(the Lambda runtime has it). :func:`build_dependencies` checks that.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from macie_chatops import names
from macie_chatops.config import Config

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
RUNTIME_PACKAGE_DIR: Final = REPO_ROOT / "runtime" / "macie_chatops"
REQUIREMENTS_LOCK: Final = REPO_ROOT / "requirements.lock"
DEFAULT_BUILD_DIR: Final = REPO_ROOT / "build"

# One place to move the runtime: the Lambda runtime, the wheels' ABI and the layer's compatibility.
LAMBDA_PYTHON_VERSION: Final = "3.13"
LAMBDA_PLATFORM: Final = "manylinux2014_aarch64"
LAMBDA_TASK_ROOT: Final = "/var/task"  # where Lambda unpacks the code asset
LAMBDA_LAYER_SITE: Final = "/opt/python"  # where Lambda puts a Python layer's python/ directory
# An interpreter of exactly LAMBDA_PYTHON_VERSION to compile the assets with, when it is not python3.13 on PATH.
ENV_LAMBDA_PYTHON: Final = "MACIE_CHATOPS_LAMBDA_PYTHON"
BUNDLED_CONFIG_PATH: Final = f"{LAMBDA_TASK_ROOT}/{names.BUNDLED_CONFIG_FILE}"

# What the handlers import beyond the standard library and boto3 (which the Lambda runtime provides).
RUNTIME_REQUIREMENTS: Final = ("aws-lambda-powertools", "pydantic", "slack-sdk")
# Powertools' Tracer (X-Ray): installed without their dependencies, since aws-xray-sdk requires botocore, which
# the Lambda runtime provides and which must not ship twice.
TRACER_REQUIREMENTS: Final = ("aws-xray-sdk", "wrapt")
# Distributions that must never end up in the layer (tests, the sandbox's AWS, YAML, a second boto3).
FORBIDDEN_DISTRIBUTIONS: Final = ("moto", "pyyaml", "boto3", "botocore", "macie-chatops")


class BundleError(RuntimeError):
    """The Lambda code or its dependencies could not be built; the message says what to do."""


class BundleWarning(UserWarning):
    """The assets ship without bytecode: every cold start will compile them (docs/architecture.md §6)."""


@dataclass(frozen=True)
class LambdaPython:
    """An interpreter of the Lambda runtime's Python version, which compiles the assets' bytecode."""

    executable: str
    cache_tag: str  # "cpython-313": the name of each module's .pyc in __pycache__
    magic: str  # importlib.util.MAGIC_NUMBER in hex: bytecode from another magic is ignored by the runtime

    @property
    def bytecode_tag(self) -> str:
        """Part of both assets' hashes: sources compiled by another Python are another asset."""
        return f"{self.cache_tag}-{self.magic}-unchecked-hash"


@dataclass(frozen=True)
class LambdaBundle:
    """The two asset directories, each with a content hash CDK uses instead of re-fingerprinting them."""

    code_dir: Path
    code_hash: str
    dependencies_dir: Path
    dependencies_hash: str


_PROBE: Final = (
    "import importlib.util, sys; "
    "print('%d.%d' % sys.version_info[:2], sys.implementation.cache_tag, importlib.util.MAGIC_NUMBER.hex())"
)


@functools.cache
def _probe(executable: str) -> LambdaPython | None:
    """``executable`` as a :class:`LambdaPython` when it runs and is the Lambda's Python version (a pyenv shim of a
    version pyenv has not selected exits with an error: not one)."""
    try:
        result = subprocess.run(  # noqa: S603
            [executable, "-s", "-c", _PROBE], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = result.stdout.split()
    if result.returncode != 0 or len(fields) != 3 or fields[0] != LAMBDA_PYTHON_VERSION:
        return None
    return LambdaPython(executable=executable, cache_tag=fields[1], magic=fields[2])


def _pyenv_candidates() -> list[str]:
    """pyenv's installed interpreters of the Lambda's version, newest first (pyenv selects none by default)."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    name = f"python{LAMBDA_PYTHON_VERSION}"
    found = [p / "bin" / name for p in (root / "versions").glob(f"{LAMBDA_PYTHON_VERSION}.*")]

    def release(path: Path) -> tuple[int, ...]:
        parts = path.parent.parent.name.split(".")
        return tuple(int(part) if part.isdigit() else -1 for part in parts)

    return [str(p) for p in sorted(found, key=release, reverse=True) if p.is_file()]


def find_lambda_python() -> LambdaPython | None:
    """The interpreter that compiles the assets: $MACIE_CHATOPS_LAMBDA_PYTHON (which must be one: a BundleError
    otherwise), else ``python3.13`` on PATH, else one pyenv installed; None when there is none."""
    chosen = os.environ.get(ENV_LAMBDA_PYTHON, "")
    if chosen:
        found = _probe(chosen)
        if found is None:
            raise BundleError(
                f"{ENV_LAMBDA_PYTHON}={chosen} is not a Python {LAMBDA_PYTHON_VERSION} interpreter that runs; "
                "it compiles the Lambda assets' bytecode"
            )
        return found
    on_path = shutil.which(f"python{LAMBDA_PYTHON_VERSION}")
    for candidate in [*([on_path] if on_path else []), *_pyenv_candidates()]:
        found = _probe(candidate)
        if found is not None:
            return found
    return None


def compile_bytecode(python: LambdaPython, directory: Path, shipped_as: str) -> None:
    """Every module under ``directory`` compiled in place to ``__pycache__/<module>.<tag>.pyc``.

    Unchecked hash-based pycs: the runtime loads them without looking at the source's time or content. Timestamp
    pycs would name the build machine's file times, which the asset's zip does not keep, so the runtime would find
    them stale and compile from source on every cold start; checked ones would read and hash every source on every
    import. Unchecked is right for an asset that cannot change: read-only in Lambda, and named by the hash of the
    very sources (and this interpreter's tag) it was compiled from. ``shipped_as`` is the directory's path in
    Lambda, recorded as each module's file name, and a fixed hash seed makes the marshalled sets (``x in {...}``)
    the same in every build."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "SOURCE_DATE_EPOCH"}
    env["PYTHONHASHSEED"] = "0"
    command = [
        python.executable,
        "-s",
        "-m",
        "compileall",
        "-q",
        "--invalidation-mode",
        "unchecked-hash",
        "-s",
        str(directory),
        "-p",
        shipped_as,
        str(directory),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-3000:]
        raise BundleError(f"{python.executable} could not compile {directory} for the Lambda assets:\n{output}")


def _warn_without_bytecode() -> None:
    warnings.warn(
        f"no Python {LAMBDA_PYTHON_VERSION} interpreter found (python{LAMBDA_PYTHON_VERSION} on PATH, pyenv, or "
        f"${ENV_LAMBDA_PYTHON}): the Lambda assets ship WITHOUT bytecode, and every cold start compiles them "
        "(about 0.2 s of CPU more; docs/architecture.md §6). Install it (e.g. `pyenv install "
        f"{LAMBDA_PYTHON_VERSION}`) or point ${ENV_LAMBDA_PYTHON} at one before deploying.",
        BundleWarning,
        stacklevel=3,
    )


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def locked_pins(lock: Path = REQUIREMENTS_LOCK) -> dict[str, str]:
    """``name -> version`` from requirements.lock (``name==version`` lines)."""
    try:
        lines = lock.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BundleError(f"{lock}: cannot read the pinned versions: {exc.strerror or exc}") from None
    pins: dict[str, str] = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[_normalise(name.strip())] = version.strip()
    return pins


def dependencies_key(lock: Path = REQUIREMENTS_LOCK) -> str:
    """Identifies one dependency build: target platform + Python + requested packages + every pin."""
    pins = locked_pins(lock)
    missing = [r for r in (*RUNTIME_REQUIREMENTS, *TRACER_REQUIREMENTS) if _normalise(r) not in pins]
    if missing:
        raise BundleError(f"{lock}: no pinned version for {', '.join(missing)} (run `make lock`)")
    digest = hashlib.sha256()
    for part in (LAMBDA_PLATFORM, LAMBDA_PYTHON_VERSION, *RUNTIME_REQUIREMENTS, "--no-deps", *TRACER_REQUIREMENTS):
        digest.update(part.encode() + b"\0")
    for name in sorted(pins):
        digest.update(f"{name}=={pins[name]}\n".encode())
    return digest.hexdigest()[:32]


def _installed_distributions(site_dir: Path) -> set[str]:
    return {_normalise(p.name.split("-", 1)[0]) for p in site_dir.glob("*.dist-info")}


def build_dependencies(build_dir: Path = DEFAULT_BUILD_DIR, lock: Path = REQUIREMENTS_LOCK) -> tuple[Path, str]:
    """The layer directory for the pinned runtime dependencies, built once per key (PyPI, wheels only)."""
    key = dependencies_key(lock)
    target = build_dir / "lambda-deps" / key

    def install(staging: Path) -> None:
        pins = locked_pins(lock)
        site_dir = staging / "python"
        common = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "--no-compile",
            "--only-binary=:all:",
            "--platform",
            LAMBDA_PLATFORM,
            "--implementation",
            "cp",
            "--python-version",
            LAMBDA_PYTHON_VERSION,
            "--target",
            str(site_dir),
            "--constraint",
            str(lock),
        ]
        # A user-level constraint file or target would change what gets installed; this build is pinned.
        env = {k: v for k, v in os.environ.items() if k not in {"PIP_CONSTRAINT", "PIP_TARGET", "PIP_PREFIX"}}
        for command in (
            [*common, *(f"{name}=={pins[_normalise(name)]}" for name in RUNTIME_REQUIREMENTS)],
            [*common, "--no-deps", *(f"{name}=={pins[_normalise(name)]}" for name in TRACER_REQUIREMENTS)],
        ):
            result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
            if result.returncode != 0:
                raise BundleError(
                    "pip could not download the Lambda dependencies (PyPI must be reachable for the first build; "
                    f"later builds reuse {target.parent}):\n{result.stderr.strip()}"
                )
        shutil.rmtree(site_dir / "bin", ignore_errors=True)
        for cache in site_dir.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        shipped = _installed_distributions(site_dir)
        forbidden = sorted(shipped & {_normalise(d) for d in FORBIDDEN_DISTRIBUTIONS})
        if forbidden:
            raise BundleError(f"the Lambda dependencies pulled in {', '.join(forbidden)}; they must not ship")
        missing = [r for r in (*RUNTIME_REQUIREMENTS, *TRACER_REQUIREMENTS) if _normalise(r) not in shipped]
        if missing:
            raise BundleError(f"the Lambda dependencies lack {', '.join(missing)} after pip install")

    _build_once(target, install)
    return target, key


def _build_once(target: Path, fill: Callable[[Path], None]) -> None:
    """Build ``target`` unless it exists: ``fill`` a staging directory beside it, then rename that into place,
    so a half-built directory is never taken for a cached one."""
    if target.is_dir():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        fill(staging)
        try:
            staging.rename(target)
        except OSError:
            # Another process finished the same build first: its result is identical, keep it.
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _package_files(package_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in package_dir.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in {".pyc", ".pyo"}
    )


def build_code(
    config: Config,
    build_dir: Path = DEFAULT_BUILD_DIR,
    package_dir: Path = RUNTIME_PACKAGE_DIR,
    python: LambdaPython | None = None,
) -> tuple[Path, str]:
    """``macie_chatops/`` + ``config.json``, in a directory named by the hash of exactly that content; compiled by
    ``python`` when given (its bytecode tag is part of the hash), sources only otherwise."""
    files = _package_files(package_dir)
    if not (package_dir / "__init__.py").is_file():
        raise BundleError(f"{package_dir} is not the macie_chatops package")
    config_json = config.to_json().encode("utf-8")
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(package_dir)).encode() + b"\0" + file.read_bytes() + b"\0")
    digest.update(names.BUNDLED_CONFIG_FILE.encode() + b"\0" + config_json)
    if python is not None:
        digest.update(b"\0bytecode\0" + python.bytecode_tag.encode())
    code_hash = digest.hexdigest()[:32]
    target = build_dir / "lambda-code" / code_hash

    def copy(staging: Path) -> None:
        for file in files:
            destination = staging / package_dir.name / file.relative_to(package_dir)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, destination)
        (staging / names.BUNDLED_CONFIG_FILE).write_bytes(config_json)
        if python is not None:
            compile_bytecode(python, staging, LAMBDA_TASK_ROOT)

    _build_once(target, copy)
    return target, code_hash


def build_layer(
    python: LambdaPython | None, build_dir: Path = DEFAULT_BUILD_DIR, lock: Path = REQUIREMENTS_LOCK
) -> tuple[Path, str]:
    """The layer directory and its hash: the dependencies (:func:`build_dependencies`) compiled by ``python`` into
    ``build/lambda-layer/<hash>/``, or, without it, the downloaded sources as they are."""
    sources, key = build_dependencies(build_dir, lock)
    if python is None:
        return sources, key
    layer_hash = hashlib.sha256(f"{key}\0bytecode\0{python.bytecode_tag}".encode()).hexdigest()[:32]
    target = build_dir / "lambda-layer" / layer_hash

    def compile_copy(staging: Path) -> None:
        shutil.copytree(sources / "python", staging / "python", symlinks=True)
        compile_bytecode(python, staging / "python", LAMBDA_LAYER_SITE)

    _build_once(target, compile_copy)
    return target, layer_hash


def build_bundle(config: Config, build_dir: Path = DEFAULT_BUILD_DIR) -> LambdaBundle:
    """Both asset directories for ``config`` (cached; the first call on a fresh clone downloads wheels), with
    bytecode when an interpreter of the Lambda's Python is here (a :class:`BundleWarning` when not)."""
    python = find_lambda_python()
    if python is None:
        _warn_without_bytecode()
    dependencies_dir, dependencies_hash = build_layer(python, build_dir)
    code_dir, code_hash = build_code(config, build_dir, python=python)
    return LambdaBundle(
        code_dir=code_dir,
        code_hash=code_hash,
        dependencies_dir=dependencies_dir,
        dependencies_hash=dependencies_hash,
    )
