"""``make demo`` / ``macie-chatops demo``: the story, end to end, in the sandbox (a minute or so, most of
it the flood of scene 8).

Two teams, three member accounts (from accounts.yaml), dummy objects uploaded as those accounts, Macie
finding events built from the package's own templates and put on the member accounts' default buses:

1. a Credentials finding the policy quarantines at once; the team gets an information message;
   then the same kind of finding from automated sensitive data discovery, published where Macie really
   publishes it (the Macie administrator's bus, in the bucket's region): routed by the bucket owner to its
   team, quarantined through that member's role; and a second report of that same object version (a job
   of the administrator's): recorded as a duplicate, never moved twice;
2. a Personal finding posted for review; a non-approver's click is refused (ephemeral answer); an
   approver of the team approves; the object is moved and the message updated;
3. another team's finding, dismissed by its approver through the dismissal form (a reason, this prefix, 30
   days): the exemption it creates ignores a later finding in the same prefix, with no new message;
4. a finding about an object under Object Lock (COMPLIANCE): BLOCKED (locked), both copies kept;
5. the approved object of scene 2 restored (Restore button);
6. a public bucket's policy finding, reported twice (one message, updated), closed with Block public access
   and reopened with Undo: its public access block read back exactly as it was;
7. Security Hub: each finding's workflow status set from its outcome (a quarantine RESOLVED, with the
   approver and where the object is now), read back through boto3's securityhub client;
8. a flood: 200 findings about one bucket at once -> one digest message (its members listed in thread
   replies, at Slack's pace), one "Quarantine all 200" click (over 100: handed to a signed continuation),
   every object moved by its own job;

then a table: finding, decision, final state, where the object is, and the finding's Slack message.
Accounts and teams are chosen from the config by what ``decide()`` says, so another accounts.yaml works
as long as it has an account for each scene.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import itertools
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, TextIO

from macie_chatops import names
from macie_chatops.config import Account, Action, Config
from macie_chatops.decision import decide
from macie_chatops.finding import parse_event
from macie_chatops.states import State
from macie_chatops_sandbox.findings import StoredObject, macie_finding_event, sample_body
from macie_chatops_sandbox.flood_scene import FLOOD_SIZE, FloodOutcome, FloodScene
from macie_chatops_sandbox.public_bucket_scene import PublicBucketScene, pick_account, with_public_bucket_review
from macie_chatops_sandbox.sandbox import OUTSIDER, ObjectLock, Sandbox, SandboxSettings
from macie_chatops_sandbox.securityhub import outcome_lines, with_security_hub

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_UNSUITABLE_CONFIG: Final = 2
WAIT_S: Final = 60.0
_EMOJI: Final = re.compile(r"^:[a-z0-9_+-]+:\s*")

CREDENTIALS: Final = "SensitiveData:S3Object/Credentials"
FINANCIAL: Final = "SensitiveData:S3Object/Financial"
PERSONAL: Final = "SensitiveData:S3Object/Personal"


class DemoError(Exception):
    """The demo cannot go on; the message says why."""


# ---------------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------------


class Narrator:
    """Plain, readable lines; bold and colour only on a terminal (and never with NO_COLOR)."""

    STATE_COLOURS: Final = {
        "QUARANTINED": "32",
        "RESTORED": "32",
        "DISMISSED": "36",
        "DUPLICATE": "36",
        "BLOCKED": "33",
        "FAILED": "31",
        "PENDING_APPROVAL": "35",
    }

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.colour = self.tty and not os.environ.get("NO_COLOR")

    def _style(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour else text

    def bold(self, text: str) -> str:
        return self._style("1", text)

    def state(self, name: str) -> str:
        return self._style(self.STATE_COLOURS.get(name, "0"), name)

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def scene(self, number: int, total: int, title: str) -> None:
        self.say()
        self.say(self.bold(f"[{number}/{total}] {title}"))

    def detail(self, label: str, text: str) -> None:
        self.say(f"      {label:<10} {text}")

    @contextlib.contextmanager
    def progress(self, label: str) -> Iterator[None]:
        """``label …`` then the elapsed time; a spinner on a terminal, so a slow step never looks stuck."""
        started = time.monotonic()
        stop = threading.Event()
        spinner: threading.Thread | None = None
        if self.tty:

            def spin() -> None:
                for frame in itertools.cycle("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"):
                    elapsed = time.monotonic() - started
                    print(f"\r      {label} … {frame} {elapsed:4.1f}s", end="", file=self.out, flush=True)
                    if stop.wait(0.1):
                        return

            spinner = threading.Thread(target=spin, name="demo-spinner", daemon=True)
            spinner.start()
        else:
            print(f"      {label} …", end="", file=self.out, flush=True)
        try:
            yield
        except BaseException:
            stop.set()
            if spinner is not None:
                spinner.join()
            print(" failed", file=self.out, flush=True)
            raise
        stop.set()
        if spinner is not None:
            spinner.join()
            print(f"\r      {label} … done in {time.monotonic() - started:.1f}s   ", file=self.out, flush=True)
        else:
            print(f" done in {time.monotonic() - started:.1f}s", file=self.out, flush=True)


def _plain(text: str, limit: int = 110) -> str:
    text = _EMOJI.sub("", text.strip().splitlines()[0] if text.strip() else "")
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------------------
# The story
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One finding of the story."""

    label: str
    account: Account
    region: str
    finding_type: str
    severity: str
    key: str
    what: str
    lock: ObjectLock | None = None
    bucket: str = ""
    stored: StoredObject | None = None
    finding_id: str = ""
    decision: str = ""
    published_by: str | None = None  # the account whose bus Macie publishes on (default: the bucket owner)
    job_id: str | None = "b7c2ab1d8e0f1a2b3c4d5e6f7a8b9c0d"  # None: automated sensitive data discovery
    note: str = ""  # shown after the account in the final table


