"""Commands other packages add to the CLI (the ``macie_chatops.commands`` entry-point group): the sandbox's
``demo`` and ``sandbox``, found without the runtime importing the sandbox, and what the CLI says without them."""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from macie_chatops.cli import EXIT_BAD_INPUT, EXIT_FAILED, Runner, add_config_option, installed_commands, main
from macie_chatops.config import Config
from tests.conftest import ROOT

NOT_INSTALLED = "the sandbox is not installed: pip install 'macie-chatops[sandbox]'"


@dataclass
class Greeting:
    """An added command that records what it was run with."""

    help: str = "say hello to the configured teams"
    runs: list[tuple[argparse.Namespace, Config]] = field(default_factory=list)

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add_config_option(parser)
        parser.add_argument("--loud", action="store_true")

    def load(self) -> Runner:
        def run(args: argparse.Namespace, config: Config) -> int:
            self.runs.append((args, config))
            return 7

        return run


class MissingDependencies:
    help = "needs a package that is not installed"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add_config_option(parser)

    def load(self) -> Runner:
        raise ImportError("No module named 'moto'")


def test_the_installed_sandbox_provides_demo_and_sandbox() -> None:
    # GIVEN this package installed with its sandbox  WHEN the CLI reads its entry-point group
    commands = installed_commands()
    # THEN the sandbox's commands are there, with their own help
    assert {"demo", "sandbox"} <= set(commands)
    assert type(commands["demo"]).__module__ == "macie_chatops_sandbox.commands"
    assert "sandbox" in commands["demo"].help


@pytest.mark.parametrize("argv", [["demo"], ["sandbox", "replay", "tests/events/personal-review.json"], ["sandbox"]])
def test_without_the_sandbox_its_commands_say_how_to_get_it(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN no installed package adds commands  WHEN a sandbox command is run
    code = main(argv, added={})
    # THEN exit 1, and stderr says what to install; nothing on stdout
    out, err = capsys.readouterr()
    assert (code, out) == (EXIT_FAILED, "")
    assert err.startswith(NOT_INSTALLED)


def test_a_command_whose_dependencies_are_missing_says_how_to_get_them(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the sandbox's commands installed without moto  WHEN one is run
    code = main(["demo"], added={"demo": MissingDependencies()})
    # THEN exit 1, the message and the missing module
    assert code == EXIT_FAILED
    assert capsys.readouterr().err.strip() == f"{NOT_INSTALLED} (or run `make demo`) (No module named 'moto')"


def test_an_added_command_runs_with_its_arguments_and_the_loaded_config() -> None:
    # GIVEN an added command  WHEN it is run with its own option and the shipped config
    greeting = Greeting()
    code = main(["greet", "--loud", "--config", str(ROOT / "accounts.yaml")], added={"greet": greeting})
    # THEN its answer is the exit code, and it got the parsed arguments and the validated config
    assert code == 7
    ((args, config),) = greeting.runs
    assert args.loud is True
    assert "payments" in config.teams


def test_an_added_command_with_a_broken_config_exits_2_before_it_runs(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a config that does not validate
    broken = ROOT / "tests" / "events" / "not-json.json"
    greeting = Greeting()
    # WHEN an added command is run with it
    code = main(["greet", "--config", str(broken)], added={"greet": greeting})
    # THEN exit 2 with the located message, and the command never ran
    assert (code, greeting.runs) == (EXIT_BAD_INPUT, [])
    assert capsys.readouterr().err.startswith(f"{broken}:")


@pytest.mark.parametrize("command", ["validate", "--help"])
def test_the_cli_never_imports_the_sandbox_itself(command: str) -> None:
    # GIVEN a fresh interpreter  WHEN a built-in command runs, or the help lists every command
    # THEN no sandbox module was imported (the help reads only the light commands module's entry points)
    check = (
        "import sys; from macie_chatops.cli import main\n"
        f"try: main([{command!r}])\n"
        "except SystemExit: pass\n"
        "light = {'macie_chatops_sandbox', 'macie_chatops_sandbox.commands'}\n"
        "print([m for m in sys.modules if m.startswith('macie_chatops_sandbox') and m not in light])"
    )
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
