"""The macie-chatops sandbox: the whole pipeline on one machine, with no AWS account and no Slack workspace.

Not part of the Lambda asset. ``make demo``, the e2e tests and the CLI's ``demo`` and ``sandbox`` commands run
it (``commands`` adds them to the CLI through the ``macie_chatops.commands`` entry-point group); ``testkit`` is
what the functional tests and the benchmarks share. ``Sandbox`` (``sandbox.py``) starts and stops the rest.

moto (5.2.5) facts the sandbox relies on or works around:

- cross-account and cross-region EventBridge targets work: a member account's default-bus rule forwards to
  the security account's central bus, in the home region, so events go in the way Macie puts them;
- events delivered to targets carry no ``account`` key (the finding model does not need it);
- a Deny statement in a bucket policy applies whatever its Condition, so no Deny bucket policy is attached;
- conditional writes and SQS message lists are not thread-safe in moto (see ``moto_atomic``);
- moto's state is process-wide: one sandbox per process, reset on start and stop.
"""