def _action_for(config: Config, account: Account, region: str, finding_type: str, severity: str) -> Action:
    probe = macie_finding_event(
        account_id=account.id,
        region=region,
        finding_type=finding_type,
        severity=severity,
        stored=StoredObject("probe-bucket", "probe", "v", "0" * 32, 1),
    )
    return decide(parse_event(probe), config).action


def _pick(
    config: Config,
    finding_type: str,
    severity: str,
    action: Action,
    *,
    avoid_accounts: frozenset[str] = frozenset(),
    avoid_teams: frozenset[str] = frozenset(),
    prefer_other_region: bool = False,
) -> tuple[Account, str]:
    """The first account x region whose policy gives ``action``, preferring unused accounts and teams."""
    home = config.security_account.region
    candidates: list[tuple[int, int, Account, str]] = []
    for index, account in enumerate(config.accounts):
        for region in config.regions_for(account):
            if _action_for(config, account, region, finding_type, severity) is not action:
                continue
            penalty = (account.id in avoid_accounts) * 4 + (account.team in avoid_teams) * 2
            penalty += int(prefer_other_region and region == home)
            candidates.append((penalty, index, account, region))
    if not candidates:
        raise DemoError(f"no account in this config turns a {severity} {finding_type} finding into {action}")
    _, _, account, region = min(candidates, key=lambda c: (c[0], c[1]))
    return account, region


