"""moto's server on loopback as the sandbox's AWS endpoint, and boto3 sessions that act as one account.

moto attributes every call to an account by the caller's credentials: credentials returned by
``sts:AssumeRole`` into ``arn:aws:iam::<account>:role/...`` act as ``<account>``. The role need not exist.

moto keeps its state in module-level backends, shared by every moto server in the process; the server is
therefore reset when it starts and when it stops, and only one sandbox may run per process at a time.
While it runs, moto's DynamoDB and SQS calls are made atomic (``moto_atomic``), as the real services are, and
costs only the emulator has are taken out without changing any response (``moto_fast``), and Macie's findings
API, which moto lacks, is served in front of it (``macie_standin``).
"""

from __future__ import annotations

import logging
import threading
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.config import Config as BotoConfig

from macie_chatops_sandbox import macie_standin, moto_atomic, moto_conditional_copy, moto_fast

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

# The identity the sandbox assumes in an account to provision it or to act as it (put events, upload).
SANDBOX_ROLE_NAME: Final = "macie-chatops-sandbox"
# moto accepts any static key pair; it maps it to its default account, which the sandbox never uses.
_BOOTSTRAP_KEY: Final = "testing"

# Retries are the pipeline's business (SQS redelivery, Slack back-off), not boto3's: a sandbox call that
# fails should fail at once so a broken endpoint shows up as an error, not as a slow test.
CLIENT_CONFIG: Final = BotoConfig(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30)


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str

    def as_env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


class MotoServer:
    """One ThreadedMotoServer on 127.0.0.1 with a free port; reset on start and stop (no leftovers)."""

    def __init__(self) -> None:
        self._server: ThreadedMotoServer | None = None
        self.endpoint = ""

    def start(self) -> str:
        from moto.server import ThreadedMotoServer

        # Werkzeug logs every request at INFO; the sandbox's output is the pipeline's, not the server's.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        moto_atomic.install()
        moto_fast.install()
        moto_conditional_copy.install()  # S3 CopyObject's If-None-Match, which moto ignores
        macie_standin.install()  # Macie's findings API, which moto does not have
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        self._server = server
        host, port = server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.reset()
        return self.endpoint

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback http)
            if response.status != 200:
                raise RuntimeError(f"moto reset failed: HTTP {response.status}")

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        try:
            self.reset()
        finally:
            server.stop()
            macie_standin.uninstall()
            moto_conditional_copy.uninstall()
            moto_fast.uninstall()
            moto_atomic.uninstall()


@dataclass
class Accounts:
    """boto3 clients that act as a given account, against one moto endpoint.

    Clients are cached per (service, account, region) and all come from one boto3 session, so the service
    models are loaded once (a fresh session per client costs ~0.1 s of JSON parsing each).
    """

    endpoint: str
    home_region: str
    _credentials: dict[str, Credentials] = field(default_factory=dict)
    _clients: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    _session: boto3.Session = field(default_factory=boto3.Session)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def credentials(self, account_id: str) -> Credentials:
        with self._lock:
            cached = self._credentials.get(account_id)
            if cached is not None:
                return cached
            sts = self._session.client(
                "sts",
                region_name=self.home_region,
                endpoint_url=self.endpoint,
                aws_access_key_id=_BOOTSTRAP_KEY,
                aws_secret_access_key=_BOOTSTRAP_KEY,
                config=CLIENT_CONFIG,
            )
            issued = sts.assume_role(
                RoleArn=f"arn:aws:iam::{account_id}:role/{SANDBOX_ROLE_NAME}",
                RoleSessionName="macie-chatops-sandbox",
                DurationSeconds=43200,
            )["Credentials"]
            creds = Credentials(issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"])
            self._credentials[account_id] = creds
            return creds

    def client(self, service: str, account_id: str, region: str | None = None) -> Any:
        """A client for ``service`` acting as ``account_id`` (typed ``Any``: callers annotate with stubs)."""
        key = (service, account_id, region or self.home_region)
        with self._lock:  # botocore sessions are not safe for concurrent client creation
            client = self._clients.get(key)
            if client is None:
                creds = self.credentials(account_id)
                client = self._session.client(  # type: ignore[call-overload]
                    service,
                    region_name=key[2],
                    endpoint_url=self.endpoint,
                    aws_access_key_id=creds.access_key_id,
                    aws_secret_access_key=creds.secret_access_key,
                    aws_session_token=creds.session_token,
                    config=CLIENT_CONFIG,
                )
                self._clients[key] = client
            return client
