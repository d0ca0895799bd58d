"""X-Ray tracing of the handlers: Powertools' Tracer, built on a container's first invocation, and only where
tracing is on (architecture §25).

``Tracer()`` imports aws_xray_sdk and patches botocore even when it is disabled; built at import, every
container, the sandbox's and the tests' included, would pay that. Here the check comes first: with
``POWERTOOLS_TRACE_DISABLED`` (the sandbox) or outside Lambda nothing of X-Ray is imported; in Lambda the
first invocation builds the Tracer once and every invocation runs inside its ``## lambda_handler`` subsegment
(with the ``ColdStart`` and ``Service`` annotations), each AWS call a subsegment of its own. Responses are not
recorded (they carry Slack text and finding details); exceptions are.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

# AWS calls only: the Slack Web API and response_url posts go through urllib, which X-Ray does not patch.
PATCHED_MODULES: Final = ("botocore",)
_TRUTHY: Final = frozenset({"1", "true", "yes", "on", "y", "t"})

Handler = TypeVar("Handler", bound=Callable[..., Any])


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
    called as it is otherwise (the decision is the container's, made once)."""

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
            return (chosen[0] if chosen else choose())(event, context)

        return cast(Handler, run)

    return decorate


def _with_tracer(handler: Callable[..., Any], service: str) -> Callable[..., Any]:
    from aws_lambda_powertools import Tracer

    tracer = Tracer(service=service, patch_modules=PATCHED_MODULES)
    return tracer.capture_lambda_handler(handler, capture_response=False)