def plan(config: Config) -> tuple[Case, Case, Case, Case, Case]:
    """The five findings of the story, placed in the accounts whose policy fits each scene."""
    auto_account, auto_region = _pick(config, CREDENTIALS, "High", Action.AUTO)
    discovered_account, discovered_region = _pick(
        config,
        CREDENTIALS,
        "High",
        Action.AUTO,
        avoid_accounts=frozenset({auto_account.id, config.macie_administrator_id}),
        prefer_other_region=True,
    )
    review_account, review_region = _pick(
        config, PERSONAL, "High", Action.REVIEW, avoid_accounts=frozenset({auto_account.id})
    )
    dismiss_account, dismiss_region = _pick(
        config,
        PERSONAL,
        "High",
        Action.REVIEW,
        avoid_accounts=frozenset({auto_account.id, review_account.id}),
        avoid_teams=frozenset({review_account.team}),
    )
    lock_type = FINANCIAL if _action_exists(config, FINANCIAL, "High", Action.AUTO) else CREDENTIALS
    lock_account, lock_region = _pick(config, lock_type, "High", Action.AUTO, prefer_other_region=True)
    return (
        Case("credentials", auto_account, auto_region, CREDENTIALS, "High", "deploy/.env", "a dummy AWS key pair"),
        Case(
            "automated discovery",
            discovered_account,
            discovered_region,
            CREDENTIALS,
            "High",
            "ci/terraform.tfvars",
            "a dummy AWS key pair",
            published_by=config.macie_administrator_id,
            job_id=None,
            note=" (discovery)",
        ),
        Case(
            "personal data",
            review_account,
            review_region,
            PERSONAL,
            "High",
            "exports/customers.csv",
            "a dummy personal record",
        ),
        Case(
            "dismissed",
            dismiss_account,
            dismiss_region,
            PERSONAL,
            "High",
            "research/panel-sample.csv",
            "a dummy personal record (a known test fixture)",
        ),
        Case(
            "locked object",
            lock_account,
            lock_region,
            lock_type,
            "High",
            "archive/cards-2026.txt" if lock_type == FINANCIAL else "archive/.env",
            "a Luhn-valid test card number" if lock_type == FINANCIAL else "a dummy AWS key pair",
            lock="COMPLIANCE",
        ),
    )


def _action_exists(config: Config, finding_type: str, severity: str, action: Action) -> bool:
    try:
        _pick(config, finding_type, severity, action)
    except DemoError:
        return False
    return True


