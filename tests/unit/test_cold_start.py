"""What a handler's cold start does not build (docs/architecture.md §6), checked in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def fresh(script: str) -> list[str]:
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()


def test_importing_the_store_builds_no_event_model_schema() -> None:
    # GIVEN a fresh interpreter WHEN a handler that never parses an event imports the store (every handler does)
    out = fresh(
        "import macie_chatops.store\n"
        "from macie_chatops.finding import FindingDetail, MacieEvent\n"
        "print(FindingDetail.__pydantic_complete__, MacieEvent.__pydantic_complete__)\n"
    )
    # THEN the event models exist but have not built their validation schemas
    assert out == ["False", "False"]


def test_the_first_parse_builds_them_and_parses() -> None:
    # GIVEN a fresh interpreter WHEN the first event is parsed THEN it parses, and the schemas are built then
    out = fresh(
        "from pathlib import Path\n"
        "from macie_chatops.finding import Finding, MacieEvent, parse_event\n"
        "parsed = parse_event(Path('tests/events/personal-review.json').read_text())\n"
        "print(isinstance(parsed, Finding), MacieEvent.__pydantic_complete__)\n"
    )
    assert out == ["True", "True"]


def loaded(imports: str, *modules: str) -> list[str]:
    """Which of ``modules`` a fresh interpreter holds after running ``imports``."""
    return fresh(f"import sys\n{imports}\nprint(' '.join(m for m in {modules!r} if m in sys.modules) or '-')\n")


PYDANTIC_AND_MODELS = ("pydantic", "macie_chatops.config", "macie_chatops.finding", "macie_chatops.decision")


def test_the_store_imports_no_pydantic_and_no_model() -> None:
    # GIVEN a fresh interpreter WHEN the store and the group store are imported (every handler's first record)
    out = loaded("import macie_chatops.store, macie_chatops.group_store", *PYDANTIC_AND_MODELS)
    # THEN neither pydantic nor the config, event or decision modules are loaded: the store needs plain values only
    assert out == ["-"]


def test_the_config_still_names_the_vocabulary_it_shares_with_the_store() -> None:
    # GIVEN the plain vocabulary apart from the config models WHEN read through either module THEN it is one object
    from macie_chatops import config, vocabulary

    assert config.Action is vocabulary.Action and config.Severity is vocabulary.Severity
    assert config.PUBLIC_ACCESS_FIX_TYPES is vocabulary.PUBLIC_ACCESS_FIX_TYPES


def test_a_quiet_sweep_and_the_security_hub_updater_import_no_pydantic() -> None:
    # GIVEN a fresh interpreter WHEN the sweeper's and the Security Hub updater's first invocation imports are made
    # (handlers/sweeper.py and handlers/security_hub.py: the use case, the job queue, the store, approvals, groups)
    out = loaded(
        "import macie_chatops.handlers.sweeper, macie_chatops.sweeper, macie_chatops.job_queue\n"
        "import macie_chatops.handlers.security_hub, macie_chatops.security_hub\n"
        "import macie_chatops.store, macie_chatops.approvals, macie_chatops.group_store",
        *PYDANTIC_AND_MODELS,
        "macie_chatops.jobs",
    )
    # THEN pydantic is not loaded: the job model loads only when the sweeper sends a job
    assert out == ["-"]


def test_the_sweeper_loads_the_job_model_when_it_builds_a_job() -> None:
    # GIVEN a fresh interpreter WHEN the sweeper builds a job THEN it is the validated model, loaded then
    out = loaded(
        "from datetime import UTC, datetime\n"
        "from types import SimpleNamespace\n"
        "from macie_chatops.sweeper import _job\n"
        "job = _job(SimpleNamespace(finding_id='f1', approver=None), datetime(2026, 1, 1, tzinfo=UTC))\n"
        "print(type(job).__name__, job.requested_by)",
        "macie_chatops.jobs",
    )
    assert out == ["RemediationJob", "auto", "macie_chatops.jobs"]


def test_the_reconciler_imports_no_event_model() -> None:
    # GIVEN a fresh interpreter WHEN the reconciler is imported THEN the event models are not (it checks ids only)
    assert loaded("import macie_chatops.reconciler", "macie_chatops.finding") == ["-"]


def test_a_single_click_dispatch_imports_neither_the_forms_nor_the_groups() -> None:
    # GIVEN a fresh interpreter and a block_actions payload that is no group click (no dependency is used: the click's
    # strict reading refuses it before anything is read; a real click is tests/functional/test_cold_click.py)
    out = loaded(
        "import json\n"
        "from types import SimpleNamespace\n"
        "from urllib.parse import urlencode\n"
        "from macie_chatops.interaction import handle_interaction\n"
        "payload = {'type': 'block_actions', 'actions': [{'action_id': 'not.ours', 'value': 'x'}]}\n"
        "body = urlencode({'payload': json.dumps(payload)}).encode()\n"
        "answer = handle_interaction(body, SimpleNamespace(modals=object(), exemptions=object()))\n"
        "print(answer.status)",
        "macie_chatops.bulk",
        "macie_chatops.dismissal",
    )
    # WHEN it is dispatched THEN it reaches the click's own reading (refused), and bulk/dismissal were never imported
    assert out == ["400", "-"]


def test_the_intake_and_the_message_builders_load_neither_the_move_plan_nor_the_policy_fix() -> None:
    # GIVEN a fresh interpreter WHEN the intake and every message builder are imported (a posting handler's first
    # record: the finding handler, a click, the reminders, the digest writer)
    out = loaded(
        "import macie_chatops.intake, macie_chatops.slack_messages, macie_chatops.digest_messages\n"
        "import macie_chatops.interaction, macie_chatops.reminders, macie_chatops.digest_writer",
        "macie_chatops.quarantine_plan",
        "macie_chatops.policy_messages",
        "macie_chatops.public_access",
    )
    # THEN the mover's facts load only where an outcome is rendered, the policy fix's modules only for a policy finding
    assert out == ["-"]


def test_the_digest_writer_loads_no_config() -> None:
    # GIVEN a fresh interpreter WHEN the digest writer's first record's imports are made (handlers/digests.py: the
    # use case, the store, the group store, the Slack client)
    out = loaded(
        "import macie_chatops.handlers.digests, macie_chatops.digest_writer, macie_chatops.digest_messages\n"
        "import macie_chatops.store, macie_chatops.group_store, macie_chatops.slack_client",
        "macie_chatops.config",
        "macie_chatops.finding",
        "macie_chatops.decision",
    )
    # THEN the config's models are not loaded: the digest writer reads no config (its queue body is its only model)
    assert out == ["-"]


def test_the_reconciler_loads_no_pydantic(tmp_path: Path) -> None:
    # GIVEN a fresh interpreter and the bundle of the shipped accounts.yaml
    from macie_chatops.config import load_config

    config = load_config(ROOT / "accounts.yaml")
    bundle = tmp_path / "config.json"
    bundle.write_text(config.to_json(), encoding="utf-8")
    # WHEN the reconciler's first run imports what it uses and reads its settings (handlers/reconciler.py)
    out = loaded(
        f"import os; os.environ['MACIE_CHATOPS_CONFIG_JSON'] = {str(bundle)!r}\n"
        "import macie_chatops.handlers.reconciler, macie_chatops.reconciler, macie_chatops.store\n"
        "from macie_chatops.bundled_config import reconciler_settings\n"
        "print(','.join(reconciler_settings().regions))",
        *PYDANTIC_AND_MODELS,
    )
    # THEN it has the config's regions, and neither pydantic nor the config's models were loaded
    assert out == [",".join(config.regions), "-"]


def test_the_reminders_load_no_pydantic(tmp_path: Path) -> None:
    # GIVEN a fresh interpreter and the bundle of the shipped accounts.yaml
    from macie_chatops.config import load_config

    config = load_config(ROOT / "accounts.yaml")
    bundle = tmp_path / "config.json"
    bundle.write_text(config.to_json(), encoding="utf-8")
    # WHEN the reminders' first run imports what it uses (handlers/reminders.py, the message builders) and reads its
    # part of the config
    out = loaded(
        f"import os; os.environ['MACIE_CHATOPS_CONFIG_JSON'] = {str(bundle)!r}\n"
        "import macie_chatops.handlers.reminders, macie_chatops.reminders, macie_chatops.store\n"
        "import macie_chatops.slack_client, macie_chatops.slack_secrets, macie_chatops.slack_messages\n"
        "from macie_chatops.bundled_config import reminder_config\n"
        "print(','.join(sorted(reminder_config().teams)))",
        *PYDANTIC_AND_MODELS,
        "macie_chatops.slack_pacing",
    )
    # THEN it has the config's teams, and neither pydantic nor the config's models were loaded, nor the channel pacer
    # (the reminders post unpaced: only handlers given a pacer load it)
    assert out == [",".join(sorted(config.teams)), "-"]


def test_reading_the_whole_config_loads_none_of_the_reminders_and_reconciler_readings(tmp_path: Path) -> None:
    # GIVEN a fresh interpreter and the bundle of the shipped accounts.yaml
    from macie_chatops.config import load_config

    config = load_config(ROOT / "accounts.yaml")
    bundle = tmp_path / "config.json"
    bundle.write_text(config.to_json(), encoding="utf-8")
    # WHEN a handler that builds the whole Config reads it (the finding handler, a click, the remediator)
    out = loaded(
        f"import os; os.environ['MACIE_CHATOPS_CONFIG_JSON'] = {str(bundle)!r}\n"
        "from macie_chatops.config import load_bundled_config\n"
        "print(','.join(sorted(load_bundled_config().teams)))",
        "macie_chatops.bundled_document",
        "macie_chatops.bundled_config",
    )
    # THEN it is the config, read through the document's module alone: the reminders' and the reconciler's readings
    # (bundled_config, its dataclasses) are not loaded
    assert out == [",".join(sorted(config.teams)), "macie_chatops.bundled_document"]
