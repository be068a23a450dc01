"""swift_s3.py: the integration tests' S3: one OpenStack Swift all-in-one with s3api per test session
(tests/swift/swift_aio.py, started the first time a test asks for it), a bucket per server, and
what a test needs to run the same assertions on either storage backend:

    server.storage.read(key) / write(key, data) / exists(key) / keys(prefix)

A test module runs on both backends by overriding the `storage_backend` fixture:

    @pytest.fixture(params=swift_s3.BACKENDS)
    def storage_backend(request):
        return request.param

and a server on S3 gets the production profile's settings it needs (conftest.Server): its own
HS256 secret (allowed), a CloudFront key at the development key's path, a TLS certificate
given as a file, no demo page."""
import os
import subprocess
import sys
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "swift"))
import swift_aio  # noqa: E402

# the CI run puts s3 in every parametrized module; ME_S3=0 leaves it out (a machine without Swift)
BACKENDS = ["file", "s3"] if os.environ.get("ME_S3", "1") != "0" else ["file"]


class FileStorage:
    """The file backend's objects, read and written where the backend keeps them."""

    def __init__(self, root):
        self.root = root

    def read(self, key):
        return (self.root / key).read_bytes()

    def write(self, key, data):
        (self.root / key).parent.mkdir(parents=True, exist_ok=True)
        (self.root / key).write_bytes(data)

    def exists(self, key):
        return (self.root / key).is_file()

    def keys(self, prefix=""):
        # os.walk passes over a directory the server removes while it walks (rglob raises)
        found = []
        for d, _, files in os.walk(self.root):
            found += [os.path.relpath(os.path.join(d, f), self.root) for f in files]
        return sorted(k for k in found if k.startswith(prefix) and not any(s.startswith(".") for s in k.split("/")))

    def delete(self, key):
        (self.root / key).unlink(missing_ok=True)


class S3Storage:
    """A bucket of the session's Swift, through botocore."""

    def __init__(self, client, bucket):
        self.client, self.bucket = client, bucket

    def read(self, key):
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(key)

    def write(self, key, data):
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def exists(self, key):
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except self.client.exceptions.ClientError:
            return False

    def keys(self, prefix=""):
        out, kw = [], {"Bucket": self.bucket, "Prefix": prefix}
        while True:
            r = self.client.list_objects_v2(**kw)
            out += [o["Key"] for o in r.get("Contents", [])]
            if not r.get("IsTruncated"):
                return out
            kw["ContinuationToken"] = r["NextContinuationToken"]

    def delete(self, key):
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def multipart_uploads(self):
        return self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])


class Session:
    """The session's Swift and what servers on it share (a certificate)."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.swift = None
        self.cert = None
        self.client = None
        self.cdn_key = None

    def start(self):
        if self.swift is None:
            if not swift_aio.available():
                pytest.skip("Swift is not installed (./bootstrap check installs it)")
            self.swift = swift_aio.SwiftAIO().start()
            self.client = self.swift.client()
        return self.swift

    def new_bucket(self):
        bucket = "it-" + uuid.uuid4().hex[:20]
        self.start()
        self.client.create_bucket(Bucket=bucket)
        return bucket

    def certificate(self):
        if self.cert is None:
            cert, key = self.tmp / "tls.pem", self.tmp / "tls.key"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert), "-days", "2"],
                           check=True, capture_output=True)
            self.cert = (str(cert), str(key))
        return self.cert

    def cloudfront_key(self):
        """One RSA key for every server of the session (making one costs up to a second)."""
        if self.cdn_key is None:
            self.cdn_key = self.tmp / "cloudfront-key.pem"
            subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
                            str(self.cdn_key)], check=True, capture_output=True)
        return self.cdn_key.read_bytes()

    def stop(self):
        if self.swift is not None:
            self.swift.stop()
            self.swift = None


def server_env(session, server_dir):
    """The environment of a server on a new bucket, with the production settings it needs;
    returns (env, S3Storage)."""
    swift = session.start()
    bucket = session.new_bucket()
    cdn_key = server_dir / "var" / "cdn" / "dev-cloudfront-key.pem"  # where tests look for the key
    cdn_key.parent.mkdir(parents=True, exist_ok=True)
    if not cdn_key.exists():
        cdn_key.write_bytes(session.cloudfront_key())
        cdn_key.chmod(0o600)
    cert, key = session.certificate()
    env = {
        "MEDIAEDGE_STORAGE_BACKEND": "s3",
        "MEDIAEDGE_S3_ENDPOINT": swift.endpoint,
        "MEDIAEDGE_S3_BUCKET": bucket,
        "MEDIAEDGE_S3_ADDRESSING": "path",
        "MEDIAEDGE_S3_RETRY_BASE": "20ms",
        "AWS_ACCESS_KEY_ID": swift.access_key,
        "AWS_SECRET_ACCESS_KEY": swift.secret_key,
        "MEDIAEDGE_TOKENS_HS256_SECRET": "integration-tests-secret-" + uuid.uuid4().hex,
        "MEDIAEDGE_TOKENS_ALLOW_HS256_IN_PRODUCTION": "true",
        "MEDIAEDGE_CDN_KEYS": f"DEV={cdn_key}",
        "MEDIAEDGE_TLS_CERT_FILE": cert,
        "MEDIAEDGE_TLS_KEY_FILE": key,
        "MEDIAEDGE_SERVER_DEMO_PAGE": "false",
    }
    return env, S3Storage(session.client, bucket)
