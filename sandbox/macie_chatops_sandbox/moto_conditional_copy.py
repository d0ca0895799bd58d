"""S3 CopyObject's ``If-None-Match: *`` in moto, as real S3 has it.

Real S3 refuses a copy with ``If-None-Match: *`` (412) when the destination key holds an object; moto checks the
header on PutObject and CompleteMultipartUpload only, and a single CopyObject overwrites. The mover relies on
the refusal (a first attempt copies without looking at the quarantine key: docs/architecture.md §7), so the
sandbox and every test's moto server check it here, under a lock, so that two conditional copies to one key
cannot both pass the check. ``install()`` / ``uninstall()`` are reference counted (``moto_patches``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from macie_chatops_sandbox.moto_patches import Patches


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


def _apply(patches: Patches) -> None:
    from moto.s3.responses import S3Response

    patches.replace(S3Response, "copy_object", _conditional(S3Response.__dict__["copy_object"], threading.Lock()))


_PATCHES = Patches(_apply)
install = _PATCHES.install
uninstall = _PATCHES.uninstall
