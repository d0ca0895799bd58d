"""The macie-chatops sandbox: the whole pipeline on one machine, with no AWS account and no Slack workspace.

Not part of the Lambda asset. ``make demo`` and the e2e tests run it; ``macie-chatops sandbox replay|serve``
expose it to operators. Modules:

- ``sandbox``: :class:`~macie_chatops_sandbox.sandbox.Sandbox`, the context manager that starts and stops
  everything below, puts findings in as member accounts would, clicks, waits and looks;
- ``aws``: moto's ThreadedMotoServer on loopback and per-account boto3 clients (assumed-role credentials);
- ``moto_atomic``: moto's DynamoDB writes and SQS calls made atomic, as the real services are;
- ``moto_fast``: costs only the emulator has (serialization, O(queue) and O(bucket) scans, JSONPath parsing)
  taken out, every response unchanged;
- ``provision``: the stacks' resources, with the names in ``macie_chatops.names``;
- ``lambda_runtime``: the Lambda context object and the SQS event source mapping (pollers);
- ``apigateway``: the REST API proxy integration for ``POST /slack/interactions``;
- ``slack_standin``: the Slack Web API (messages per channel, rate limits, faults, response URLs);
- ``slack_clicks``: real, signed Slack clicks;
- ``findings``: Macie finding events from templates, and harmless sample objects;
- ``replay``, ``commands``, ``demo``: the CLI's ``sandbox replay``, ``sandbox serve`` and ``demo``.

moto (5.2.5) facts the sandbox relies on or works around:

- cross-account and cross-region EventBridge targets work: a member account's default-bus rule forwards to
  the security account's central bus, in the home region, so events go in the way Macie puts them;
- events delivered to targets carry no ``account`` key (the finding model does not need it);
- a Deny statement in a bucket policy applies whatever its Condition, so no Deny bucket policy is attached;
- conditional writes and SQS message lists are not thread-safe in moto (see ``moto_atomic``);
- moto's state is process-wide: one sandbox per process, reset on start and stop.
"""
