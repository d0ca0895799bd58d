"""X-Ray tracing of the handlers: Powertools' Tracer, built on a container's first invocation, and only where
tracing is on (architecture §25). And the garbage collector's pause during a cold start (architecture §6).

``Tracer()`` imports aws_xray_sdk and patches botocore even when it is disabled; built at import, every
container, the sandbox's and the tests' included, would pay that. Here the check comes first: with
``POWERTOOLS_TRACE_DISABLED`` (the sandbox) or outside Lambda nothing of X-Ray is imported; in Lambda the
first invocation builds the Tracer once and every invocation runs inside its ``## lambda_handler`` subsegment
(with the ``ColdStart`` and ``Service`` annotations), each AWS call a subsegment of its own. Responses are not
recorded (they carry Slack text and finding details); exceptions are.

The pause: in Lambda only, loading the handlers package stops automatic collection (``handlers/__init__.py``), and
the end of the container's first invocation, returned or raised, freezes what the cold start built
(``gc.freeze``: no later collection walks it again) and collects again from there. A cold start's full passes walk
every object the libraries and our model classes created while it makes almost no cyclic garbage. Outside Lambda (the
sandbox, the CLI, the tests) Python's collector is left as it is.
"""

from __future__ import annotations

import functools
import gc
import os
import threading
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

# AWS calls only: the Slack Web API and response_url posts go through urllib, which X-Ray does not patch.
PATCHED_MODULES: Final = ("botocore",)
_TRUTHY: Final = frozenset({"1", "true", "yes", "on", "y", "t"})

Handler = TypeVar("Handler", bound=Callable[..., Any])

# Set by the Lambda runtime (and its emulators) only: the sandbox, the CLI and the tests never set it.
LAMBDA_FUNCTION_NAME_ENV: Final = "AWS_LAMBDA_FUNCTION_NAME"
_pause_lock = threading.Lock()
_collector_paused = False  # by pause_collector_for_cold_start, until end_cold_start


def pause_collector_for_cold_start() -> bool:
    """In Lambda, stop automatic garbage collection until :func:`end_cold_start`; whether it was stopped here.

    Nothing changes outside Lambda, nor when the collector is already off (whoever turned it off keeps it so: the
    cold start's end will not turn it on)."""
    global _collector_paused
    if not os.environ.get(LAMBDA_FUNCTION_NAME_ENV):
        return False
    with _pause_lock:
        if _collector_paused or not gc.isenabled():
            return False
        gc.disable()
        _collector_paused = True
        return True


def end_cold_start() -> None:
    """After a container's first invocation: when the collector was paused for the cold start, move every object
    it built to the permanent generation (``gc.freeze``) and collect automatically again. Once; a no-op after."""
    global _collector_paused
    if not _collector_paused:  # every warm invocation: one read
        return
    with _pause_lock:
        if not _collector_paused:  # another thread's first invocation ended it
            return
        gc.freeze()
        gc.enable()
        _collector_paused = False


def tracing_enabled() -> bool:
    """Whether Powertools' Tracer would trace here: not disabled by ``POWERTOOLS_TRACE_DISABLED``, inside
    Lambda (``LAMBDA_TASK_ROOT``) and not in SAM's or Chalice's local emulators (Powertools' own rules)."""
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in _TRUTHY:
        return False
    if os.environ.get("AWS_SAM_LOCAL") or os.environ.get("AWS_CHALICE_CLI_MODE"):
        return False
    return bool(os.environ.get("LAMBDA_TASK_ROOT"))


def traced(service: str) -> Callable[[Handler], Handler]:
    """Decorate a Lambda handler: traced as ``service`` when :func:`tracing_enabled` on its first invocation;
    called as it is otherwise (the decision is the container's, made once). Every invocation ends with
    :func:`end_cold_start`, whatever the handler did: the first one ends the collector's pause."""

    def decorate(handler: Handler) -> Handler:
        lock = threading.Lock()
        chosen: list[Callable[..., Any]] = []

        def choose() -> Callable[..., Any]:
            with lock:
                if not chosen:
                    chosen.append(_with_tracer(handler, service) if tracing_enabled() else handler)
                return chosen[0]

        @functools.wraps(handler)
        def run(event: Any, context: Any) -> Any:
            try:
                return (chosen[0] if chosen else choose())(event, context)
            finally:
                end_cold_start()

        return cast(Handler, run)

    return decorate


def _with_tracer(handler: Callable[..., Any], service: str) -> Callable[..., Any]:
    from aws_lambda_powertools import Tracer

    tracer = Tracer(service=service, patch_modules=PATCHED_MODULES)
    return tracer.capture_lambda_handler(handler, capture_response=False)
