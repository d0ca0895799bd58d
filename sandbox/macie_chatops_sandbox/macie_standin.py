"""Macie's findings API on the sandbox's AWS endpoint: moto has no ``ListFindings`` / ``GetFindings``.

``install()`` puts a small WSGI layer in front of moto's server application (every server in the process, started
or not, as moto's own state is process-wide): a SigV4-signed ``POST /findings`` or ``POST /findings/describe`` for
the ``macie2`` service is answered here, everything else goes to moto unchanged, and moto's reset clears the
findings too. The caller's account is the one moto gives its access key, so boto3's real ``macie2`` client works
as any account would. :data:`STANDIN` holds the findings per account and region, as the sandbox publishes them
(each finding is the ``detail`` of its event: GetFindings returns the same shape).

What the API does and the stand-in does too: ``findingCriteria`` with ``eq``, ``neq``, ``eqExactMatch`` on text
and boolean fields and ``gt``/``gte``/``lt``/``lte`` on times (epoch milliseconds) and numbers, for the fields
in :data:`CRITERION_FIELDS`; ``sortCriteria`` on any of those fields (ties by finding id); ``maxResults`` 1-50
(default 50); an opaque ``nextToken`` bound to its query; ``GetFindings`` for 1-50 ids, unknown ids left out.
Anything else is a ``ValidationException``, as Macie answers a malformed request. ``fail_next`` makes the next
call of an operation fail with an error of Macie's (tests of failures and retries).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from macie_chatops_sandbox.moto_patches import Patches

MAX_RESULTS: Final = 50
# Fields a criterion or a sort may name (dotted paths into the finding), and how their values compare.
TIME_FIELDS: Final = frozenset({"createdAt", "updatedAt"})
NUMBER_FIELDS: Final = frozenset({"severity.score", "count"})
TEXT_FIELDS: Final = frozenset(
    {
        "id",
        "accountId",
        "region",
        "type",
        "category",
        "archived",
        "sample",
        "severity.description",
        "resourcesAffected.s3Bucket.name",
        "resourcesAffected.s3Object.key",
        "classificationDetails.jobId",
    }
)
CRITERION_FIELDS: Final = TIME_FIELDS | NUMBER_FIELDS | TEXT_FIELDS
_OPERATIONS: Final = {"/findings": "ListFindings", "/findings/describe": "GetFindings"}
_SCOPE: Final = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")


class MacieError(Exception):
    """An error Macie would answer with (its code names the exception type; 4xx or 5xx)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def _value(finding: Mapping[str, Any], path: str) -> Any:
    value: Any = finding
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _millis(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _comparable(finding: Mapping[str, Any], path: str) -> Any:
    """The field's value as criteria compare it: epoch ms, a number, or text (booleans as ``true``/``false``)."""
    value = _value(finding, path)
    if path in TIME_FIELDS:
        return _millis(value)
    if path in NUMBER_FIELDS:
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else None


def _matches(finding: Mapping[str, Any], path: str, condition: Mapping[str, Any]) -> bool:
    value = _comparable(finding, path)
    for operator, operand in condition.items():
        if operator in ("eq", "eqExactMatch") and value not in operand:
            return False
        if operator == "neq" and value in operand:
            return False
        if operator in ("gt", "gte", "lt", "lte"):
            if value is None or isinstance(value, str):
                return False
            if not {"gt": value > operand, "gte": value >= operand, "lt": value < operand, "lte": value <= operand}[
                operator
            ]:
                return False
    return True


def _check_criteria(criteria: Any) -> dict[str, dict[str, Any]]:
    if criteria is None:
        return {}
    criterion = criteria.get("criterion", {}) if isinstance(criteria, dict) else None
    if not isinstance(criterion, dict):
        raise MacieError("ValidationException", "findingCriteria.criterion must be a map")
    for path, condition in criterion.items():
        if path not in CRITERION_FIELDS:
            raise MacieError("ValidationException", f"the Macie stand-in cannot filter on {path!r}")
        if not isinstance(condition, dict) or not condition:
            raise MacieError("ValidationException", f"the criterion on {path!r} has no condition")
        for operator, operand in condition.items():
            if operator in ("eq", "neq", "eqExactMatch"):
                if not isinstance(operand, list) or not all(isinstance(v, str) for v in operand):
                    raise MacieError("ValidationException", f"{path}.{operator} must be a list of strings")
            elif operator in ("gt", "gte", "lt", "lte"):
                if path in TEXT_FIELDS or not isinstance(operand, int) or isinstance(operand, bool):
                    raise MacieError("ValidationException", f"{path}.{operator} needs a time or number field")
            else:
                raise MacieError("ValidationException", f"unknown operator {operator!r} in the criterion on {path!r}")
    return criterion


def _sort_key(sort: Any) -> tuple[Callable[[Mapping[str, Any]], Any], bool]:
    """A key function (missing values last when ascending) and whether to reverse."""
    if sort is None:
        sort = {"attributeName": "createdAt", "orderBy": "ASC"}
    path, order = sort.get("attributeName"), sort.get("orderBy", "ASC")
    if path not in CRITERION_FIELDS or order not in ("ASC", "DESC"):
        raise MacieError("ValidationException", f"cannot sort by {path!r} {order!r}")

    def key(finding: Mapping[str, Any]) -> Any:
        value = _comparable(finding, path)
        return (value is None, value if value is not None else 0, str(finding.get("id", "")))

    return key, order == "DESC"


@dataclass(frozen=True)
class _Failure:
    code: str
    message: str
    status: int


class MacieStandIn:
    """The findings of every account and region the sandbox published (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._findings: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self.calls: dict[str, int] = {}

    def put(self, account_id: str, region: str, finding: Mapping[str, Any]) -> None:
        """Hold ``finding`` (an event's ``detail``) for ``account_id`` in ``region``; a later one with its id
        replaces it, as Macie updates a finding in place."""
        with self._lock:
            self._findings.setdefault((account_id, region), {})[str(finding["id"])] = copy.deepcopy(dict(finding))

    def findings(self, account_id: str, region: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(f) for f in self._findings.get((account_id, region), {}).values()]

    def clear(self) -> None:
        with self._lock:
            self._findings.clear()
            self._failures.clear()
            self.calls.clear()

    def fail_next(
        self, operation: str, *, code: str = "InternalServerException", status: int = 500, times: int = 1
    ) -> None:
        """The next ``times`` calls of ``operation`` (``ListFindings`` / ``GetFindings``) fail with ``code``."""
        if operation not in _OPERATIONS.values():
            raise ValueError(f"unknown operation {operation!r}")
        with self._lock:
            failure = _Failure(code, f"injected by the Macie stand-in: {code}", status)
            self._failures.setdefault(operation, []).extend([failure] * times)

    # -- the API -----------------------------------------------------------------------------------------

    def call(self, operation: str, account_id: str, region: str, request: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.calls[operation] = self.calls.get(operation, 0) + 1
            pending = self._failures.get(operation)
            if pending:
                failure = pending.pop(0)
                raise MacieError(failure.code, failure.message, failure.status)
            held = [copy.deepcopy(f) for f in self._findings.get((account_id, region), {}).values()]
        if operation == "ListFindings":
            return self._list(held, request)
        return self._get(held, request)

    @staticmethod
    def _list(held: Iterable[dict[str, Any]], request: Mapping[str, Any]) -> dict[str, Any]:
        criterion = _check_criteria(request.get("findingCriteria"))
        key, descending = _sort_key(request.get("sortCriteria"))
        max_results = request.get("maxResults", MAX_RESULTS)
        if not isinstance(max_results, int) or not 1 <= max_results <= MAX_RESULTS:
            raise MacieError("ValidationException", f"maxResults must be 1 to {MAX_RESULTS}")
        query = hashlib.sha256(
            json.dumps([request.get("findingCriteria"), request.get("sortCriteria")], sort_keys=True).encode()
        ).hexdigest()[:16]
        offset = _offset(request.get("nextToken"), query)
        selected = sorted(
            (f for f in held if all(_matches(f, path, c) for path, c in criterion.items())), key=key, reverse=descending
        )
        page = selected[offset : offset + max_results]
        answer: dict[str, Any] = {"findingIds": [f["id"] for f in page]}
        if offset + max_results < len(selected):
            token = json.dumps({"offset": offset + max_results, "query": query}).encode()
            answer["nextToken"] = base64.urlsafe_b64encode(token).decode()
        return answer

    @staticmethod
    def _get(held: Iterable[dict[str, Any]], request: Mapping[str, Any]) -> dict[str, Any]:
        ids = request.get("findingIds")
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_RESULTS:
            raise MacieError("ValidationException", f"findingIds must list 1 to {MAX_RESULTS} ids")
        wanted = set(ids)
        found = [f for f in held if f.get("id") in wanted]
        if request.get("sortCriteria") is not None:
            key, descending = _sort_key(request.get("sortCriteria"))
            found.sort(key=key, reverse=descending)
        return {"findings": found}


def _offset(token: Any, query: str) -> int:
    if token is None:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(str(token).encode()))
        if data["query"] != query or not isinstance(data["offset"], int) or data["offset"] < 0:
            raise ValueError("another query's token")
        return int(data["offset"])
    except (ValueError, KeyError, TypeError):
        raise MacieError("ValidationException", "the nextToken is not valid for this request") from None


STANDIN: Final = MacieStandIn()  # one per process, like moto's backends


# --------------------------------------------------------------------------------------------------------
# The WSGI layer in front of moto's server application
# --------------------------------------------------------------------------------------------------------


def _respond(start_response: Any, status: int, body: dict[str, Any], headers: list[tuple[str, str]]) -> list[bytes]:
    data = json.dumps(body).encode()
    reason = {200: "OK", 400: "Bad Request", 403: "Forbidden", 429: "Too Many Requests"}.get(status, "Error")
    start_response(
        f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *headers]
    )
    return [data]


def _serve(environ: dict[str, Any], start_response: Any, operation: str, access_key: str, region: str) -> list[bytes]:
    from moto.iam.models import get_account_id_from

    account_id = get_account_id_from(access_key)
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b"{}"
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            raise MacieError("ValidationException", "the request body is not JSON") from None
        if not isinstance(request, dict):
            raise MacieError("ValidationException", "the request body is not a JSON object")
        return _respond(start_response, 200, STANDIN.call(operation, account_id, region, request), [])
    except MacieError as exc:
        return _respond(start_response, exc.status, {"message": str(exc)}, [("x-amzn-ErrorType", exc.code)])


def _in_front_of(original: Callable[..., Any]) -> Callable[..., Any]:
    def __call__(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == "/moto-api/reset":
            STANDIN.clear()
        elif path in _OPERATIONS and environ.get("REQUEST_METHOD") == "POST":
            scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
            if scope is not None and scope.group(3) == "macie2":
                return _serve(environ, start_response, _OPERATIONS[path], scope.group(1), scope.group(2))
        return original(self, environ, start_response)

    return __call__


def _apply(patches: Patches) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    patches.on_uninstall(STANDIN.clear)  # last, after the layer is gone
    original = DomainDispatcherApplication.__dict__["__call__"]
    patches.replace(DomainDispatcherApplication, "__call__", _in_front_of(original))


# Serve Macie's findings API from every moto server of this process (reference counted: ``moto_patches``).
_PATCHES = Patches(_apply)
install = _PATCHES.install
uninstall = _PATCHES.uninstall
