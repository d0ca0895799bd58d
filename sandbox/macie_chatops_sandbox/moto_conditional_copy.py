"""S3 CopyObject's ``If-None-Match: *`` in moto, as real S3 has it.

Real S3 refuses a copy with ``If-None-Match: *`` (412) when the destination key holds an object; moto checks the
header on PutObject and CompleteMultipartUpload only, and a single CopyObject overwrites. The mover relies on
the refusal (a first attempt copies without looking at the quarantine key: docs/architecture.md §7), so the
sandbox and every test's moto server check it here, under a lock, so that two conditional copies to one key
cannot both pass the check. ``install()`` / ``uninstall()`` are reference counted and restore the original.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

_state_lock = threading.Lock()
_installs = 0
_original: Any = None


def _conditional(copy_object: Callable[..., Any], lock: threading.Lock) -> Callable[..., Any]:
    """S3Response.copy_object, refusing (412) when ``If-None-Match: *`` and the destination key holds an object."""

    @functools.wraps(copy_object)
    def copy_unless_taken(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.headers.get("If-None-Match") != "*":
            return copy_object(self, *args, **kwargs)
        from moto.s3.exceptions import PreconditionFailed

        with lock:
            if self.backend.get_object(self.bucket_name, self.parse_key_name()) is not None:
                raise PreconditionFailed("If-None-Match")
            return copy_object(self, *args, **kwargs)

    return copy_unless_taken


def install() -> None:
    global _installs, _original
    with _state_lock:
        _installs += 1
        if _installs > 1:
            return
        from moto.s3.responses import S3Response

        _original = S3Response.__dict__["copy_object"]
        S3Response.copy_object = _conditional(_original, threading.Lock())  # type: ignore[method-assign]


def uninstall() -> None:
    global _installs, _original
    with _state_lock:
        if _installs == 0:
            return
        _installs -= 1
        if _installs:
            return
        from moto.s3.responses import S3Response

        S3Response.copy_object = _original  # type: ignore[method-assign]
        _original = None
