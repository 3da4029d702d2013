"""S3 for tests: moto's S3 server on loopback (a free port), the way s3fs's own test suite runs.

``s3_bucket`` gives each test an empty bucket of its own with dummy credentials and the server's
address in ``AWS_ENDPOINT_URL`` (botocore, s3fs and so every step read it), and clears s3fs's
cached filesystem instances before and after, so no test sees another's connection or listings.
``access_refused()`` makes the server check credentials, so the dummy ones are refused (HTTP 403)
as a bucket the job may not read or write would be.

``tests/conftest.py`` makes both fixtures available to every test module.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
import s3fs
from moto.core import enable_iam_authentication
from moto.server import ThreadedMotoServer

REGION = "us-east-1"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a moto S3 server on 127.0.0.1."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The name of a new, empty bucket; the environment points every S3 client at the server."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    s3fs.S3FileSystem.clear_instance_cache()
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    s3_client(s3_server).create_bucket(Bucket=bucket)
    yield bucket
    s3fs.S3FileSystem.clear_instance_cache()


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client of the server (boto3's clients are built at run time: typed Any)."""
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION)


def object_keys(endpoint: str, bucket: str) -> list[str]:
    """Every key in the bucket, sorted."""
    listing = s3_client(endpoint).list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


@contextmanager
def access_refused() -> Iterator[None]:
    """Within the block the server authenticates requests: the dummy credentials are unknown
    to it, so every request is refused with HTTP 403."""
    s3fs.S3FileSystem.clear_instance_cache()
    with enable_iam_authentication():
        yield
    s3fs.S3FileSystem.clear_instance_cache()
