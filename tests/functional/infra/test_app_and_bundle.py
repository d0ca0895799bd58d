"""The CDK entry point and the Lambda bundle: offline `cdk synth`, a bad accounts.yaml fails synth with
located messages, the asset holds exactly the package + config + pinned dependencies, and no Slack secret
value is in any template or environment."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from infra import lambda_bundle
from infra.lambda_bundle import (
    ENV_LAMBDA_PYTHON,
    LAMBDA_PYTHON_VERSION,
    BundleError,
    BundleWarning,
    LambdaBundle,
    LambdaPython,
    build_bundle,
    build_code,
    build_dependencies,
    dependencies_key,
    find_lambda_python,
)
from macie_chatops import names
from macie_chatops.config import config_from_json
from tests.functional.infra.conftest import ROOT, Synthesized, resources_of_type

SLACK_TOKEN = re.compile(r"xox[abposre]-[0-9A-Za-z-]{8,}")
LAMBDA_PYTHON = find_lambda_python()
needs_lambda_python = pytest.mark.skipif(
    LAMBDA_PYTHON is None,
    reason=f"no Python {LAMBDA_PYTHON_VERSION} here (python{LAMBDA_PYTHON_VERSION} on PATH, pyenv, or "
    f"${ENV_LAMBDA_PYTHON}): the assets are built without bytecode, nothing to check",
)


def _clean_env(**extra: str) -> dict[str, str]:
    """No AWS credentials, no profile: synth must not need any."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.update(
        PATH=f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{env.get('PATH', '')}",
        CDK_DISABLE_CLI_TELEMETRY="true",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        **extra,
    )
    return env