class Story:
    def __init__(self, sandbox: Sandbox, narrator: Narrator) -> None:
        self.sandbox = sandbox
        self.n = narrator
        self.cases: list[Case] = []

    def upload(self, case: Case) -> None:
        case.bucket = f"{case.account.name}-data-{case.region}"
        case.stored = self.sandbox.put_object(
            case.account.id,
            case.region,
            case.bucket,
            case.key,
            sample_body(case.finding_type),
            lock=case.lock,
        )
        lock = f", Object Lock {case.lock} retention" if case.lock else ""
        self.n.detail(
            "uploaded",
            f"s3://{case.bucket}/{case.key} as {case.account.name} ({case.account.id}, {case.region}): "
            f"{case.what}, {case.stored.size} bytes{lock}",
        )

    def report(self, case: Case, *, finding_id: str | None = None) -> None:
        if case.stored is None:
            raise DemoError(f"{case.label}: nothing was uploaded")
        event = macie_finding_event(
            account_id=case.account.id,
            region=case.region,
            finding_type=case.finding_type,
            severity=case.severity,
            stored=case.stored,
            finding_id=finding_id,
            job_id=case.job_id,
            published_by=case.published_by,
        )
        case.finding_id = event["detail"]["id"]
        case.decision = str(decide(parse_event(event), self.sandbox.config).action)
        route = self.sandbox.publish(event)
        publisher = self._account_name(event["account"])
        where = {
            "member": f"{publisher}'s default bus",
            "administrator": f"the Macie administrator's default bus ({publisher}, {case.region})",
        }.get(route, "the central bus")
        origin = "automated discovery" if case.job_id is None else "job"
        self.n.detail(
            "Macie",
            f"{case.finding_type.split('/')[-1]} finding ({case.severity}, {origin}) {case.finding_id[:12]}… "
            f"put on {where} -> policy: {self.n.bold(case.decision)}",
        )
        self.cases.append(case)

    def _account_name(self, account_id: str) -> str:
        account = self.sandbox.config.accounts_by_id.get(account_id)
        return f"{account.name} {account_id}" if account is not None else account_id

    def wait(self, case: Case, *states: State, label: str) -> Any:
        with self.n.progress(label):
            return self.sandbox.wait_for_state(case.finding_id, *states, timeout_s=WAIT_S)

    def slack_line(self, case: Case) -> str:
        record = self.sandbox.record(case.finding_id)
        if record is None or not record.slack_channel or not record.slack_ts:
            return "(no message)"
        message = self.sandbox.slack.message(record.slack_channel, record.slack_ts)
        return f"#{record.slack_channel}: {_plain(message.text)}"

    def thread_line(self, case: Case) -> str:
        """The replies in the thread of the case's message (a later report of the same object version)."""
        record = self.sandbox.record(case.finding_id)
        if record is None or not record.slack_channel or not record.slack_ts:
            return "(no message)"
        replies = self.sandbox.slack.replies(record.slack_channel, record.slack_ts)
        if not replies:
            return "no thread reply"
        return f"{len(replies)} thread reply under the first message: {_plain(replies[-1].text, 90)}"

    def quarantine_uri(self, case: Case) -> str:
        record = self.sandbox.record(case.finding_id)
        quarantine = record.quarantine if record is not None else None
        if quarantine and quarantine.get("bucket"):
            return f"s3://{quarantine['bucket']}/{quarantine.get('key', '')}"
        return f"s3://{names.quarantine_bucket_name(case.account.id, case.region)}/{case.finding_id}/…"

    def location(self, case: Case) -> str:
        return location(self.sandbox, case)

    def click(self, case: Case, action_id: str, user: str, who: str) -> None:
        button = {names.ACTION_REMEDIATE: "Remediate", names.ACTION_DISMISS: "Dismiss", names.ACTION_RESTORE: "Restore"}
        answer = self.sandbox.click(case.finding_id, action_id, user_id=user)
        if answer.status != 200:
            raise DemoError(f"the click answered HTTP {answer.status}: {answer.text}")
        body = answer.json if answer.body else {}
        ephemeral = isinstance(body, dict) and body.get("response_type") == "ephemeral"
        kind = "answer, ephemeral (only the clicker)" if ephemeral else "answer, replacing the message"
        self.n.detail("click", f"{who} {user} clicks {button[action_id]} (signed request, HTTP {answer.status})")
        self.n.detail("", f"{kind}: {_plain(answer.text, 90)}")

    def dismiss(self, case: Case, user: str, reason: str) -> None:
        """Dismiss through the form: the click opens it (views.open), the signed view_submission answers it."""
        answer = self.sandbox.dismiss(case.finding_id, user_id=user, reason=reason, scope="prefix", duration="30")
        if answer.status != 200 or (answer.body and answer.json.get("response_action") != "clear"):
            raise DemoError(f"the dismissal form was refused: HTTP {answer.status} {answer.text[:200]}")
        prefix = case.key.rsplit("/", 1)[0] + "/"
        self.n.detail("click", f"approver {user} clicks Dismiss: a form opens in Slack (views.open with the click)")
        self.n.detail("form", f"reason {reason!r}; exempt everything under {prefix}; for 30 days (signed submission)")

    def exemption_line(self, case: Case) -> str:
        from macie_chatops.exemption_store import ExemptionStore
        from macie_chatops.exemptions import until_text

        store = ExemptionStore(self.sandbox.client("dynamodb"), self.sandbox.provisioned.table_name)
        made = [e for e in store.for_account(case.account.id) if e.finding_id == case.finding_id]
        if not made:
            raise DemoError(f"{case.label}: the dismissal recorded no exemption")
        return f"{made[0].id}: {made[0].describe_scope()}, by {made[0].created_by} until {until_text(made[0].until)}"


def _describe_setup(sandbox: Sandbox, n: Narrator) -> None:
    config = sandbox.config
    n.detail(
        "AWS",
        f"moto at {sandbox.aws_endpoint}; security account {config.security_account.id} "
        f"({config.security_account.region})",
    )
    accounts = " · ".join(f"{a.name} {a.id} ({', '.join(config.regions_for(a))})" for a in config.accounts)
    n.detail("accounts", accounts)
    for name, team in config.teams.items():
        approvers = ", ".join(team.approvers)
        n.detail("team", f"{name}: Slack channel {team.channel}, approvers {approvers}")
    n.detail("Slack", f"stand-in Web API at {sandbox.slack.base_url}; clicks go to {sandbox.interaction_url}")


