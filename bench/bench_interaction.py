"""The interaction endpoint: warm latency per signed click, and what a cold start costs.

1. Warm, in one process against moto's server and the Slack stand-in (both on loopback), the real
   ``lambda_handler`` with real signed API Gateway events, the cases taking turns in every round:
   - accepted: a Remediate click by an approver (listed user or user-group member, the group cached) on its
     own pending finding: verify, parse, GetItem, conditional UpdateItem, SendMessage, the replacement
     message rendered and POSTed to the click's response_url (the stand-in);
   - refused: a click with a bad signature (the 401 path: nothing read past the headers);
   - bare: the AWS calls an accepted click needs at the least (GetItem, conditional UpdateItem,
     SendMessage), straight from boto3, against the same server: what the endpoint adds is the difference
     (the response_url POST included).
   p50 / p99 in milliseconds, and the accepted click's ratio to the bare calls.
2. Cold: fresh interpreters, medians. ``import macie_chatops.handlers.interaction`` against a bare
   ``import boto3`` (target: at most 1.3x). For honesty, also the imports the first signed request adds
   (slack_sdk.signature, the domain, the store, the config model, Slack's Web API client) and one full
   cold click (import, clients, secret, config, the click itself) against the same servers, since Lambda
   pays all of that inside the first invocation, within Slack's 3 s.

Timings only print; nothing asserts on them.
Run: ``.venv/bin/python bench/bench_interaction.py [clicks] [cold-runs]`` (defaults 1000 and 9).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # bench.bench_import_handlers

TARGET_RATIO = 1.3
REGION = "us-east-1"
IMPORTS = {
    "import boto3": "import boto3",
    "import macie_chatops.handlers.interaction": "import macie_chatops.handlers.interaction",
    "... + first-request imports": (
        "import macie_chatops.handlers.interaction; import slack_sdk.signature; import macie_chatops.interaction; "
        "import macie_chatops.store; import macie_chatops.slack_client; import macie_chatops.slack_secrets"
    ),
}
# The context is Lambda's own object (the endpoint reads its request id): nothing of ours loads before the clock.
COLD_CLICK = """
import json, sys, time
from macie_chatops_sandbox.slack_clicks import signed_click_event
class LambdaContext:
    aws_request_id = "cold-click"
event = signed_click_event(sys.argv[1], action_id="macie_chatops.remediate", finding_id=sys.argv[2],
                           user_id="U0ALICE", team_id="T0EXAMPLE", channel_id="C0PAYMENTS", response_url=sys.argv[3])
t = time.perf_counter()
from macie_chatops.handlers.interaction import lambda_handler
response = lambda_handler(event, LambdaContext())
elapsed = time.perf_counter() - t
assert json.loads(response["body"]).get("replace_original") is True, response
print(elapsed)
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def line(name: str, values: list[float], baseline: list[float] | None = None) -> str:
    p50, p99 = percentile(values, 0.50) * 1000, percentile(values, 0.99) * 1000
    ratio = f"   {p50 / (percentile(baseline, 0.50) * 1000):5.2f}x bare" if baseline else ""
    return f"  {name:<44} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms{ratio}"


