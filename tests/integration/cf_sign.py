"""cf_sign.py: CloudFront signed URLs and cookies for the integration tests, made with
botocore's CloudFrontSigner (the reference), so that what mediaedge accepts is checked against
what AWS's own signer makes, not against mediaedge's signer."""
import datetime
import subprocess

from botocore.signers import CloudFrontSigner


def dev_key(server):
    """The development key a standalone server made under its data directory."""
    return str(server.dir / "var" / "cdn" / "dev-cloudfront-key.pem")


def _signer(key, key_id):
    def sign(message):
        return subprocess.run(["openssl", "dgst", "-sha1", "-sign", key], input=message,
                              capture_output=True, check=True).stdout
    return CloudFrontSigner(key_id, sign)


def _when(t):
    return datetime.datetime.fromtimestamp(t, tz=datetime.timezone.utc) if t else None


def url(key, target, expires, key_id="DEV", resource=None, ip=None, not_before=None):
    """target signed with a canned policy, or a custom one when resource, ip or not_before."""
    s = _signer(key, key_id)
    if resource or ip or not_before:
        policy = s.build_policy(resource or target, _when(expires), _when(not_before), ip)
        return s.generate_presigned_url(target, policy=policy)
    return s.generate_presigned_url(target, date_less_than=_when(expires))


def cookies(key, resource, expires, key_id="DEV", ip=None):
    """The CloudFront-* cookies of a custom policy over resource (wildcards allowed)."""
    s = _signer(key, key_id)
    policy = s.build_policy(resource, _when(expires), None, ip).encode()
    return {"CloudFront-Policy": s._url_b64encode(policy).decode(),
            "CloudFront-Signature": s._url_b64encode(s.rsa_signer(policy)).decode(),
            "CloudFront-Key-Pair-Id": key_id}
