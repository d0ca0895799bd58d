"""How the handlers get their approval signer and verifier (docs/architecture.md §23): the key from the environment,
a handler that signs or verifies refusing to run without it, and the KMS client built only when first used."""

from __future__ import annotations

import pytest

from macie_chatops import names
from macie_chatops.handlers._root import AwsTimeouts, ContainerCache, Settings, _LazyClient

SETTINGS = Settings("table", "secret", "", None, None, "http://127.0.0.1:1", "us-east-1")
TIMEOUTS = AwsTimeouts(connect_s=1, read_s=1)


def test_without_the_approval_key_in_the_environment_no_signer_or_verifier_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(names.ENV_APPROVAL_KEY_ID, raising=False)
    cache = ContainerCache()
    with pytest.raises(RuntimeError, match=f"environment variable not set: {names.ENV_APPROVAL_KEY_ID}"):
        cache.approval_signer(SETTINGS, TIMEOUTS)
    with pytest.raises(RuntimeError, match=names.ENV_APPROVAL_KEY_ID):
        cache.approval_verifier(SETTINGS, TIMEOUTS)


def test_the_signer_and_verifier_use_the_key_the_environment_names_and_are_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = "arn:aws:kms:us-east-1:210987654321:key/approvals"
    monkeypatch.setenv(names.ENV_APPROVAL_KEY_ID, key)
    cache = ContainerCache()
    signer = cache.approval_signer(SETTINGS, TIMEOUTS)
    verifier = cache.approval_verifier(SETTINGS, TIMEOUTS)
    assert (signer.key_id, verifier.key_id) == (key, key)
    assert cache.approval_signer(SETTINGS, TIMEOUTS) is signer  # one per container


def test_the_kms_client_is_built_at_its_first_call_only() -> None:
    built: list[str] = []

    class Client:
        def generate_mac(self) -> str:
            return "mac"

    def build() -> Client:
        built.append("kms")
        return Client()

    lazy = _LazyClient(build)
    assert built == []
    assert lazy.generate_mac() == "mac" and built == ["kms"]