def tell(sandbox: Sandbox, n: Narrator) -> list[Case]:
    story = Story(sandbox, n)
    credentials, discovered, personal, dismissed, locked = plan(sandbox.config)
    total = 10

    n.scene(1, total, f"Credentials in {credentials.account.name}: quarantined at once by policy")
    story.upload(credentials)
    story.report(credentials)
    record = story.wait(credentials, State.QUARANTINED, State.BLOCKED, State.FAILED, label="quarantining")
    n.detail("result", f"{n.state(record.state.value)} -> {story.quarantine_uri(credentials)}")
    n.detail("Slack", story.slack_line(credentials))

    n.scene(
        2,
        total,
        f"Automated discovery, published in the Macie administrator account: {discovered.account.name}'s bucket",
    )
    story.upload(discovered)
    story.report(discovered)
    record = story.wait(discovered, State.QUARANTINED, State.BLOCKED, State.FAILED, label="quarantining")
    role = f"{discovered.account.name}'s {sandbox.config.deployment.remediation_role_name} role"
    n.detail("result", f"{n.state(record.state.value)} through {role} -> {story.quarantine_uri(discovered)}")
    n.detail("Slack", f"team {discovered.account.team}: {story.slack_line(discovered)}")
    first = discovered.finding_id
    # The administrator's own classification job reports the same object version under a new finding id.
    again = dataclasses.replace(
        discovered, label="reported again", job_id="a1d3e5f7b9c1d3e5f7a9b1c3d5e7f9a1", note=" (again)"
    )
    story.report(again, finding_id=uuid.uuid4().hex)
    record = story.wait(again, State.DUPLICATE, State.QUARANTINED, State.BLOCKED, State.FAILED, label="recording")
    n.detail(
        "result",
        f"{n.state(record.state.value)} of {first[:12]}…: the same object version, one move, no second review",
    )
    n.detail("Slack", story.thread_line(discovered))

    approver = sandbox.approver_for(personal.account.team)
    via = next((g for g, members in sandbox.group_members.items() if approver in members), None)
    n.scene(3, total, f"Personal data in {personal.account.name}: team {personal.account.team} is asked to review")
    story.upload(personal)
    story.report(personal)
    story.wait(personal, State.PENDING_APPROVAL, label="posting for review")
    n.detail("Slack", story.slack_line(personal) + "  [Remediate] [Dismiss]")
    story.click(personal, names.ACTION_REMEDIATE, OUTSIDER, "non-approver")
    still = sandbox.record(personal.finding_id)
    n.detail("state", f"still {n.state(still.state.value if still else '?')} (refused clicks change nothing)")
    who = f"approver (member of user group {via})" if via else "approver"
    story.click(personal, names.ACTION_REMEDIATE, approver, who)
    record = story.wait(personal, State.QUARANTINED, State.BLOCKED, State.FAILED, label="moving the object")
    n.detail("result", f"{n.state(record.state.value)} -> {story.quarantine_uri(personal)}")
    n.detail("Slack", f"message updated: {story.slack_line(personal)}")

    n.scene(
        4, total, f"Personal data in {dismissed.account.name}: team {dismissed.account.team} dismisses it, saying why"
    )
    story.upload(dismissed)
    story.report(dismissed)
    story.wait(dismissed, State.PENDING_APPROVAL, label="posting for review")
    story.dismiss(
        dismissed, sandbox.approver_for(dismissed.account.team), "Panel sample from the research vendor: synthetic"
    )
    record = story.wait(dismissed, State.DISMISSED, label="recording the decision")
    n.detail("result", f"{n.state(record.state.value)}; the object stays where it is ({story.location(dismissed)})")
    n.detail("exemption", story.exemption_line(dismissed))
    n.detail("Slack", f"message updated: {story.slack_line(dismissed)}")
    later = dataclasses.replace(dismissed, label="same prefix", key="research/panel-sample-2.csv", note=" (later)")
    story.upload(later)
    story.report(later)
    record = story.wait(later, State.IGNORED, State.PENDING_APPROVAL, label="deciding")
    later.decision = f"{record.action} (exempted)" if record.state is State.IGNORED else later.decision
    n.detail("result", f"{n.state(record.state.value)}: {_plain(record.reason, 160)}; {story.slack_line(later)}")

    n.scene(5, total, f"A locked object in {locked.account.name} ({locked.region}): never reported as moved")
    story.upload(locked)
    story.report(locked)
    record = story.wait(locked, State.QUARANTINED, State.BLOCKED, State.FAILED, label="trying to quarantine")
    reason = record.outcome_detail or record.outcome or ""
    n.detail(
        "result", f"{n.state(record.state.value)} ({_plain(reason, 80) or 'locked'}); object: {story.location(locked)}"
    )
    n.detail("Slack", story.slack_line(locked))

    n.scene(6, total, f"Restore: {personal.account.team} puts the reviewed object back")
    story.click(personal, names.ACTION_RESTORE, approver, "approver")
    record = story.wait(personal, State.RESTORED, State.FAILED, label="restoring")
    n.detail(
        "result",
        f"{n.state(record.state.value)}; object: {story.location(personal)} (the quarantined copy is kept as "
        "evidence until the quarantine retention expires it)",
    )
    n.detail("Slack", story.slack_line(personal))

    public = public_bucket(sandbox, n, 7, total)

    with n.progress("waiting for the pipeline to settle"):
        sandbox.wait_until_idle(WAIT_S)
    n.scene(8, total, "Security Hub: every outcome set the finding's workflow status there too")
    security_hub_scene(sandbox, story.cases, [public], n)
    flooded = flood(sandbox, n, personal, 9, total)
    n.scene(10, total, "Where everything ended up")
    table(sandbox, story.cases, n, flooded)
    return story.cases


