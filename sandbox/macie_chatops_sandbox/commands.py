"""The sandbox's operator commands behind ``macie-chatops sandbox replay|serve`` (and ``demo``).

``macie_chatops.cli`` parses the arguments and calls these; they own the streams: stdout carries only the
contract's JSON lines, while the handlers' own logs (Powertools writes JSON lines to stdout) go to stderr.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TextIO

from macie_chatops.config import Config
from macie_chatops_sandbox.replay import ERROR, Mode, error_line, read_files, replay, shown_path
from macie_chatops_sandbox.sandbox import Sandbox, SandboxSettings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


@contextlib.contextmanager
def handler_logs_to(stream: TextIO) -> Iterator[TextIO]:
    """Point ``sys.stdout`` at ``stream`` while the sandbox runs; yield the real stdout for our own output.

    Powertools' Logger binds ``sys.stdout`` when a handler module is imported (at sandbox start), so the
    handlers' JSON logs follow ``stream`` for as long as this process lives.
    """
    real = sys.stdout
    with contextlib.redirect_stdout(stream):
        yield real


def replay_command(config: Config, files: list[str], mode: Mode, *, timeout_s: float = 120.0) -> int:
    """One JSON line per file, in order; exit 2 when any file is an ERROR, 1 when the sandbox itself failed."""
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
            with Sandbox(config, SandboxSettings(log_level="WARNING")) as sandbox:
                lines = replay(sandbox, items, mode, timeout_s=timeout_s)
        except (TimeoutError, RuntimeError) as exc:
            print(f"sandbox replay: {exc}", file=sys.stderr)
            return EXIT_FAILED
        for line in lines:
            print(json.dumps(line, ensure_ascii=False), file=out, flush=True)
    return EXIT_BAD_INPUT if any(line["state"] == ERROR for line in lines) else EXIT_OK


def serve_command(config: Config) -> int:
    """Run until SIGINT/SIGTERM; the first stdout line says where everything is."""
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
