"""The operator CLI: `macie-chatops` (also `python -m macie_chatops`).

Contract: JSON lines on stdout, human messages on stderr, exit 0 on success, 1 on failure, 2 on bad input.
Sub-commands that need AWS import it lazily, so `validate` and `decide` stay fast. Other packages add
sub-commands through the ``macie_chatops.commands`` entry-point group (the sandbox adds `demo` and
`sandbox`); the runtime never imports them, and the group is read only when the command is not built in.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, Protocol

from macie_chatops.config import Config, ConfigError, config_path, load_config
from macie_chatops.decision import Decision, decide
from macie_chatops.finding import Finding, Rejection, parse_event

if TYPE_CHECKING:
    from datetime import timedelta

    from macie_chatops.approvals import ApprovalSigner
    from macie_chatops.group_store import Grouping
    from macie_chatops.job_request import JobRequest
    from macie_chatops.slack_messages import SlackMessage
    from macie_chatops.states import State
    from macie_chatops.store import FindingRecord, FindingStore

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
_APPROVAL_KEY_ALIAS: Final = "alias/macie-chatops-approvals"  # names.APPROVAL_KEY_ALIAS (names loads lazily here)


def _load(args: argparse.Namespace) -> Config | None:
    try:
        return load_config(config_path(args.config))
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return EXIT_BAD_INPUT
    print(
        f"{config_path(args.config)}: valid ({len(config.accounts)} accounts, {len(config.teams)} teams, "
        f"{len(config.regions)} regions)",
        file=sys.stderr,
    )
    _warn_expired_exemptions(config, str(config_path(args.config)))
    if config.deployment.auto_deploy:
        print(
            f"{_shown_path(str(config_path(args.config)))}: note: deployment.auto_deploy: StackSets deploys the member "
            "stacks (remediation role, quarantine bucket, KMS key) to any account added to a target OU, listed here "
            "or not, and removes them (keeping the bucket and key) from an account that leaves one",
            file=sys.stderr,
        )
    if config.slack.waf:
        print(
            f"{_shown_path(str(config_path(args.config)))}: note: slack.waf: an AWS WAF web ACL guards the Slack "
            "endpoint (requests without Slack's signature headers blocked, a rate limit per source address); it "
            "costs about USD 7 a month plus USD 0.60 per million requests (docs/deploy.md)",
            file=sys.stderr,
        )
    return EXIT_OK


def _warn_expired_exemptions(config: Config, file: str) -> None:
    """A warning per accounts.yaml exemption that has run out: harmless (it covers nothing), but stale."""
    from macie_chatops.config import expired_exemptions

    for index, exemption in expired_exemptions(config):
        print(
            f"{_shown_path(file)}: warning: exemptions[{index}]: ran out at the end of {exemption.until} "
            f"(account {exemption.account}, bucket {exemption.bucket}): it covers nothing; remove it or renew it",
            file=sys.stderr,
        )


def _shown_path(file: str) -> str:
    """A file name as it can be printed: bytes that are not UTF-8 (os.fsdecode's surrogates) become U+FFFD."""
    return file.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def cmd_decide(args: argparse.Namespace) -> int:
    """One line per readable file: what the finding handler would do with these exact bytes.

    The bytes go through the handler's own parse boundary (``parse_event``), so a file gets the action the
    pipeline would give it (a byte order mark, a deep nesting or an oversized number included)."""
    config = _load(args)
    if config is None:
        return EXIT_BAD_INPUT
    status = EXIT_OK
    for file in args.events:
        try:
            raw = Path(file).read_bytes()
        except OSError as exc:
            print(f"{_shown_path(file)}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            status = EXIT_BAD_INPUT
            continue
        finding = parse_event(raw)
        decision = _decide_with_exemptions(finding, config)
        if isinstance(finding, Rejection):
            finding_id, account = finding.finding_id, finding.account_id
        else:
            finding_id, account = finding.id, finding.account_id
        line = {
            "file": _shown_path(file),
            "finding_id": finding_id,
            "account": account,
            "team": decision.team,
            "channel": decision.channel,
            "action": str(decision.action),
            "reason": decision.reason,
        }
        print(json.dumps(line, ensure_ascii=False), flush=True)
    return status


def _decide_with_exemptions(finding: Finding | Rejection, config: Config) -> Decision:
    """``decide``, then accounts.yaml's exemptions active now (the ones recorded from Slack are the pipeline's)."""
    from macie_chatops.exemptions import exempted, from_config, target_of

    decision = decide(finding, config)
    target = target_of(finding) if isinstance(finding, Finding) and decision.posts_to_slack else None
    return exempted(decision, target, from_config(config), datetime.now(UTC))


def cmd_schema(args: argparse.Namespace) -> int:
    from macie_chatops.config import json_schema

    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return EXIT_OK


# --- commands other packages add (the sandbox's) ----------------------------------------------------------------

COMMAND_GROUP: Final = "macie_chatops.commands"
# The sandbox's commands: without an installed package providing them, these names say how to get it.
SANDBOX_COMMANDS: Final = {
    "demo": "the guided end-to-end story in the local sandbox",
    "sandbox": "the whole pipeline on this machine (moto + a Slack stand-in)",
}
NO_SANDBOX: Final = "the sandbox is not installed: pip install 'macie-chatops[sandbox]' (or run `make demo`)"

Runner = Callable[[argparse.Namespace, Config], int]


class Command(Protocol):
    """What an entry point of ``macie_chatops.commands`` names (the entry point's name is the command's)."""

    @property
    def help(self) -> str: ...

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's arguments to its parser (``add_config_option`` where it reads accounts.yaml)."""

    def load(self) -> Runner:
        """Import what the command needs and return what runs it with the parsed arguments and the config; an
        ImportError means the providing package's dependencies are not installed."""


def add_config_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--config", help="accounts.yaml to use (default: $MACIE_CHATOPS_CONFIG, then ./accounts.yaml)")
    return parser


@dataclass(frozen=True)
class _Unavailable:
    """A sandbox command no installed package provides: running it says how to get it."""

    help: str
    error: str

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("arguments", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def load(self) -> Runner:
        raise ImportError(self.error)


def installed_commands() -> dict[str, Command]:
    """The commands installed packages add through the ``macie_chatops.commands`` entry-point group."""
    from importlib.metadata import entry_points

    commands: dict[str, Command] = {}
    for entry_point in entry_points(group=COMMAND_GROUP):
        try:
            commands[entry_point.name] = entry_point.load()
        except ImportError as exc:
            commands[entry_point.name] = _Unavailable(SANDBOX_COMMANDS.get(entry_point.name, ""), str(exc))
    return commands


def _run_added(command: Command, args: argparse.Namespace) -> int:
    try:
        runner = command.load()
    except ImportError as exc:
        print(f"{NO_SANDBOX} ({exc})", file=sys.stderr)
        return EXIT_FAILED
    config = _load(args)
    if config is None:
        return EXIT_BAD_INPUT
    return runner(args, config)


def _operator() -> str:
    """``cli:<user>``: who ran the command, as the audit trail and the restore's SourceIdentity show it."""
    import getpass
    import os

    user = os.environ.get("USER") or os.environ.get("USERNAME")
    if not user:
        try:
            user = getpass.getuser()
        except Exception:  # no user name in a bare container: still an honest actor
            user = "unknown"
    return f"cli:{user}"[:64]


# --- operator commands on the deployed state table (and remediation queue) -----------------------------------


def _state_table(args: argparse.Namespace) -> str:
    """``--table``, else the environment the Lambdas use, else the deployed default name."""
    import os

    from macie_chatops import names

    return str(args.table or os.environ.get(names.ENV_STATE_TABLE) or names.STATE_TABLE_NAME)


def _remediation_queue(args: argparse.Namespace) -> str | None:
    """``--queue-url``, else the environment the Lambdas use; None (after saying how to set it) when neither."""
    import os

    from macie_chatops import names

    queue_url = args.queue_url or os.environ.get(names.ENV_REMEDIATION_QUEUE_URL)
    if not queue_url:
        print(
            f"{args.command}: no remediation queue: pass --queue-url or set {names.ENV_REMEDIATION_QUEUE_URL} "
            "(the central stack's RemediationQueueUrl output)",
            file=sys.stderr,
        )
        return None
    return str(queue_url)


def _finding_store(args: argparse.Namespace, table: str, counts: _GroupCounts | None = None) -> FindingStore:
    """The state table, its transitions hooked as every handler's are (a grouped finding's move counted in its
    group, docs/architecture.md §22): into ``counts``, which keeps a failure for the command to report at its end,
    or, without it, into a hook that raises."""
    import boto3

    from macie_chatops.store import FindingStore

    dynamodb = boto3.client("dynamodb", region_name=args.region)
    hook = (
        counts if counts is not None else _GroupCounts(args.region, table, remediation_queue=None, keeps_failures=False)
    )
    return FindingStore(dynamodb, table, on_state_change=hook)


class _GroupCounts:
    """The CLI's ``FindingStore(on_state_change=...)``: ``Grouping.state_changed``, as in the handlers, so a finding
    restored or re-approved from here moves its group's counts and wakes the digest writer (§22).

    The groups and the digest queue are built on the first grouped finding's move. The queue: $DIGEST_QUEUE_URL (as
    the Lambdas have it), else the remediation queue's URL with the digest queue's name (same account and region).
    ``keeps_failures``: a failure of the hook (after its transition was written) is kept for :meth:`report`
    instead of raised, so the command's next steps still happen: the job of a transition is queued, not left
    waiting behind a count (an operator's command is not redelivered like a handler's event)."""

    def __init__(
        self, region: str | None, table: str, *, remediation_queue: str | None, keeps_failures: bool = True
    ) -> None:
        self._region = region
        self._table = table
        self._remediation_queue = remediation_queue
        self._keeps_failures = keeps_failures
        self._grouping: Grouping | None = None
        self.failures: list[tuple[str, Exception]] = []

    def __call__(self, record: FindingRecord) -> None:
        if record.group_id is None:
            return
        try:
            self._built().state_changed(record)
        except Exception as exc:
            if not self._keeps_failures:
                raise
            self.failures.append((record.finding_id, exc))

    def _built(self) -> Grouping:
        if self._grouping is None:
            import os

            import boto3

            from macie_chatops import names
            from macie_chatops.group_store import Grouping, GroupStore, SqsDigestQueue

            queue_url = os.environ.get(names.ENV_DIGEST_QUEUE_URL) or (
                f"{self._remediation_queue.rsplit('/', 1)[0]}/{names.DIGEST_QUEUE_NAME}"
                if self._remediation_queue
                else None
            )
            if not queue_url:
                raise RuntimeError(f"no digest queue: set {names.ENV_DIGEST_QUEUE_URL} (the digest queue's URL)")
            dynamodb = boto3.client("dynamodb", region_name=self._region)
            sqs = boto3.client("sqs", region_name=self._region)
            self._grouping = Grouping(GroupStore(dynamodb, self._table), SqsDigestQueue(sqs, queue_url))
        return self._grouping

    def report(self, command: str) -> bool:
        """Say (stderr) which findings' moves their group's digest may not show; True when there were any."""
        for finding_id, exc in self.failures:
            print(
                f"{command}: finding {finding_id} moved, but its group's digest count could not be updated "
                f"({type(exc).__name__}: {exc}); the finding's record is right, the digest may be off by this move "
                "(docs/architecture.md §22)",
                file=sys.stderr,
            )
        return bool(self.failures)


@dataclass(frozen=True)
class _Requeue:
    """An operator command that moves a finding from ``source`` to ``target`` (actor ``cli:<user>``) and queues
    a remediation job of ``kind`` for it; the transition is undone if the job cannot be queued, so no finding
    waits for a job that never comes."""

    kind: Literal["quarantine", "restore"]
    source: State
    target: State
    nothing_to: str  # "nothing to restore": why the command did nothing
    requested_by: Callable[[FindingRecord, str], str]  # (record, operator) -> the job's requested_by
    signs: bool  # the operator approves anew (a signed approval, §23); else the record's approval is kept


def _approval_signer(args: argparse.Namespace) -> ApprovalSigner:
    """The operator's signer of approvals (§23): ``--approval-key``, else $APPROVAL_KEY_ID, else the key's alias."""
    import os

    import boto3

    from macie_chatops import names
    from macie_chatops.approvals import ApprovalSigner

    key_id = args.approval_key or os.environ.get(names.ENV_APPROVAL_KEY_ID) or names.APPROVAL_KEY_ALIAS
    return ApprovalSigner(boto3.client("kms", region_name=args.region), key_id)


def _requeue(args: argparse.Namespace, spec: _Requeue) -> int:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from macie_chatops.approvals import action_for, approval_for, iso
    from macie_chatops.job_request import Requested, StateChange, request_job
    from macie_chatops.jobs import RemediationJob, SqsJobQueue
    from macie_chatops.ports import utcnow

    command = args.command
    table = _state_table(args)
    queue_url = _remediation_queue(args)
    if queue_url is None:
        return EXIT_BAD_INPUT
    actor = _operator()
    counts = _GroupCounts(args.region, table, remediation_queue=queue_url)
    store = _finding_store(args, table, counts)
    finding_id = args.finding_id
    try:
        record = store.get(finding_id)
        if record is None:
            print(f"{command}: unknown finding {finding_id!r} (table {table})", file=sys.stderr)
            return EXIT_BAD_INPUT
        if record.state is not spec.source:
            print(
                f"{command}: finding {finding_id} is {record.state.value}, not {spec.source.value}: {spec.nothing_to}",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        now = utcnow()
        action = action_for(record, spec.kind)
        approval = approval_for(record, action=action, approver=actor, at=iso(now)) if spec.signs and action else None
        change = StateChange(
            expected=spec.source,
            target=spec.target,
            actor=actor,
            event=f"cli:{command}",
            undo_event=f"{command}_not_queued",
            undo_detail=lambda exc: f"{type(exc).__name__}: {exc}",
            approval=approval,
            keeps_approval=not spec.signs,
        )
        requested_by = spec.requested_by(record, actor)
        job = RemediationJob(kind=spec.kind, finding_id=finding_id, requested_by=requested_by, requested_at=now)
        queue = SqsJobQueue(boto3.client("sqs", region_name=args.region), queue_url)
        signer = _approval_signer(args) if approval is not None else None
        requested = request_job(store, queue, job, change=change, signer=signer)
    except (BotoCoreError, ClientError) as exc:
        print(f"{command}: the state table {table} or the approval key could not be used: {exc}", file=sys.stderr)
        return EXIT_FAILED
    uncounted = counts.report(command)
    if requested.status is not Requested.QUEUED:
        return _not_requeued(command, table, spec, requested)
    line = {"finding_id": finding_id, "state": spec.target.value, "requested_by": requested_by, "operator": actor}
    print(json.dumps(line))
    print(f"{command} of {finding_id} queued by {actor}; the remediator will update its Slack message", file=sys.stderr)
    return EXIT_FAILED if uncounted else EXIT_OK


def _not_requeued(command: str, table: str, spec: _Requeue, requested: JobRequest) -> int:
    """Say why an operator's job request did not queue its job; the exit status."""
    from macie_chatops.job_request import Requested

    record = requested.record
    if requested.status is Requested.NOT_IN_EXPECTED_STATE:
        print(
            f"{command}: finding {record.finding_id} became {record.state.value} meanwhile: {spec.nothing_to}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if requested.status is Requested.REFUSED_UNDO_FAILED:
        print(
            f"{command}: could not queue the job ({requested.error}), and the state table {table} could not be used "
            f"to undo the request: {requested.undo_error}; the finding is {record.state.value} with no job",
            file=sys.stderr,
        )
        return EXIT_FAILED
    now = "stays" if requested.status is Requested.REFUSED_UNDONE else "is now"
    print(
        f"{command}: could not queue the job ({requested.error}); the finding {now} {record.state.value}",
        file=sys.stderr,
    )
    return EXIT_FAILED


def cmd_restore(args: argparse.Namespace) -> int:
    """QUARANTINED -> RESTORE_REQUESTED (actor ``cli:<user>``), then queue the restore job for the remediator.

    Uses the real state table and remediation queue (``--table``/``--queue-url``, else the environment the
    Lambdas use). If the job cannot be queued, the transition is undone, so no finding waits for a restore
    that never comes. The restore's SourceIdentity is the operator.
    """
    from macie_chatops.states import State

    restore = _Requeue(
        kind="restore",
        source=State.QUARANTINED,
        target=State.RESTORE_REQUESTED,
        nothing_to="nothing to restore",
        requested_by=lambda record, operator: operator,
        signs=True,  # a restore is the operator's own approval
    )
    return _requeue(args, restore)


def cmd_retry(args: argparse.Namespace) -> int:
    """FAILED -> APPROVED (actor ``cli:<user>``), then queue the quarantine job again, once the cause is fixed.

    Same table, queue and undo as ``restore``. The job names the original approver (the record's), so the
    move's SourceIdentity stays the person (or policy) who approved it; the audit trail names the operator.
    The record's signed approval is kept (the remediator verifies it again); ``--reapprove`` signs a new one by
    the operator instead: for a finding approved before approvals were signed, or FAILED "approval not verified"
    once the operator has established the approval was genuine (docs/architecture.md §23).
    """
    from macie_chatops.jobs import AUTO_APPROVER
    from macie_chatops.states import State

    retry = _Requeue(
        kind="quarantine",
        source=State.FAILED,
        target=State.APPROVED,
        nothing_to="nothing to retry",
        requested_by=lambda record, operator: record.approver or AUTO_APPROVER,
        signs=bool(args.reapprove),
    )
    return _requeue(args, retry)


def _older_than(text: str) -> timedelta:
    """``24h``, ``90m``, ``3d``, ``1d12h``: a positive duration in days, hours and minutes."""
    import re
    from datetime import timedelta

    match = re.fullmatch(r"(?:(\d{1,5})d)?(?:(\d{1,6})h)?(?:(\d{1,7})m)?", text.strip())
    if not text.strip() or match is None:
        raise argparse.ArgumentTypeError(f"expected a duration such as 24h, 90m, 3d or 1d12h, got {text!r}")
    days, hours, minutes = (int(part or 0) for part in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes)
    if duration <= timedelta(0):
        raise argparse.ArgumentTypeError(f"must be longer than 0, got {text!r}")
    return duration


def _workspace_url(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(the Slack workspace URL for message links, the error when Slack could not say it): ``--workspace-url``,
    else auth.test with the bot token of ``--slack-secret`` (else $SLACK_SECRET_ARN); (None, None) without them."""
    import os

    from macie_chatops import names

    if args.workspace_url:
        return str(args.workspace_url), None
    secret_id = args.slack_secret or os.environ.get(names.ENV_SLACK_SECRET_ARN)
    if not secret_id:
        return None, None
    import boto3

    from macie_chatops.slack_client import SlackClient, build_web_client
    from macie_chatops.slack_secrets import load_slack_secrets

    try:
        token = load_slack_secrets(boto3.client("secretsmanager", region_name=args.region), secret_id).bot_token
        base_url = os.environ.get(names.ENV_SLACK_API_URL) or None
        url = SlackClient(build_web_client(token, base_url=base_url)).auth_test().url
    except Exception as exc:  # shown, and the exit status says it: the list itself is still worth printing
        return None, f"no message links: the Slack workspace could not be read ({type(exc).__name__}: {exc})"
    return (url, None) if url else (None, "no message links: Slack's auth.test named no workspace URL")


def cmd_pending(args: argparse.Namespace) -> int:
    """Findings awaiting approval, oldest first, one JSON line each (from the table's pending index): how long each
    has waited, the link to its Slack message, its reminders and escalation (docs/architecture.md §14)."""
    from datetime import UTC, datetime

    from botocore.exceptions import BotoCoreError, ClientError

    from macie_chatops.reminders import age_text, link_for

    table = _state_table(args)
    store = _finding_store(args, table)
    now = datetime.now(UTC)
    cutoff = now - args.older_than if args.older_than is not None else None
    try:
        records = store.pending_approvals(args.team, limit=args.limit, received_before=cutoff)
    except (BotoCoreError, ClientError) as exc:
        print(f"pending: the state table {table} could not be used: {exc}", file=sys.stderr)
        return EXIT_FAILED
    workspace_url, no_links = _workspace_url(args) if records else (None, None)
    for record in records:
        summary = record.summary
        line = {
            "finding_id": record.finding_id,
            "team": record.team,
            "account": record.account_id,
            "bucket": summary.bucket if summary else (record.policy.bucket if record.policy else ""),  # §18
            "key": summary.key if summary else "",
            "received_at": record.received_at,
            "age": age_text((now - datetime.fromisoformat(record.received_at)).total_seconds()),
            "link": link_for(record, workspace_url),
            "reminders": record.reminders_sent,
            "escalated_at": record.escalated_at,
        }
        print(json.dumps(line, ensure_ascii=False), flush=True)
    scope = f"team {args.team}" if args.team else "all teams"
    older = f" older than {age_text(args.older_than.total_seconds())}" if args.older_than is not None else ""
    more = f" (the oldest {args.limit}; --limit shows more)" if len(records) == args.limit else ""
    print(f"{len(records)} finding(s) awaiting approval{older} for {scope}{more}", file=sys.stderr)
    if no_links:
        print(f"pending: {no_links}", file=sys.stderr)
        return EXIT_FAILED
    if records and workspace_url is None:
        print("no message links: pass --workspace-url https://<workspace>.slack.com or --slack-secret", file=sys.stderr)
    return EXIT_OK


class _CliSlack:
    """The Slack client for a stuck finding's message, built (the secret read) only when one is updated."""

    def __init__(self, region: str | None, secret_id: str) -> None:
        self._region = region
        self._secret_id = secret_id

    def update(self, channel: str, ts: str, message: SlackMessage) -> None:
        import os

        import boto3

        from macie_chatops import names
        from macie_chatops.slack_client import SlackClient, build_web_client
        from macie_chatops.slack_secrets import load_slack_secrets

        token = load_slack_secrets(boto3.client("secretsmanager", region_name=self._region), self._secret_id).bot_token
        base_url = os.environ.get(names.ENV_SLACK_API_URL) or None
        SlackClient(build_web_client(token, base_url=base_url)).update(channel, ts, message)


def cmd_sweep(args: argparse.Namespace) -> int:
    """What the scheduled sweeper does, now (``--dry-run``: only say what it would do), or ``--requeue
    FINDING_ID``: re-queue one APPROVED finding's job (e.g. one the sweeper gave up on, once the cause is fixed).

    Table and queue as ``retry`` finds them; the stuck findings' Slack messages are updated when the Slack
    secret is named (``--slack-secret``, else $SLACK_SECRET_ARN), and left as they are otherwise."""
    import dataclasses
    import os

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from macie_chatops import names
    from macie_chatops.errors import MacieChatOpsError
    from macie_chatops.jobs import SqsJobQueue
    from macie_chatops.sweeper import SweepDependencies, SweepError, SweepPolicy, requeue, sweep

    table = _state_table(args)
    queue_url = _remediation_queue(args)
    if queue_url is None:
        return EXIT_BAD_INPUT
    try:
        policy = SweepPolicy.from_env(os.environ)
    except ValueError as exc:
        print(f"sweep: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    secret_id = args.slack_secret or os.environ.get(names.ENV_SLACK_SECRET_ARN)
    # A sweep's steps note and re-send (no transition today); any transition one makes is counted like the others'.
    counts = _GroupCounts(args.region, table, remediation_queue=queue_url)
    deps = SweepDependencies(
        store=_finding_store(args, table, counts),
        queue=SqsJobQueue(boto3.client("sqs", region_name=args.region), queue_url),
        slack=_CliSlack(args.region, secret_id) if secret_id and not args.dry_run else None,
        policy=policy,
    )
    if args.requeue:
        try:
            signer = _approval_signer(args) if args.reapprove else None
            deps = dataclasses.replace(deps, signer=signer)
            record = requeue(args.requeue, actor=_operator(), deps=deps, reapprove=bool(args.reapprove))
        except (BotoCoreError, ClientError, MacieChatOpsError, KeyError) as exc:
            print(f"sweep --requeue: {args.requeue}: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print(json.dumps({"finding_id": record.finding_id, "state": record.state.value, "requeued": True}))
        return EXIT_FAILED if counts.report("sweep --requeue") else EXIT_OK
    try:
        report = sweep(deps, dry_run=args.dry_run)
        status = EXIT_OK
    except SweepError as exc:
        report, status = exc.report, EXIT_FAILED
    except (BotoCoreError, ClientError) as exc:
        print(f"sweep: the state table {table} or the remediation queue could not be read: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for outcome in report.outcomes:
        line = {
            "finding_id": outcome.finding_id,
            "verdict": outcome.verdict.value,
            "reason": outcome.reason,
            "requeues": outcome.requeues,
            "approved_at": outcome.waiting_since,
            "done": outcome.done,
        }
        print(json.dumps(line, ensure_ascii=False), flush=True)
    for finding_id, error in report.errors:
        print(f"sweep: {finding_id}: {error}", file=sys.stderr)
    mode = "dry run: nothing changed; " if args.dry_run else ""
    print(
        f"{mode}{report.candidates} approval(s) older than {int(policy.stale_after.total_seconds() // 60)} min, "
        f"{report.stuck} stuck, {len(report.errors)} error(s)"
        + ("" if secret_id or args.dry_run else "; Slack messages not updated (no --slack-secret)"),
        file=sys.stderr,
    )
    return EXIT_FAILED if counts.report("sweep") else status


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


SLACK_BOT_SCOPES = ("chat:write", "usergroups:read")
# Only with --read-threads: the digest writer may then read a digest's thread (conversations.replies) after an
# interrupted page post, to adopt the page instead of posting it twice (docs/architecture.md §22). Not by default:
# they let the bot token read every message in the channels the bot is in, for a rare duplicate page of text.
SLACK_THREAD_READ_SCOPES = ("channels:history", "groups:history")


def slack_app_manifest(request_url: str, *, read_threads: bool = False) -> dict[str, object]:
    """The Slack app manifest: a bot that posts and updates messages, reads user-group members (approvers
    listed as groups) and, with ``read_threads``, the threads of the channels it is in, and sends button clicks to
    ``request_url``. No events, no slash commands."""
    scopes = (*SLACK_BOT_SCOPES, *(SLACK_THREAD_READ_SCOPES if read_threads else ()))
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": "Macie ChatOps",
            "description": "Amazon Macie findings: approve or dismiss the quarantine of sensitive S3 objects",
            "background_color": "#232f3e",
        },
        "features": {"bot_user": {"display_name": "macie-chatops", "always_online": False}},
        "oauth_config": {"scopes": {"bot": list(scopes)}},
        "settings": {
            "interactivity": {"is_enabled": True, "request_url": request_url},
            "org_deploy_enabled": False,
            "socket_mode_enabled": False,
            "token_rotation_enabled": False,
        },
    }


def cmd_slack_manifest(args: argparse.Namespace) -> int:
    """Print the app manifest for Slack's "Create an app > From a manifest" (one step, JSON)."""
    from urllib.parse import urlsplit

    from macie_chatops.names import SLACK_INTERACTIONS_PATH

    url = str(args.api_url).strip()
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        print(
            f"slack-manifest: --api-url must be an https URL without query or fragment (the central stack's "
            f"SlackRequestUrl output, or its API stage URL); got {url!r}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    path = parts.path.rstrip("/")
    if not path.endswith(SLACK_INTERACTIONS_PATH):
        path += SLACK_INTERACTIONS_PATH  # the API's stage URL: append the interactions route
    request_url = f"https://{parts.netloc}{path}"
    print(json.dumps(slack_app_manifest(request_url, read_threads=args.read_threads), indent=2))
    return EXIT_OK


def cmd_scp(args: argparse.Namespace) -> int:
    """The service control policy protecting the remediation role and the quarantine (architecture §20)."""
    from macie_chatops.scp import SCP_MAX_CHARS, service_control_policy_json

    config = _load(args)
    if config is None:
        return EXIT_BAD_INPUT
    document = service_control_policy_json(config)
    if len(document) > SCP_MAX_CHARS:
        print(f"scp: {len(document)} characters, over the {SCP_MAX_CHARS}-character SCP limit", file=sys.stderr)
        return EXIT_FAILED
    print(document)
    return EXIT_OK


def cmd_operator_policy(args: argparse.Namespace) -> int:
    """The IAM policy the operator CLI's commands need, in the security account (architecture §21)."""
    from macie_chatops.operator_policy import operator_policy_json

    config = _load(args)
    if config is None:
        return EXIT_BAD_INPUT
    print(operator_policy_json(config))
    return EXIT_OK


def build_parser(added: Mapping[str, Command] | None = None) -> argparse.ArgumentParser:
    """The parser of the built-in commands and of ``added`` ones (default: none); the sandbox's commands that
    ``added`` lacks are still listed, and running them says how to get the sandbox."""
    parser = argparse.ArgumentParser(prog="macie-chatops", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add_config_option(sub.add_parser("validate", help="check accounts.yaml; FILE:LINE: field: message on errors"))
    p = add_config_option(sub.add_parser("decide", help="dry run: one JSON line per event file, no I/O"))
    p.add_argument("events", nargs="+", metavar="EVENT.json")
    sub.add_parser("schema", help="print the JSON Schema of accounts.yaml")
    p = sub.add_parser("slack-manifest", help="print the Slack app manifest (JSON) for one-step app creation")
    p.add_argument("--api-url", required=True, help="the central stack's SlackRequestUrl output (or the API URL)")
    p.add_argument(
        "--read-threads",
        action="store_true",
        help="also ask for channels:history and groups:history, so an interrupted digest page post is looked for "
        "in its thread instead of posted again (the token can then read those channels: architecture §22)",
    )
    add_config_option(
        sub.add_parser("scp", help="print the service control policy protecting the remediation role and quarantine")
    )
    add_config_option(sub.add_parser("operator-policy", help="print the IAM policy (JSON) the operator commands need"))
    for name, command in _with_sandbox_names(added or {}).items():
        p = sub.add_parser(name, help=command.help)
        command.configure(p)
        p.set_defaults(added_command=command)

    def with_table(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--table", help="state table (default: $STATE_TABLE_NAME, then macie-chatops-findings)")
        p.add_argument("--region", help="the security account's home region (default: the AWS SDK's)")
        return p

    def with_queue(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("finding_id", metavar="FINDING_ID")
        with_table(p)
        p.add_argument("--queue-url", help="remediation queue URL (default: $REMEDIATION_QUEUE_URL)")
        return with_approval_key(p)

    def with_approval_key(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--approval-key", help=f"the approval key (default: $APPROVAL_KEY_ID, then {_APPROVAL_KEY_ALIAS})"
        )
        return p

    def with_reapprove(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--reapprove",
            action="store_true",
            help="sign a new approval as the operator (an approval from before signing, or one that did not verify: "
            "establish first that it was genuine)",
        )
        return p

    with_queue(sub.add_parser("restore", help="operators: put a quarantined object back (queues the restore job)"))
    with_reapprove(
        with_queue(
            sub.add_parser(
                "retry", help="operators: re-queue the quarantine of a FAILED finding once the cause is fixed"
            )
        )
    )
    p = with_table(sub.add_parser("pending", help="findings awaiting approval, oldest first (JSON lines)"))
    p.add_argument("--team", help="only this team's findings (a team name from accounts.yaml)")
    p.add_argument("--limit", type=_positive, default=50, help="list at most this many (default: 50)")
    p.add_argument("--older-than", type=_older_than, help="only those waiting longer than this (24h, 90m, 3d, 1d12h)")
    p.add_argument("--workspace-url", help="https://<workspace>.slack.com, for the links to the findings' messages")
    p.add_argument("--slack-secret", help="Slack secret name or ARN (default: $SLACK_SECRET_ARN): links via auth.test")
    p = with_table(
        sub.add_parser("sweep", help="operators: re-queue approved findings with no outcome (as the scheduled sweeper)")
    )
    p.add_argument("--queue-url", help="remediation queue URL (default: $REMEDIATION_QUEUE_URL)")
    p.add_argument("--slack-secret", help="Slack secret name or ARN, to update stuck findings' messages")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--dry-run", action="store_true", help="say what would be done; change nothing")
    action.add_argument("--requeue", metavar="FINDING_ID", help="re-queue this APPROVED finding's job now")
    with_reapprove(with_approval_key(p))
    p = add_config_option(with_table(sub.add_parser("exemptions", help="list or revoke exemptions (JSON lines)")))
    _configure_exemptions(p)
    return parser


def _configure_exemptions(parser: argparse.ArgumentParser) -> None:
    from macie_chatops.exemptions_cli import configure

    configure(parser)


def cmd_exemptions(args: argparse.Namespace) -> int:
    from macie_chatops.exemptions_cli import run

    return run(args)


def _with_sandbox_names(added: Mapping[str, Command]) -> dict[str, Command]:
    unavailable = {name: _Unavailable(text, f"nothing provides `{name}`") for name, text in SANDBOX_COMMANDS.items()}
    return {**unavailable, **added}


COMMANDS = {
    "validate": cmd_validate,
    "decide": cmd_decide,
    "schema": cmd_schema,
    "slack-manifest": cmd_slack_manifest,
    "scp": cmd_scp,
    "operator-policy": cmd_operator_policy,
    "restore": cmd_restore,
    "retry": cmd_retry,
    "pending": cmd_pending,
    "sweep": cmd_sweep,
    "exemptions": cmd_exemptions,
}


def main(argv: Sequence[str] | None = None, *, added: Mapping[str, Command] | None = None) -> int:
    """Run one command; ``added``: the commands other packages add (default: the installed ones, read only
    when the command is not built in)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if added is None:
        added = {} if arguments and arguments[0] in COMMANDS else installed_commands()
    args = build_parser(added).parse_args(arguments)
    command = COMMANDS.get(args.command)
    if command is None:
        return _run_added(args.added_command, args)
    return command(args)
