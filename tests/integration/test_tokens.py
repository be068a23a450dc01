"""Tokens end to end: `mediaedge token` output checked by an independent JWT library (PyJWT),
and bearer checks over HTTP at /v1/whoami."""
import json
import subprocess
import time

import jwt  # PyJWT (Debian python3-jwt)
import requests

from conftest import run

SECRET = "integration-test-secret-0123456789abcdef"


def test_hs256_token_verifies_with_pyjwt(tmp_path):
    p = run("token", "--scope", "upload", "--user", "u-1", "--album", "fam_7", "--plan", "premium",
            "--client", "browser", "--max-bytes", "1000", "--ref", "order 9", "--ttl", "600",
            env={"MEDIAEDGE_TOKENS_HS256_SECRET": SECRET}, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    claims = jwt.decode(p.stdout.strip(), SECRET, algorithms=["HS256"], audience="mediaedge", issuer="mediaedge-dev")
    assert claims["sub"] == "u-1" and claims["album"] == "fam_7"
    assert claims["scope"] == "upload" and claims["plan"] == "premium" and claims["client"] == "browser"
    assert claims["max_bytes"] == 1000 and claims["ref"] == "order 9"
    assert 590 <= claims["exp"] - time.time() <= 601


def test_es256_token_verifies_with_pyjwt(tmp_path):
    priv, pub = tmp_path / "priv.pem", tmp_path / "pub.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(priv)],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(priv), "-pubout", "-out", str(pub)], check=True)
    env = {"MEDIAEDGE_TOKENS_ALGORITHM": "ES256", "MEDIAEDGE_TOKENS_ES256_PUBLIC_KEY_FILE": str(pub),
           "MEDIAEDGE_TOKENS_ES256_PRIVATE_KEY_FILE": str(priv)}
    p = run("token", "--scope", "view", "--user", "u2", "--album", "a2", env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    claims = jwt.decode(p.stdout.strip(), pub.read_text(), algorithms=["ES256"], audience="mediaedge")
    assert claims["scope"] == "view" and claims["plan"] == "free"


def test_token_refuses_bad_ids(tmp_path):
    p = run("token", "--scope", "upload", "--user", "../etc", "--album", "a", cwd=tmp_path)
    assert p.returncode == 2
    assert p.stdout == ""


def test_whoami_with_good_token(server):
    token = server.token("--scope", "upload", "--user", "u1", "--album", "a1", "--plan", "premium")
    r = requests.get(server.http + "/v1/whoami", headers={"Authorization": "Bearer " + token})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"] == "u1" and body["album"] == "a1" and body["plan"] == "premium"
    assert body["scope"] == "upload" and body["client"] == "app"
    assert r.headers["cache-control"] == "no-store"


def test_whoami_without_token_is_401_with_challenge(server):
    r = requests.get(server.http + "/v1/whoami")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="mediaedge"'
    assert r.json()["error"] == "unauthorized"


def test_tampered_token_is_401(server):
    token = server.token("--scope", "upload", "--user", "u1", "--album", "a1")
    head, payload, sig = token.split(".")
    forged = jwt.utils.base64url_encode(json.dumps(
        {**json.loads(jwt.utils.base64url_decode(payload)), "plan": "premium"}).encode()).decode()
    for bad in (f"{head}.{forged}.{sig}", token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "x.y.z", "garbage"):
        r = requests.get(server.http + "/v1/whoami", headers={"Authorization": "Bearer " + bad})
        assert r.status_code == 401, bad
        assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_alg_none_and_other_key_refused(server):
    none = jwt.encode({"sub": "u1", "album": "a1", "scope": "upload", "plan": "premium", "iss": "mediaedge-dev",
                       "aud": "mediaedge", "exp": int(time.time()) + 600}, None, algorithm="none")
    other = jwt.encode({"sub": "u1", "album": "a1", "scope": "upload", "plan": "premium", "iss": "mediaedge-dev",
                        "aud": "mediaedge", "exp": int(time.time()) + 600}, "another-secret-" * 3, algorithm="HS256")
    for bad in (none, other):
        r = requests.get(server.http + "/v1/whoami", headers={"Authorization": "Bearer " + bad})
        assert r.status_code == 401


def test_expired_token_is_401_token_expired(make_server):
    s = make_server(env={"MEDIAEDGE_TOKENS_LEEWAY": "0"}).start()
    token = s.token("--scope", "view", "--user", "u1", "--album", "a1", "--ttl", "1")
    time.sleep(2.1)
    r = requests.get(s.http + "/v1/whoami", headers={"Authorization": "Bearer " + token})
    assert r.status_code == 401
    assert r.json()["error"] == "token_expired"


def test_wrong_audience_refused(make_server):
    s = make_server().start()
    token = jwt.encode({"sub": "u1", "album": "a1", "scope": "upload", "plan": "free", "iss": "mediaedge-dev",
                        "aud": "someone-else", "exp": int(time.time()) + 600},
                       "mediaedge-development-key-do-not-use-in-production", algorithm="HS256")
    r = requests.get(s.http + "/v1/whoami", headers={"Authorization": "Bearer " + token})
    assert r.status_code == 401


def test_wrong_scope_is_403(server):
    token = server.token("--scope", "view", "--user", "u1", "--album", "a1")
    auth = {"Authorization": "Bearer " + token}
    assert requests.get(server.http + "/v1/whoami?scope=view", headers=auth).status_code == 200
    r = requests.get(server.http + "/v1/whoami?scope=upload", headers=auth)
    assert r.status_code == 403
    assert r.json()["error"] == "forbidden"
    assert requests.get(server.http + "/v1/whoami?scope=../x", headers=auth).status_code == 400


def test_repeated_token_costs_one_signature_check(server):
    def checks():
        for line in requests.get(server.http + "/metrics").text.splitlines():
            if line.startswith("mediaedge_token_signature_checks_total "):
                return float(line.split()[1])
    token = server.token("--scope", "upload", "--user", "u9", "--album", "a9")
    before = checks()
    for _ in range(20):
        assert requests.get(server.http + "/v1/whoami", headers={"Authorization": "Bearer " + token}).status_code == 200
    assert checks() - before == 1