def flood(sandbox: Sandbox, n: Narrator, personal: Case, number: int, total: int) -> FloodOutcome:
    """A flood of findings about one bucket: one digest, one bulk approval (docs/architecture.md §22)."""
    account, region = personal.account, personal.region
    severities = tuple(
        s
        for s in ("High", "Medium", "Low")
        if _action_for(sandbox.config, account, region, PERSONAL, s) is Action.REVIEW
    )
    n.scene(number, total, f"A flood in {account.name}: {FLOOD_SIZE} findings about one bucket, one digest, one click")
    scene = FloodScene(sandbox, n.detail, n.progress)
    outcome = scene.tell(account, region, sandbox.approver_for(account.team), severities)
    moved = ", ".join(f"{count} {n.state(state.value)}" for state, count in sorted(outcome.states.items()))
    n.detail("result", f"{moved}; {outcome.writes} Slack writes for {outcome.findings} findings")
    return outcome


def public_bucket(sandbox: Sandbox, n: Narrator, number: int, total: int) -> tuple[str, str, str]:
    """A public bucket closed with Block public access and reopened with Undo (docs/architecture.md §18)."""
    placed = pick_account(sandbox.config)
    if placed is None:
        raise DemoError("no account in this config posts a public-bucket policy finding for review")
    account, region = placed
    n.scene(number, total, f"A public bucket in {account.name}: closed with Block public access, reopened with Undo")
    scene = PublicBucketScene(sandbox, n.detail, n.progress)
    if not scene.tell(account, region):
        raise DemoError("after Undo the bucket's public access block is not what it was before the block")
    return ("public bucket", scene.finding_id, region)  # (label, finding id, region), as the scenes list them


def security_hub_scene(sandbox: Sandbox, cases: list[Case], others: list[tuple[str, str, str]], n: Narrator) -> None:
    """What Security Hub shows for each finding the pipeline took to an outcome (docs/architecture.md §17);
    ``others``: (label, finding id, region) of findings told outside ``cases`` (the public bucket's)."""
    findings = [(case.label, case.finding_id, case.region) for case in cases if case.finding_id] + others
    with n.progress("waiting for Security Hub"):
        lines = outcome_lines(sandbox.security_hub, sandbox.store, findings, timeout_s=WAIT_S)
    for label, text in lines:
        n.detail(label[:10], _plain(text, 110))


