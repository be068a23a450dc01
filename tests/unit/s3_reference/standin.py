#!/usr/bin/python3
"""standin.py: a small local stand-in of the AWS endpoints S3 credentials come from, which
checks what mediaedge sends (tests/unit/test_s3_creds.c):
  POST /        STS AssumeRoleWithWebIdentity: the form must name the action, version, the
                role STANDIN_ROLE_ARN and carry the token now in STANDIN_TOKEN_FILE; answers
                temporary credentials valid the seconds in STANDIN_TTL_FILE (3600 without it) (else 400 with STS's error).
  GET /creds    the EKS Pod Identity agent: Authorization must be the token now in
                STANDIN_TOKEN_FILE; answers the agent's JSON (else 401).
  anything else an S3 bucket (path-style) that checks the request's SigV4 signature with botocore against
                the credentials handed out last (403 SignatureDoesNotMatch otherwise), and
                answers 200 (a PUT) or an InitiateMultipartUploadResult (POST ?uploads).
                A key with a segment "fail-<status>-<n>" (fail-503-2) is answered <status>
                (503: SlowDown, else InternalError) its first n times.
  GET /log      what was received: a JSON list of {method, path, headers, body, ok}.
Prints "ready <port>" and serves until its stdin closes."""
import datetime
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

LOG = []
FAILS = {}
ISSUED = {"n": 0, "creds": None}


def issue():
    ISSUED["n"] += 1
    n = ISSUED["n"]
    ttl = 3600
    if os.environ.get("STANDIN_TTL_FILE") and os.path.exists(os.environ["STANDIN_TTL_FILE"]):
        with open(os.environ["STANDIN_TTL_FILE"]) as f:
            ttl = int(f.read().strip())
    exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=ttl)
    ISSUED["creds"] = (f"ASIASTANDIN{n:05d}", f"secret/{n}+standin", f"session-token-{n}/+=")
    return ISSUED["creds"], exp.strftime("%Y-%m-%dT%H:%M:%SZ")


def token_now():
    with open(os.environ["STANDIN_TOKEN_FILE"]) as f:
        return f.read().strip()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="text/xml", headers=()):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def record(self, body, ok):
        LOG.append({"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                    "body": body.decode(errors="replace"), "ok": ok})

    def body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def do_HEAD(self):
        self.handle_any()

    def handle_any(self):
        body = self.body()
        path = urllib.parse.urlsplit(self.path).path
        if path == "/log":
            return self.reply(200, json.dumps(LOG), "application/json")
        if path == "/" and self.command == "POST":
            return self.sts(body)
        if path == "/creds":
            return self.pod_identity(body)
        return self.s3(body)

    def sts(self, body):
        form = dict(urllib.parse.parse_qsl(body.decode()))
        ok = (self.command == "POST" and form.get("Action") == "AssumeRoleWithWebIdentity" and
              form.get("Version") == "2011-06-15" and form.get("RoleArn") == os.environ["STANDIN_ROLE_ARN"] and
              form.get("RoleSessionName") and form.get("WebIdentityToken") == token_now() and
              "Authorization" not in self.headers)
        self.record(body, ok)
        if not ok:
            return self.reply(400, "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>"
                                   "<Message>no</Message></Error></ErrorResponse>")
        (key, secret, token), exp = issue()
        self.reply(200, f"""<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:media:mediaedge</SubjectFromWebIdentityToken>
    <Credentials>
      <SessionToken>{token}</SessionToken>
      <SecretAccessKey>{secret}</SecretAccessKey>
      <Expiration>{exp}</Expiration>
      <AccessKeyId>{key}</AccessKeyId>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>""")

    def pod_identity(self, body):
        ok = self.command == "GET" and self.headers.get("Authorization") == token_now()
        self.record(body, ok)
        if not ok:
            return self.reply(401, '{"Message":"bad token"}', "application/json")
        (key, secret, token), exp = issue()
        self.reply(200, json.dumps({"AccessKeyId": key, "SecretAccessKey": secret, "Token": token,
                                    "AccountId": "111122223333", "Expiration": exp}), "application/json")

    def s3(self, body):
        ok = self.signature_ok(body)
        self.record(body, ok)
        if not ok:
            return self.reply(403, "<Error><Code>SignatureDoesNotMatch</Code></Error>")
        for seg in urllib.parse.urlsplit(self.path).path.split("/"):
            if seg.startswith("fail-"):
                _, status, times = seg.split("-")
                seen = FAILS.setdefault(self.command + self.path, 0)
                FAILS[self.command + self.path] = seen + 1
                if seen < int(times):
                    code = "SlowDown" if status == "503" else "InternalError"
                    return self.reply(int(status), f"<Error><Code>{code}</Code></Error>")
        if self.command == "POST" and "uploads" in self.path:
            return self.reply(200, "<InitiateMultipartUploadResult><UploadId>standin-upload</UploadId>"
                                   "</InitiateMultipartUploadResult>")
        self.reply(200, "", headers=[("ETag", '"0123456789abcdef"')])

    def signature_ok(self, body):
        """Recomputes the signature with botocore from the headers the request signed."""
        if ISSUED["creds"] is None or "Authorization" not in self.headers:
            return False
        auth = self.headers["Authorization"]
        try:
            fields = dict(p.strip().split("=", 1) for p in auth.split(" ", 1)[1].split(","))
            signed = fields["SignedHeaders"].split(";")
        except (ValueError, KeyError, IndexError):
            return False
        key, secret, token = ISSUED["creds"]
        if not fields["Credential"].startswith(key + "/") or self.headers.get("x-amz-security-token") != token:
            return False
        req = AWSRequest(method=self.command, url=f"http://{self.headers['Host']}{self.path}", data=body or None)
        for name in signed:
            req.headers[name] = self.headers.get(name, "")
        req.context["timestamp"] = self.headers.get("x-amz-date", "")
        signer = S3SigV4Auth(Credentials(key, secret, token), "s3", "us-east-1")
        canonical = signer.canonical_request(req)
        want = signer.signature(signer.string_to_sign(req, canonical), req)
        return fields.get("Signature") == want


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", server.server_address[1], flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
