"""botocore_sigv4.py: signs requests with botocore's SigV4 signers (Debian python3-botocore), the
reference that tests/unit/test_sigv4.c compares mediaedge's signer with, byte for byte.
Reads a JSON list of requests on stdin, each {"method", "url", "headers": [[name, value]...],
"params": [[name, value]...] (raw: botocore encodes them), "body" (text, optional), "payload": "sign" | "unsigned", "region", "service", "access_key",
"secret_key", "token" (optional), "time" (seconds since the epoch), "presign" (seconds,
optional: a presigned URL instead of an Authorization header)}; prints a JSON list, each
{"authorization": ..., "content_sha256": ...} or {"url": ...}."""
import datetime
import json
import sys

import botocore.auth
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials


class FixedClock:
    """Stands in for the datetime module inside botocore.auth: utcnow() is the request's time."""
    now = None

    class datetime(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return FixedClock.now

    def __getattr__(self, name):
        return getattr(datetime, name)


def sign(req):
    FixedClock.now = datetime.datetime.utcfromtimestamp(req["time"])
    creds = Credentials(req["access_key"], req["secret_key"], req.get("token"))
    body = req.get("body", "").encode()
    r = AWSRequest(method=req["method"], url=req["url"], data=body or None,
                   params=dict(req.get("params", [])))
    for name, value in req["headers"]:
        r.headers[name] = value
    if req["payload"] == "unsigned":  # S3SigV4Auth reads it from the client's config
        r.context["payload_signing_enabled"] = False
        r.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    if "presign" in req:
        S3SigV4QueryAuth(creds, req["service"], req["region"], expires=req["presign"]).add_auth(r)
        return {"url": r.url}
    cls = S3SigV4Auth if req["service"] == "s3" else SigV4Auth
    cls(creds, req["service"], req["region"]).add_auth(r)
    return {"authorization": r.headers["Authorization"],
            "content_sha256": r.headers.get("X-Amz-Content-SHA256", "")}


def main():
    botocore.auth.datetime = FixedClock()
    json.dump([sign(req) for req in json.load(sys.stdin)], sys.stdout)


if __name__ == "__main__":
    main()