def table(sandbox: Sandbox, cases: list[Case], n: Narrator, flooded: FloodOutcome | None = None) -> None:
    rows = [("finding", "decision", "final state", "object", "Slack messages (count / last text)")]
    for case in cases:
        record = sandbox.record(case.finding_id)
        state = record.state.value if record is not None else "?"
        slack = "0"
        if record is not None and record.slack_channel and record.slack_ts:
            message = sandbox.slack.message(record.slack_channel, record.slack_ts)
            slack = f"{len(message.revisions)} / {_plain(message.text, 60)}"
        label = f"{case.finding_type.split('/')[-1]} @ {case.account.name}{case.note}"
        rows.append((label, case.decision, state, location(sandbox, case), slack))
    if flooded is not None:
        rows.append(_flood_row(sandbox, flooded))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for index, row in enumerate(rows):
        cells = [row[i].ljust(widths[i]) for i in range(4)]
        if index:
            cells[2] = n.state(row[2]) + " " * (widths[2] - len(row[2]))
        line = "  ".join([*cells, row[4]])
        n.say("  " + (n.bold(line) if index == 0 else line))
    n.say()


def _flood_row(sandbox: Sandbox, flooded: FloodOutcome) -> tuple[str, str, str, str, str]:
    """The flood in one row: its findings, their states, and its one message (the digest) with its thread."""
    states = ", ".join(f"{state.value} x{count}" for state, count in sorted(flooded.states.items()))
    where = "quarantine" if set(flooded.states) == {State.QUARANTINED} else "mixed"
    digest = sandbox.slack.message(flooded.channel, flooded.digest_ts)
    replies = len(sandbox.slack.replies(flooded.channel, flooded.digest_ts))
    slack = f"{len(digest.revisions)} / +{replies} replies / {_plain(digest.text, 44)}"
    return (f"Personal x{flooded.findings} @ one bucket", "review (grouped)", states, where, slack)


def location(sandbox: Sandbox, case: Case) -> str:
    if case.stored is None:
        return "none"
    return sandbox.object_location(
        case.finding_id, case.account.id, case.region, case.stored, sandbox.record(case.finding_id)
    )


class _LogTail(io.TextIOBase):
    """Where the handlers' JSON logs go during the demo: the last lines are kept to explain a failure."""

    def __init__(self, lines: int = 60) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=lines)
        self._partial = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._partial += text
            *complete, self._partial = self._partial.split("\n")
            self.lines.extend(line for line in complete if line)
        return len(text)


def run_demo(config: Config, out: TextIO | None = None) -> int:
    stream = out or sys.stdout
    n = Narrator(stream)
    started = time.monotonic()
    n.say(n.bold("macie-chatops demo: Macie findings -> per-team Slack approval -> safe quarantine"))
    n.say("  Everything runs on this machine: moto's AWS server and a Slack stand-in on 127.0.0.1, the real handlers.")
    try:
        plan(config)  # fail before starting anything if the config cannot tell the story
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return EXIT_UNSUITABLE_CONFIG
    logs = _LogTail()
    try:
        with contextlib.redirect_stdout(logs):
            n.say()
            with n.progress("starting the sandbox (AWS accounts, buses, queues, table, buckets, Slack)"):
                demo_config = with_public_bucket_review(with_security_hub(config))
                sandbox = Sandbox(demo_config, SandboxSettings(log_level="WARNING")).start()
            try:
                _describe_setup(sandbox, n)
                tell(sandbox, n)
            finally:
                with n.progress("stopping the sandbox"):
                    sandbox.stop()
    except (DemoError, TimeoutError, LookupError, RuntimeError) as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        if logs.lines:
            print("last handler log lines:", file=sys.stderr)
            for line in logs.lines:
                print(f"  {line}", file=sys.stderr)
        return EXIT_FAILED
    n.say()
    n.say(f"Done in {time.monotonic() - started:.0f}s. Nothing was left running; nothing touched AWS or Slack.")
    return EXIT_OK
