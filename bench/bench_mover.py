"""The mover against the bare S3 calls it is built from, on one moto server, in the same run.

- large object (default 256 MiB, multipart): ``ObjectMover.quarantine`` (HEADs, managed multipart copy with
  metadata, verification, tags, delete, version count) against a bare boto3 managed copy
  (``client.copy``) of the same object with the same TransferConfig. Target: at most 1.2x.
- small objects (default 100 x 1 KiB): the mover's time per object against the bare calls a move needs
  (HEAD the source version, CopyObject, HEAD the copy, DELETE the source version).

Rounds alternate bare and mover so drift hits both alike; the median is printed. Timings only print;
nothing asserts on them (machines are noisy). Run: ``.venv/bin/python bench/bench_mover.py [--size-mb N]
[--rounds N] [--small N]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time

ACCOUNT = "345678901234"
REGION = "us-east-1"
SOURCE = "bench-source"
MB = 1024 * 1024
TARGET_RATIO = 1.2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=int, default=256, help="large object size in MiB (>= 200 for the target)")
    parser.add_argument("--threshold-mb", type=int, default=64, help="multipart threshold and part size in MiB")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small", type=int, default=100, help="number of small objects")
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
    )
    try:
        run(args)
    finally:
        server.stop()
    return 0


def run(args: argparse.Namespace) -> None:
    import boto3
    from boto3.s3.transfer import TransferConfig

    from macie_chatops.move import MoveRequest, ObjectMover
    from macie_chatops.names import quarantine_bucket_name
    from macie_chatops.sessions import MemberSessions

    sessions = MemberSessions(role_name="macie-chatops-remediation", base_session=boto3.Session())
    s3 = sessions.clients(ACCOUNT, REGION, actor="U0BENCH", finding_id="bench").s3
    kms = sessions.clients(ACCOUNT, REGION, actor="U0BENCH", finding_id="bench").kms
    quarantine = quarantine_bucket_name(ACCOUNT, REGION)
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    for bucket in (SOURCE, quarantine):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=quarantine,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}}]
        },
    )
    threshold = args.threshold_mb * MB
    transfer = TransferConfig(
        multipart_threshold=threshold, multipart_chunksize=threshold, preferred_transfer_client="classic"
    )
    steps: list[tuple[str, float]] = []
    mover = ObjectMover(
        s3, multipart_threshold_bytes=threshold, checkpoint=lambda step: steps.append((step.value, time.perf_counter()))
    )
    calls: list[str] = []
    s3.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))

    def upload(key: str, body: bytes) -> MoveRequest:
        put = s3.put_object(
            Bucket=SOURCE, Key=key, Body=body, Metadata={"owner": "bench"}, ContentType="application/octet-stream"
        )
        etag = put["ETag"].strip('"')
        return MoveRequest(
            f"bench-{key.replace('/', '-')}", ACCOUNT, REGION, SOURCE, key, put["VersionId"], etag, len(body), "U0BENCH"
        )

    # -- large object --------------------------------------------------------------------------------------
    body = os.urandom(args.size_mb * MB)
    bare_times: list[float] = []
    mover_times: list[float] = []
    phases: dict[str, list[float]] = {}
    verification = None
    for round_ in range(args.rounds):
        request = upload(f"large/{round_}.bin", body)
        started = time.perf_counter()
        s3.copy(
            CopySource={"Bucket": SOURCE, "Key": request.key, "VersionId": request.version_id},
            Bucket=quarantine,
            Key=f"bare/{round_}.bin",
            Config=transfer,
        )
        bare_times.append(time.perf_counter() - started)
        steps.clear()
        started = time.perf_counter()
        outcome = mover.quarantine(request)
        mover_times.append(time.perf_counter() - started)
        assert outcome.status.value == "QUARANTINED", outcome
        previous = started
        for name, at in steps:
            phases.setdefault(name, []).append(at - previous)
            previous = at
        verification = outcome.verification
        s3.delete_object(Bucket=quarantine, Key=f"bare/{round_}.bin")
    bare, moved = statistics.median(bare_times), statistics.median(mover_times)
    parts = -(-args.size_mb // args.threshold_mb)
    print(f"large object: {args.size_mb} MiB, {parts} parts of {args.threshold_mb} MiB, median of {args.rounds}")
    print(f"  {'bare boto3 managed copy':<44} {bare:8.2f} s")
    print(
        f"  {'mover.quarantine (copy+verify+tag+delete)':<44} {moved:8.2f} s"
        f"   ratio {moved / bare:.2f}x (target <= {TARGET_RATIO}x)"
    )
    print(f"  verification: {verification}")
    print("  mover steps (median s): " + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in phases.items()))

    # -- small objects -------------------------------------------------------------------------------------
    small = b"password=hunter2\n" * 60  # ~1 KiB
    bare_requests = [upload(f"small/bare/{i:04d}.env", small) for i in range(args.small)]
    calls.clear()
    started = time.perf_counter()
    for request in bare_requests:
        s3.head_object(Bucket=SOURCE, Key=request.key, VersionId=request.version_id)
        s3.copy_object(
            Bucket=quarantine,
            Key=f"bare/{request.key}",
            CopySource={"Bucket": SOURCE, "Key": request.key, "VersionId": request.version_id},
        )
        s3.head_object(Bucket=quarantine, Key=f"bare/{request.key}")
        s3.delete_object(Bucket=SOURCE, Key=request.key, VersionId=request.version_id)
    bare_small = (time.perf_counter() - started) / args.small
    bare_calls = len(calls) / args.small
    mover_requests = [upload(f"small/mover/{i:04d}.env", small) for i in range(args.small)]
    calls.clear()
    started = time.perf_counter()
    for request in mover_requests:
        mover.quarantine(request)
    mover_small = (time.perf_counter() - started) / args.small
    mover_calls = len(calls) / args.small
    print(f"small objects: {args.small} x {len(small):,} bytes")
    print(
        f"  {'bare S3 calls (HEAD, COPY, HEAD, DELETE)':<44} {bare_small * 1000:8.1f} ms/object"
        f"  {bare_calls:.0f} requests"
    )
    print(
        f"  {'mover.quarantine':<44} {mover_small * 1000:8.1f} ms/object  {mover_calls:.0f} requests"
        f"   ratio {mover_small / bare_small:.2f}x"
    )
    print("  (the mover adds: a HEAD of the quarantine key, the verified tag, the count of remaining versions)")


if __name__ == "__main__":
    raise SystemExit(main())
