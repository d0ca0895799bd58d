"""The Lambda code, built without Docker: the runtime package + the config JSON, and a dependency layer.

Two directories, each content-addressed under ``build/`` (git-ignored):

- ``build/lambda-deps/<key>/python/``: the runtime dependencies for the Lambda architecture, installed by
  ``pip install --only-binary=:all: --platform manylinux2014_aarch64 --python-version 3.13 --target ...``
  (wheels only, so an x86_64 machine gets the aarch64 build of pydantic-core). The key hashes the target
  platform, Python version, the requested packages and requirements.lock, so a repeated synth or test
  run reuses it and a re-lock rebuilds it. It ships as a Lambda layer: a config change then re-uploads
  only the small code asset, and the 20-odd MB layer asset keeps its hash.
- ``build/lambda-code/<hash>/``: ``macie_chatops/`` copied from ``runtime/`` (sources only) and
  ``config.json`` (``Config.to_json()``) beside it; the Lambdas read it through $MACIE_CHATOPS_CONFIG_JSON.

Never shipped: the sandbox (its own top-level package), tests, PyYAML (the Lambdas read JSON), moto, boto3
(the Lambda runtime has it). :func:`build_dependencies` checks that.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
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


@dataclass(frozen=True)
class LambdaBundle:
    """The two asset directories, each with a content hash CDK uses instead of re-fingerprinting them."""

    code_dir: Path
    code_hash: str
    dependencies_dir: Path
    dependencies_hash: str


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
    config: Config, build_dir: Path = DEFAULT_BUILD_DIR, package_dir: Path = RUNTIME_PACKAGE_DIR
) -> tuple[Path, str]:
    """``macie_chatops/`` + ``config.json``, in a directory named by the hash of exactly that content."""
    files = _package_files(package_dir)
    if not (package_dir / "__init__.py").is_file():
        raise BundleError(f"{package_dir} is not the macie_chatops package")
    config_json = config.to_json().encode("utf-8")
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(package_dir)).encode() + b"\0" + file.read_bytes() + b"\0")
    digest.update(names.BUNDLED_CONFIG_FILE.encode() + b"\0" + config_json)
    code_hash = digest.hexdigest()[:32]
    target = build_dir / "lambda-code" / code_hash

    def copy(staging: Path) -> None:
        for file in files:
            destination = staging / package_dir.name / file.relative_to(package_dir)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, destination)
        (staging / names.BUNDLED_CONFIG_FILE).write_bytes(config_json)

    _build_once(target, copy)
    return target, code_hash


def build_bundle(config: Config, build_dir: Path = DEFAULT_BUILD_DIR) -> LambdaBundle:
    """Both asset directories for ``config`` (cached; the first call on a fresh clone downloads wheels)."""
    dependencies_dir, dependencies_hash = build_dependencies(build_dir)
    code_dir, code_hash = build_code(config, build_dir)
    return LambdaBundle(
        code_dir=code_dir,
        code_hash=code_hash,
        dependencies_dir=dependencies_dir,
        dependencies_hash=dependencies_hash,
    )