@pytest.mark.slow
def test_cdk_synth_works_offline_without_credentials(tmp_path: Path) -> None:
    # GIVEN the pinned CDK CLI and no AWS credentials at all
    cdk = ROOT / "node_modules" / ".bin" / "cdk"
    assert cdk.exists(), "run `npm ci` (make test does) to install the pinned CDK CLI"
    outdir = tmp_path / "cdk.out"
    # WHEN `cdk synth` runs the app from cdk.json
    result = subprocess.run(
        [str(cdk), "synth", "-q", "--no-notices", "-o", str(outdir)],
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    # THEN it succeeds and writes both stacks plus the extracted member templates, and nothing stray
    assert result.returncode == 0, result.stderr[-3000:]
    templates = sorted(p.name for p in outdir.glob("*.template.json"))
    assert templates == ["MacieChatOps-Central.template.json", "MacieChatOps-MemberStackSets.template.json"]
    member_files = sorted(p.name for p in (outdir / "member-templates").iterdir())
    assert member_files == [
        "administrator-forwarding.template.json",
        "member-regional.template.json",
        "member-roles.template.json",
    ]
    central = json.loads((outdir / "MacieChatOps-Central.template.json").read_text(encoding="utf-8"))
    assert not resources_of_type(central, "AWS::CDK::Metadata")


# cdk.json runs the module; an operator may run the file, which puts infra/ first on sys.path.
@pytest.mark.parametrize("invocation", [["-m", "infra.app"], ["infra/app.py"]], ids=["module", "file"])
def test_a_bad_accounts_yaml_fails_synth_with_located_messages(tmp_path: Path, invocation: list[str]) -> None:
    # GIVEN accounts.yaml with an unquoted account id and an unknown team
    text = (ROOT / "accounts.yaml").read_text(encoding="utf-8")
    text = text.replace(
        '{id: "345678901234", name: payments-prod, team: payments}', "{id: 345678901234, name: x, team: nobody}"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    # WHEN the app runs with -c config=bad.yaml (the CLI passes context in CDK_CONTEXT_JSON)
    result = subprocess.run(
        [sys.executable, *invocation],
        cwd=ROOT,
        env=_clean_env(CDK_CONTEXT_JSON=json.dumps({"config": str(bad)}), CDK_OUTDIR=str(tmp_path / "out")),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # THEN the app imports, and synth fails (exit 2) and says FILE:LINE: field: message, nothing synthesized
    assert result.returncode == 2
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "345678901234" in t)
    assert f"{bad}:{line}: accounts[0].id: account ids must be quoted" in result.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_the_code_asset_is_the_package_and_the_config_only(example: Synthesized) -> None:
    bundle = build_bundle(example.config)
    shipped = sorted(str(p.relative_to(bundle.code_dir)) for p in bundle.code_dir.rglob("*") if p.is_file())
    package = sorted(
        str(p.relative_to(ROOT / "runtime"))
        for p in (ROOT / "runtime" / "macie_chatops").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )
    # THEN it holds exactly runtime/macie_chatops (sources), config.json beside it, and, compiled by the Lambda's
    # Python when it is here, one .pyc of that Python per module
    compiled = (
        [] if LAMBDA_PYTHON is None else [_pyc(source, LAMBDA_PYTHON) for source in package if source.endswith(".py")]
    )
    assert shipped == sorted([*package, *compiled, names.BUNDLED_CONFIG_FILE])
    assert not any(part.startswith(("macie_chatops_sandbox", "tests")) for p in shipped for part in Path(p).parts)
    # AND the config is the validated accounts.yaml, readable by the Lambdas' loader
    text = (bundle.code_dir / names.BUNDLED_CONFIG_FILE).read_text(encoding="utf-8")
    assert text == example.config.to_json()
    assert config_from_json(text) == example.config
    # AND every handler the stack names exists in it
    for function in resources_of_type(example.central_json, "AWS::Lambda::Function").values():
        module, _, attribute = function["Properties"]["Handler"].rpartition(".")
        source = bundle.code_dir / (module.replace(".", "/") + ".py")
        assert source.is_file(), module
        assert f"def {attribute}(" in source.read_text(encoding="utf-8")


def _pyc(source: str, python: LambdaPython) -> str:
    path = Path(source)
    return str(path.parent / "__pycache__" / f"{path.stem}.{python.cache_tag}.pyc")


# Run by the Lambda's Python on a read-only copy of both assets, as Lambda lays them out (the code asset first on
# sys.path, then the layer's python/), boto3 from this venv as the Lambda runtime provides it. Every module of both
# assets is loaded by the import system's own loader, and the handlers are imported; any source the loader compiles
# is recorded. pydantic_core is built for arm64 and cannot run here, hence the loader and not an import for all.
LOADS_FROM_BYTECODE = """
import importlib, importlib.machinery, json, sys
from pathlib import Path
code, layer, venv = sys.argv[1:4]
sys.path[:0] = [code, layer, venv]
compiled = []
source_to_code = importlib.machinery.SourceFileLoader.source_to_code
def recording(self, data, path, **kwargs):
    compiled.append(str(path))
    return source_to_code(self, data, path, **kwargs)
importlib.machinery.SourceFileLoader.source_to_code = recording
sources = [p for root in (code, layer) for p in Path(root).rglob("*.py")]
for source in sources:
    importlib.machinery.SourceFileLoader(source.stem, str(source)).get_code(source.stem)
handlers = ["macie_chatops.handlers." + n for n in ("intake", "interaction", "sweeper", "security_hub")]
for name in [*handlers, "macie_chatops.store", "macie_chatops.slack_client", "slack_sdk.web"]:
    importlib.import_module(name)
ours = [m for m in sys.modules.values() if str(getattr(m, "__file__", "")).startswith((code, layer))]
print(json.dumps({
    "sources": len(sources),
    "imported": len(ours),
    "compiled": [p for p in compiled if p.startswith((code, layer))],
    "not_cached": [m.__name__ for m in ours if not (m.__cached__ and Path(m.__cached__).is_file())],
}))
"""


def _read_only_copy(bundle: LambdaBundle, directory: Path) -> tuple[Path, Path]:
    code, layer = directory / "task", directory / "opt"
    subprocess.run(["cp", "-a", str(bundle.code_dir), str(code)], check=True)
    subprocess.run(["cp", "-a", str(bundle.dependencies_dir), str(layer)], check=True)
    for path in [*code.rglob("*"), *layer.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return code, layer / "python"


def _writable_again(*roots: Path) -> None:
    for root in roots:
        for path in [root, *root.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


@needs_lambda_python
def test_the_lambda_python_loads_both_assets_from_their_bytecode_without_compiling(
    example: Synthesized, tmp_path: Path
) -> None:
    assert LAMBDA_PYTHON is not None
    # GIVEN both assets built, copied read-only as Lambda mounts them
    bundle = build_bundle(example.config)
    code, layer = _read_only_copy(bundle, tmp_path)
    before = sorted(code.parent.rglob("*"))
    try:
        # WHEN the Lambda's Python loads every module of both and imports the handlers
        result = subprocess.run(
            [
                LAMBDA_PYTHON.executable,
                "-s",
                "-c",
                LOADS_FROM_BYTECODE,
                str(code),
                str(layer),
                sysconfig.get_path("purelib"),
            ],
            env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        after = sorted(code.parent.rglob("*"))
    finally:
        _writable_again(tmp_path / "task", tmp_path / "opt")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    # THEN no source of either asset was compiled: every module came from its shipped .pyc
    assert report["compiled"] == []
    assert report["sources"] > 700 and report["imported"] > 100
    assert report["not_cached"] == []
    # AND nothing was written beside them (Lambda could not: the directories are read-only)
    assert after == before


@needs_lambda_python
def test_the_bytecode_is_unchecked_hash_based_and_named_as_lambda_runs_it(example: Synthesized) -> None:
    assert LAMBDA_PYTHON is not None
    # GIVEN the code asset and the layer built with the Lambda's Python
    bundle = build_bundle(example.config)
    script = (
        "import marshal, sys; from pathlib import Path\n"
        "for pyc in sys.argv[1:]:\n"
        "    data = Path(pyc).read_bytes()\n"
        "    print(data[:4].hex(), int.from_bytes(data[4:8], 'little'), marshal.loads(data[16:]).co_filename)\n"
    )
    handler = bundle.code_dir / "macie_chatops" / "handlers" / "__pycache__" / f"intake.{LAMBDA_PYTHON.cache_tag}.pyc"
    pydantic = bundle.dependencies_dir / "python" / "pydantic" / "__pycache__" / f"main.{LAMBDA_PYTHON.cache_tag}.pyc"
    out = subprocess.run(
        [LAMBDA_PYTHON.executable, "-c", script, str(handler), str(pydantic)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    # THEN each is the interpreter's magic, flags 1 (hash-based, source never checked), and the file name the module
    # has in Lambda (not the build machine's path)
    assert out == [
        f"{LAMBDA_PYTHON.magic} 1 /var/task/macie_chatops/handlers/intake.py",
        f"{LAMBDA_PYTHON.magic} 1 /opt/python/pydantic/main.py",
    ]


@needs_lambda_python
def test_the_compiled_code_asset_is_reproducible(example: Synthesized, tmp_path: Path) -> None:
    # GIVEN the same config built twice, in two build directories
    first, first_hash = build_code(example.config, tmp_path / "a", python=LAMBDA_PYTHON)
    second, second_hash = build_code(example.config, tmp_path / "b", python=LAMBDA_PYTHON)
    # THEN the hash is the same, and so is every byte of every file
    assert first_hash == second_hash
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    # AND it differs from the sources-only asset's, which is another asset
    assert build_code(example.config, tmp_path / "c")[1] != first_hash


def test_without_the_lambda_python_both_assets_ship_sources_with_a_warning(
    example: Synthesized, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a machine without an interpreter of the Lambda's Python
    monkeypatch.setattr(lambda_bundle, "find_lambda_python", lambda: None)
    # WHEN the bundle is built  THEN a BundleWarning says the assets ship without bytecode and how to fix it
    with pytest.warns(BundleWarning, match=f"WITHOUT bytecode.*pyenv install {LAMBDA_PYTHON_VERSION}"):
        bundle = build_bundle(example.config)
    # AND neither asset holds bytecode: the code asset is the sources' own, the layer is the downloaded directory
    assert not list(bundle.code_dir.rglob("*.pyc")) and not list(bundle.dependencies_dir.rglob("*.pyc"))
    assert (bundle.code_dir, bundle.code_hash) == build_code(example.config)
    assert (bundle.dependencies_dir, bundle.dependencies_hash) == build_dependencies()


def test_a_lambda_python_named_in_the_environment_must_be_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # GIVEN $MACIE_CHATOPS_LAMBDA_PYTHON naming this venv's Python (not the Lambda's version), then no file at all
    for named in (sys.executable, str(tmp_path / "python-missing")):
        monkeypatch.setenv(ENV_LAMBDA_PYTHON, named)
        # WHEN the interpreter is looked for  THEN the build stops and says which variable names what
        with pytest.raises(BundleError, match=f"{ENV_LAMBDA_PYTHON}=.* is not a Python {LAMBDA_PYTHON_VERSION}"):
            find_lambda_python()


@needs_lambda_python
def test_a_module_the_lambda_python_cannot_compile_stops_the_build(example: Synthesized, tmp_path: Path) -> None:
    # GIVEN a package with a module that is no valid Python
    package = tmp_path / "macie_chatops"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "broken.py").write_text("def broken(:\n", encoding="utf-8")
    # WHEN its code asset is built  THEN a BundleError names the module, and no asset directory is left behind
    with pytest.raises(BundleError, match=r"broken\.py"):
        build_code(example.config, tmp_path / "build", package_dir=package, python=LAMBDA_PYTHON)
    assert list((tmp_path / "build" / "lambda-code").iterdir()) == []


def test_the_dependency_layer_is_pinned_arm64_and_lean(example: Synthesized) -> None:
    directory, key = build_dependencies()
    site = directory / "python"
    installed = dict(
        p.name.removesuffix(".dist-info").lower().replace("_", "-").rsplit("-", 1) for p in site.glob("*.dist-info")
    )
    pins = lambda_bundle.locked_pins()
    # THEN each installed distribution is the version requirements.lock pins
    assert installed and all(pins[name] == version for name, version in installed.items())
    assert {"aws-lambda-powertools", "pydantic", "slack-sdk", "pydantic-core"} <= set(installed)
    # AND nothing that must not ship: no tests' moto, no YAML, no second boto3
    assert not {"moto", "pyyaml", "boto3", "botocore", "macie-chatops"} & set(installed)
    assert not (site / "yaml").exists() and not (site / "macie_chatops_sandbox").exists()
    # AND compiled parts are built for the Lambda's architecture and Python
    abi = LAMBDA_PYTHON_VERSION.replace(".", "")
    extensions = [p.name for p in site.rglob("*.so")]
    assert extensions and all(f"cpython-{abi}-aarch64-linux-gnu" in name for name in extensions)
    assert key == dependencies_key()


def test_the_dependency_build_is_cached_and_not_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a dependency build already in build/
    directory, _ = build_dependencies()

    def no_pip(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise AssertionError("pip must not run again for the same pinned versions")

    monkeypatch.setattr(lambda_bundle.subprocess, "run", no_pip)
    # WHEN it is asked for again  THEN the cached directory comes back without running pip
    assert build_dependencies()[0] == directory


def test_a_failed_dependency_download_says_so_and_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN an empty build directory and a pip that cannot reach PyPI
    def unreachable(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "ERROR: Could not find a version (no network)")

    monkeypatch.setattr(lambda_bundle.subprocess, "run", unreachable)
    # WHEN the dependencies are built  THEN a BundleError explains it and no half-built directory remains
    with pytest.raises(BundleError, match="PyPI must be reachable"):
        build_dependencies(tmp_path)
    assert list((tmp_path / "lambda-deps").iterdir()) == []


def test_a_lock_without_the_runtime_pins_is_refused(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("boto3==1.0.0\n", encoding="utf-8")
    with pytest.raises(BundleError, match="no pinned version for aws-lambda-powertools"):
        dependencies_key(lock)


def _walk(value: Any) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((key, item))
            found.extend(_walk(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_walk(item))
    return found


def test_no_slack_secret_value_in_any_template_environment_or_asset(example: Synthesized) -> None:
    bundle = build_bundle(example.config)
    documents: dict[str, Any] = dict(example.all_templates())
    documents["cdk.json"] = json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))
    documents["config.json"] = json.loads((bundle.code_dir / names.BUNDLED_CONFIG_FILE).read_text(encoding="utf-8"))
    for name, document in documents.items():
        text = json.dumps(document)
        # THEN no Slack token appears, and nothing sets a secret's value
        assert not SLACK_TOKEN.search(text), name
        keys = {key for key, _ in _walk(document)}
        assert not keys & {"SecretString", "GenerateSecretString", "SecretBinary"}, name
        assert not keys & {names.SLACK_SECRET_BOT_TOKEN, names.SLACK_SECRET_SIGNING_SECRET}, name
    # AND the functions' environment carries where the secret is, never what it is
    for function in resources_of_type(example.central_json, "AWS::Lambda::Function").values():
        variables = function["Properties"]["Environment"]["Variables"]
        assert not any(re.search("TOKEN|SIGNING|PASSWORD", key) for key in variables)
        secret_ref = variables[names.ENV_SLACK_SECRET_ARN]
        assert example.central_json["Resources"][secret_ref["Ref"]]["Type"] == "AWS::SecretsManager::Secret"
