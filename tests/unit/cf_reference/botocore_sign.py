"""botocore_sign.py: signs with botocore's CloudFrontSigner (Debian python3-botocore), the
reference that tests/unit/test_cf.c compares mediaedge's signer with, string for string.
Reads one JSON request from $CF_REQ: {"key": PEM path, "key_id", "url", "expires",
optional "resource", "date_greater_than", "ip_address"}; prints {"url", "policy",
"signature"} as JSON (policy and signature: the cookie values, in CloudFront's base64)."""
import datetime
import json
import os
import subprocess
import sys

from botocore.signers import CloudFrontSigner


def rsa_sha1(key):
    def sign(message):
        return subprocess.run(["openssl", "dgst", "-sha1", "-sign", key], input=message,
                              capture_output=True, check=True).stdout
    return sign


def when(t):
    return datetime.datetime.fromtimestamp(t, tz=datetime.timezone.utc) if t else None


def main():
    req = json.loads(os.environ["CF_REQ"])
    signer = CloudFrontSigner(req["key_id"], rsa_sha1(req["key"]))
    custom = req.get("resource") or req.get("date_greater_than") or req.get("ip_address")
    if custom:
        policy = signer.build_policy(req.get("resource") or req["url"], when(req["expires"]),
                                     when(req.get("date_greater_than")), req.get("ip_address"))
        url = signer.generate_presigned_url(req["url"], policy=policy)
    else:
        policy = signer.build_policy(req["url"], when(req["expires"]))
        url = signer.generate_presigned_url(req["url"], date_less_than=when(req["expires"]))
    raw = policy.encode()
    json.dump({"url": url, "policy": signer._url_b64encode(raw).decode(),
               "signature": signer._url_b64encode(signer.rsa_signer(raw)).decode()}, sys.stdout)


main()