def warm(world: Any, clicks: int) -> dict[str, list[float]]:
    from macie_chatops import names
    from macie_chatops.handlers.interaction import lambda_handler
    from macie_chatops_sandbox.slack_clicks import api_gateway_event, sign
    from macie_chatops_sandbox.testkit.interaction import context

    finding_ids = [f"bench{n:06d}" for n in range(clicks)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(world.seed, finding_ids))
    dynamodb, sqs = world.dynamodb, world.sqs
    samples: dict[str, list[float]] = {"accepted": [], "refused": [], "bare": []}
    lambda_handler(world.click_event(names.ACTION_DISMISS, "warm-up", "U0ALICE"), context())  # build the clients
    for n, finding_id in enumerate(finding_ids):
        user = "U0ALICE" if n % 2 else "U0BOB"  # a listed approver, a member of S0SECOPS
        event = world.click_event(names.ACTION_REMEDIATE, finding_id, user)
        t = time.perf_counter()
        response = lambda_handler(event, context())
        samples["accepted"].append(time.perf_counter() - t)
        assert response["statusCode"] == 200 and '"replace_original":true' in response["body"], response

        body = event["body"].encode()
        bad = api_gateway_event(body, sign("not-the-signing-secret", int(time.time()), body))
        t = time.perf_counter()
        response = lambda_handler(bad, context())
        samples["refused"].append(time.perf_counter() - t)
        assert response["statusCode"] == 401

        t = time.perf_counter()
        dynamodb.get_item(TableName=names.STATE_TABLE_NAME, Key={"finding_id": {"S": finding_id}}, ConsistentRead=True)
        dynamodb.update_item(
            TableName=names.STATE_TABLE_NAME,
            Key={"finding_id": {"S": finding_id}},
            UpdateExpression="SET #b = :b",
            ConditionExpression="#s = :s",
            ExpressionAttributeNames={"#b": "bench", "#s": "state"},
            ExpressionAttributeValues={":b": {"S": user}, ":s": {"S": "APPROVED"}},
        )
        sqs.send_message(QueueUrl=world.queue_url, MessageBody=finding_id)
        samples["bare"].append(time.perf_counter() - t)
    return samples


def cold_clicks(world: Any, runs: int) -> list[float]:
    from macie_chatops_sandbox.testkit.world import SIGNING_SECRET

    times = []
    for n in range(runs):
        finding_id = f"cold{n:04d}"
        world.seed(finding_id)
        out = subprocess.run(
            [sys.executable, "-c", COLD_CLICK, SIGNING_SECRET, finding_id, world.response_url(finding_id)],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            env=dict(os.environ),
        ).stdout
        times.append(float(out.strip().splitlines()[-1]))
    return times


def main() -> int:
    clicks = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 9
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # fake credentials for moto
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        SKIP_SLACK_SDK_WARNING="1",
        POWERTOOLS_LOG_LEVEL="ERROR",  # the handler logs every click; the bench measures, not logs
    )
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    from bench.bench_import_handlers import measure_statements
    from macie_chatops.config import load_config
    from macie_chatops_sandbox.testkit.interaction import build_world, standin
    from macie_chatops_sandbox.testkit.world import review_summary

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
    try:
        with standin() as slack, tempfile.TemporaryDirectory() as config_dir:
            config = load_config(ROOT / "accounts.yaml")
            event = json.loads((ROOT / "tests" / "events" / "personal-review.json").read_text(encoding="utf-8"))
            world = build_world(
                config=config,
                summary=review_summary(config, event),
                config_dir=Path(config_dir),
                setenv=os.environ.__setitem__,
                slack=slack,
            )
            # The handler prints a metric line (EMF) per click, as on Lambda; kept out of the report.
            with contextlib.redirect_stdout(io.StringIO()):
                samples = warm(world, clicks)
            cold = cold_clicks(world, max(3, runs // 2))
            imports = measure_statements(IMPORTS, runs)
    finally:
        server.stop()

    print(f"warm handling, {clicks} signed clicks in-process (moto server + Slack stand-in on loopback)")
    print(line("accepted Remediate (verify..queue, respond)", samples["accepted"], samples["bare"]))
    print(line("refused: bad signature (401)", samples["refused"]))
    print(line("bare GetItem + UpdateItem + SendMessage", samples["bare"]))
    baseline = imports["import boto3"]
    print(f"cold import, median of {runs} fresh interpreters (ratio to import boto3; target <= {TARGET_RATIO}x)")
    for name, seconds in imports.items():
        print(f"  {name:<44} {seconds * 1000:8.1f} ms   {seconds / baseline:5.2f}x")
    print(
        f"  {'cold first click (import..answer, ' + str(len(cold)) + ' runs)':<44} "
        f"{statistics.median(cold) * 1000:8.1f} ms   {statistics.median(cold) / baseline:5.2f}x"
    )
    ratio = imports["import macie_chatops.handlers.interaction"] / baseline
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(f"handler import / boto3 import = {ratio:.2f}x ({verdict} the {TARGET_RATIO}x target)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
