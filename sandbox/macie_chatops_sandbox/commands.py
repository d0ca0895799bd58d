"""The sandbox's CLI commands, registered in the ``macie_chatops.commands`` entry-point group: ``demo``,
``sandbox replay`` and ``sandbox serve``.

This module stays light (the CLI loads it to build its parser); what the commands run is imported by their
``load``. They own the streams: stdout carries only the contract's JSON lines, while the handlers' own logs
(Powertools writes JSON lines to stdout) go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Final, TextIO

from macie_chatops.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, Runner, add_config_option

if TYPE_CHECKING:
    from macie_chatops.config import Config
    from macie_chatops_sandbox.replay import Mode


class DemoCommand:
    help: Final = "the guided end-to-end story in the local sandbox"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add_config_option(parser)

    def load(self) -> Runner:
        from macie_chatops_sandbox.demo import run_demo

        return lambda args, config: run_demo(config)


class SandboxCommand:
    help: Final = "the whole pipeline on this machine (moto + a Slack stand-in)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="sandbox_command", required=True, metavar="SANDBOX_COMMAND")
        replay = add_config_option(
            sub.add_parser(
                "replay", help="run event files through a fresh sandbox; one JSON line per event with its final state"
            )
        )
        decision = replay.add_mutually_exclusive_group()
        decision.add_argument(
            "--approve", action="store_true", help="click Remediate on every review message (the default)"
        )
        decision.add_argument("--dismiss", action="store_true", help="click Dismiss on every review message")
        replay.add_argument(
            "--lost",
            action="store_true",
            help="Macie holds each finding but its event is dropped; one reconciler run must recover them all",
        )
        replay.add_argument("events", nargs="+", metavar="EVENT.json")
        add_config_option(
            sub.add_parser("serve", help="keep a sandbox running; first stdout line: where to click (Ctrl-C stops it)")
        )

    def load(self) -> Runner:
        import macie_chatops_sandbox.sandbox  # noqa: F401 (moto and the sandbox: missing dependencies show here)

        return self.run

    @staticmethod
    def run(args: argparse.Namespace, config: Config) -> int:
        if args.sandbox_command == "replay":
            return replay_command(config, args.events, "dismiss" if args.dismiss else "approve", lost=args.lost)
        return serve_command(config)


DEMO: Final = DemoCommand()
SANDBOX: Final = SandboxCommand()


@contextlib.contextmanager
def handler_logs_to(stream: TextIO) -> Iterator[TextIO]:
    """Point ``sys.stdout`` at ``stream`` while the sandbox runs; yield the real stdout for our own output.

    Powertools' Logger binds ``sys.stdout`` when a handler module is imported (at sandbox start), so the
    handlers' JSON logs follow ``stream`` for as long as this process lives.
    """
    real = sys.stdout
    with contextlib.redirect_stdout(stream):
        yield real


def replay_command(
    config: Config, files: list[str], mode: Mode, *, timeout_s: float = 120.0, lost: bool = False
) -> int:
    """One JSON line per file, in order; exit 2 when any file is an ERROR, 1 when the sandbox itself failed."""
    from macie_chatops_sandbox.replay import ERROR, error_line, read_files, replay, shown_path
    from macie_chatops_sandbox.sandbox import Sandbox, SandboxSettings

    items = read_files(files, config)
    for item in items:
        if item.error is not None:
            print(f"{shown_path(item.file)}: {item.error}", file=sys.stderr)
    if all(item.error is not None for item in items):  # nothing to run: no sandbox needed
        for item in items:
            print(json.dumps(error_line(item), ensure_ascii=False), flush=True)
        return EXIT_BAD_INPUT
    with handler_logs_to(sys.stderr) as out:
        try:
            # --dismiss goes through the dismissal form, as a person would (it leaves every line unchanged).
            with Sandbox(config, SandboxSettings(log_level="WARNING")) as sandbox:
                lines = replay(sandbox, items, mode, timeout_s=timeout_s, lost=lost)
        except (TimeoutError, RuntimeError) as exc:
            print(f"sandbox replay: {exc}", file=sys.stderr)
            return EXIT_FAILED
        for line in lines:
            print(json.dumps(line, ensure_ascii=False), file=out, flush=True)
    return EXIT_BAD_INPUT if any(line["state"] == ERROR for line in lines) else EXIT_OK


def serve_command(config: Config) -> int:
    """Run until SIGINT/SIGTERM; the first stdout line says where everything is."""
    from macie_chatops_sandbox.sandbox import Sandbox, SandboxSettings

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with handler_logs_to(sys.stderr) as out, Sandbox(config, SandboxSettings(log_level="INFO")) as sandbox:
            ready = {
                "interaction_url": sandbox.interaction_url,
                "slack_url": sandbox.slack.base_url,
                "aws_endpoint": sandbox.aws_endpoint,
                "signing_secret": sandbox.secret.signing_secret,
                # Where a tool checks outcomes: the state table, in the security account (assume any role in it
                # at aws_endpoint), in the home region.
                "state_table": sandbox.provisioned.table_name,
                "security_account": sandbox.security_account,
                "region": sandbox.home_region,
            }
            print(json.dumps(ready), file=out, flush=True)
            print(
                f"sandbox running: security account {sandbox.security_account} ({sandbox.home_region}); "
                f"put Macie events on a member account's default bus (assume any role in it at {sandbox.aws_endpoint}) "
                "and click with signed requests to interaction_url. Ctrl-C stops it.",
                file=sys.stderr,
                flush=True,
            )
            while not stop.wait(0.5):
                pass
        print("sandbox stopped", file=sys.stderr)
        return EXIT_OK
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
