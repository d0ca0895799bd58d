"""The metadata a group's page is posted with, and how a thread reply's metadata is recognised as that page's
(docs/architecture.md §22): what Slack returns is untrusted in shape."""

from __future__ import annotations

from typing import Any

import pytest

from macie_chatops.digest_messages import PAGE_EVENT_TYPE, is_page, page_metadata
from macie_chatops.groups import GroupPage

GROUP = "b" * 32
PAGE = GroupPage(group_id=GROUP, number=3, members=(), ts=None)


def test_a_page_names_its_group_and_number() -> None:
    assert page_metadata(PAGE) == {"event_type": PAGE_EVENT_TYPE, "event_payload": {"group_id": GROUP, "page": 3}}
    assert is_page(page_metadata(PAGE), PAGE)


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        "macie_chatops_page",
        {"event_type": "other_app_event", "event_payload": {"group_id": GROUP, "page": 3}},
        {"event_type": PAGE_EVENT_TYPE, "event_payload": {"group_id": "c" * 32, "page": 3}},  # another group
        {"event_type": PAGE_EVENT_TYPE, "event_payload": {"group_id": GROUP, "page": 4}},  # another page
        {"event_type": PAGE_EVENT_TYPE, "event_payload": {"group_id": GROUP, "page": "3"}},
        {"event_type": PAGE_EVENT_TYPE, "event_payload": {"group_id": GROUP, "page": 3.0}},
        {"event_type": PAGE_EVENT_TYPE, "event_payload": [GROUP, 3]},
        {"event_type": PAGE_EVENT_TYPE},
    ],
)
def test_anything_else_is_not_the_page(metadata: Any) -> None:
    assert not is_page(metadata, PAGE)


def test_true_is_not_page_one() -> None:
    first = GroupPage(group_id=GROUP, number=1, members=(), ts=None)
    assert not is_page({"event_type": PAGE_EVENT_TYPE, "event_payload": {"group_id": GROUP, "page": True}}, first)
