"""moto's CopyObject honours ``If-None-Match: *`` as real S3 does (macie_chatops_sandbox.moto_conditional_copy)."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.conftest import AwsSandbox

BUCKET = "conditional-copy-test"


def test_a_conditional_copy_is_refused_when_the_key_holds_an_object_and_made_when_it_is_free(aws: AwsSandbox) -> None:
    # GIVEN a versioned bucket with a source object and another object at the destination key
    s3 = boto3.client("s3", region_name=aws.region)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=BUCKET, Key="source", Body=b"secret")
    s3.put_object(Bucket=BUCKET, Key="taken", Body=b"someone else's")
    copy_source = f"{BUCKET}/source"
    # WHEN a copy to the taken key asks If-None-Match: * THEN S3 refuses it and the key keeps its object
    with pytest.raises(ClientError) as refused:
        s3.copy_object(Bucket=BUCKET, Key="taken", CopySource=copy_source, IfNoneMatch="*")
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    assert s3.get_object(Bucket=BUCKET, Key="taken")["Body"].read() == b"someone else's"
    assert len(s3.list_object_versions(Bucket=BUCKET, Prefix="taken")["Versions"]) == 1
    # AND a copy to a free key is made; without the header a taken key is overwritten, as before
    s3.copy_object(Bucket=BUCKET, Key="free", CopySource=copy_source, IfNoneMatch="*")
    assert s3.get_object(Bucket=BUCKET, Key="free")["Body"].read() == b"secret"
    s3.copy_object(Bucket=BUCKET, Key="taken", CopySource=copy_source)
    assert s3.get_object(Bucket=BUCKET, Key="taken")["Body"].read() == b"secret"
