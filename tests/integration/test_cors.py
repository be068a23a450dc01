"""Browsers: CORS on the API routes (preflights, the headers of actual responses, errors
included) and the browser rule (uploads from a browser need the premium plan), driven with
requests, curl and tus-js-client under Node with an Origin header, as a web page would send."""
import base64
import hashlib
import json
import subprocess

import pytest
import requests

from conftest import run
from test_tus_js import NODE, NODE_DIR, check_stored, j, make_jpeg, run_upload

APP = "https://app.example.com"
DEV = "http://localhost:3000"
EVIL = "https://evil.example.com"
TUS = {"Tus-Resumable": "1.0.0"}
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
MiB = 1 << 20

ALLOW_HEADERS = ["Authorization", "Content-Type", "Tus-Resumable", "Upload-Length", "Upload-Defer-Length",
                 "Upload-Offset", "Upload-Metadata", "Upload-Checksum", "Upload-Concat",
                 "Upload-Draft-Interop-Version", "Upload-Complete", "X-Request-Id", "X-HTTP-Method-Override"]
EXPOSE_HEADERS = ["Location", "Upload-Offset", "Upload-Length", "Upload-Expires", "Upload-Metadata",
                  "Upload-Defer-Length", "Upload-Concat", "Tus-Resumable", "Tus-Version", "Tus-Extension",
                  "Tus-Max-Size", "Tus-Checksum-Algorithm", "Upload-Complete", "Upload-Limit",
                  "Upload-Draft-Interop-Version", "Media-Id", "X-Request-Id", "Retry-After"]

needs_node = pytest.mark.skipif(
    NODE is None or not (NODE_DIR / "node_modules" / "tus-js-client").is_dir(),
    reason="needs node and tus-js-client: npm ci --prefix tests/integration/node")


@pytest.fixture
def server(make_server):
    return make_server(env={"MEDIAEDGE_HTTP_CORS_ORIGINS": f"{APP}, {DEV}",
                            "MEDIAEDGE_HTTP_MAX_PATCH_SIZE": "1MiB"}).start()


def token(server, plan="free", client="app", user="u1", album="a1"):
    return server.token("--scope", "upload", "--user", user, "--album", album, "--plan", plan, "--client", client)


def auth(tok, **extra):
    return {**TUS, "Authorization": "Bearer " + tok, **extra}


def preflight(url, origin, method="POST", headers="authorization,tus-resumable,upload-length,upload-metadata"):
    return requests.options(url, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                          "Access-Control-Request-Headers": headers})


def listed(value):
    return [v.strip().lower() for v in (value or "").split(",") if v.strip()]


def cors_headers(r):
    return {k.lower(): v for k, v in r.headers.items() if k.lower().startswith("access-control-")}


def assert_actual_cors(r, origin):
    """The headers every actual response to an allowed origin carries, errors included."""
    assert r.headers.get("access-control-allow-origin") == origin, dict(r.headers)
    assert "origin" in listed(r.headers.get("vary")), dict(r.headers)
    exposed = listed(r.headers.get("access-control-expose-headers"))
    assert exposed == [h.lower() for h in EXPOSE_HEADERS], dict(r.headers)
    assert "access-control-allow-credentials" not in r.headers


def create(server, tok, length, **headers):
    return requests.post(server.http + "/v1/uploads", headers=auth(tok, **{"Upload-Length": str(length)}, **headers))


def patch(url, tok, offset, body, **headers):
    return requests.patch(url, data=body, headers=auth(tok, **{
        "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}, **headers))


def storage(server):
    return server.dir / "var" / "storage"


# ---- preflights ----

@pytest.mark.parametrize("path,method", [("/v1/uploads", "POST"), ("/v1/uploads/AAAAAAAAAAAAAAAAAAAAAA", "PATCH")])
def test_preflight_from_allowed_origin_needs_no_token(server, path, method):
    for origin in (APP, DEV):
        r = preflight(server.http + path, origin, method)
        assert r.status_code == 204, (r.status_code, r.text)
        assert r.headers["access-control-allow-origin"] == origin
        assert listed(r.headers["access-control-allow-methods"]) == ["post", "head", "patch", "delete", "options"]
        assert listed(r.headers["access-control-allow-headers"]) == [h.lower() for h in ALLOW_HEADERS]
        assert r.headers["access-control-max-age"] == "3600"
        assert "origin" in listed(r.headers["vary"])
        assert "access-control-allow-credentials" not in r.headers
        assert "tus-version" not in r.headers  # answered as a preflight, not as tus OPTIONS
        assert r.content == b""


def test_preflight_max_age_follows_config(make_server):
    s = make_server(env={"MEDIAEDGE_HTTP_CORS_ORIGINS": APP, "MEDIAEDGE_HTTP_CORS_MAX_AGE": "10m"}).start()
    r = preflight(s.http + "/v1/uploads", APP)
    assert r.status_code == 204 and r.headers["access-control-max-age"] == "600"


def test_preflight_over_http2_with_curl(server):
    out = subprocess.run(["curl", "-sk", "--http2", "-o", "/dev/null", "-D", "-", "-X", "OPTIONS",
                          "-H", f"Origin: {APP}", "-H", "Access-Control-Request-Method: PATCH",
                          server.https + "/v1/uploads/AAAAAAAAAAAAAAAAAAAAAA"],
                         capture_output=True, text=True, timeout=10)
    head = out.stdout.lower()
    assert head.startswith("http/2 204"), out.stdout
    assert f"access-control-allow-origin: {APP}" in head, out.stdout
    assert "access-control-allow-methods: post, head, patch, delete, options" in head, out.stdout


@pytest.mark.parametrize("origin", [EVIL, "null", "https://app.example.com.evil.example.com", "http://app.example.com"])
def test_preflight_from_other_origin_is_refused(server, origin):
    r = preflight(server.http + "/v1/uploads", origin)
    assert r.status_code == 403, (r.status_code, r.text)
    assert r.json()["error"] == "origin_not_allowed" and r.json()["message"]
    assert cors_headers(r) == {}, dict(r.headers)


def test_no_cross_origin_access_by_default(make_server):
    s = make_server().start()
    r = preflight(s.http + "/v1/uploads", APP)
    assert r.status_code == 403 and r.json()["error"] == "origin_not_allowed"
    assert cors_headers(r) == {}
    r = requests.options(s.http + "/v1/uploads", headers={"Origin": APP})
    assert r.status_code == 204 and r.headers["tus-version"] == "1.0.0"
    assert cors_headers(r) == {}


def test_tus_options_is_not_a_preflight(server):
    """tus OPTIONS (no Access-Control-Request-Method) from an allowed origin: the tus
    capabilities plus the CORS headers of an actual response."""
    r = requests.options(server.http + "/v1/uploads", headers={"Origin": APP})
    assert r.status_code == 204, r.text
    assert r.headers["tus-version"] == "1.0.0" and r.headers["tus-max-size"] == str(4 << 30)
    assert "creation" in r.headers["tus-extension"].split(",")
    assert_actual_cors(r, APP)
    assert "access-control-allow-methods" not in r.headers
    # without Origin, Access-Control-Request-Method alone does not make a preflight
    r = requests.options(server.http + "/v1/uploads", headers={"Access-Control-Request-Method": "POST"})
    assert r.status_code == 204 and r.headers["tus-version"] == "1.0.0"
    assert cors_headers(r) == {}


def test_whoami_is_open_to_allowed_origins(server):
    r = preflight(server.http + "/v1/whoami", APP, "GET", "authorization")
    assert r.status_code == 204
    assert listed(r.headers["access-control-allow-methods"]) == ["get", "head"]
    r = requests.get(server.http + "/v1/whoami", headers={"Origin": APP, "Authorization": "Bearer " + token(server)})
    assert r.status_code == 200 and r.json()["plan"] == "free"
    assert_actual_cors(r, APP)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_cluster_routes_have_no_cors(server, path):
    r = requests.get(server.http + path, headers={"Origin": APP})
    assert r.status_code == 200
    assert cors_headers(r) == {} and "vary" not in r.headers
    r = preflight(server.http + path, APP, "GET")
    assert cors_headers(r) == {}


# ---- actual requests ----

def test_premium_browser_upload_exposes_headers_and_stores_the_file(server):
    tok = token(server, plan="premium")
    data = JPEG + bytes(range(256)) * 9000  # about 2.2 MiB: three PATCHes of 1 MiB at most
    meta = "filename " + base64.b64encode(b"kid.jpg").decode()
    r = create(server, tok, len(data), Origin=APP, **{"Upload-Metadata": meta})
    assert r.status_code == 201, r.text
    assert_actual_cors(r, APP)
    url = server.http + r.headers["location"]
    off = 0
    while off < len(data):
        r = patch(url, tok, off, data[off:off + MiB], Origin=APP)
        assert r.status_code == 204, r.text
        assert_actual_cors(r, APP)
        off = int(r.headers["upload-offset"])
    media_id = r.headers["media-id"]
    h = requests.head(url, headers=auth(tok, Origin=APP))
    assert h.status_code == 200 and h.headers["media-id"] == media_id
    assert_actual_cors(h, APP)
    stored = (storage(server) / "originals" / "a1" / media_id).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()
    m = json.loads((storage(server) / "media" / f"{media_id}.json").read_text())
    assert m["plan"] == "premium" and m["original"]["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("case", ["no_version", "no_token", "unknown_upload", "bad_length"])
def test_error_responses_carry_cors_headers(server, case):
    tok = token(server, plan="premium")
    url = server.http + "/v1/uploads"
    if case == "no_version":
        r = requests.post(url, headers={"Origin": APP, "Authorization": "Bearer " + tok, "Upload-Length": "10"})
        want = (412, "unsupported_version")
    elif case == "no_token":
        r = requests.post(url, headers={**TUS, "Origin": APP, "Upload-Length": "10"})
        want = (401, "unauthorized")
    elif case == "unknown_upload":
        r = patch(url + "/AAAAAAAAAAAAAAAAAAAAAA", tok, 0, b"x", Origin=APP)
        want = (404, "not_found")
    else:
        r = requests.post(url, headers=auth(tok, Origin=APP, **{"Upload-Length": "ten"}))
        want = (400, "bad_request")
    assert (r.status_code, r.json()["error"]) == want, r.text
    assert_actual_cors(r, APP)


def test_disallowed_origin_gets_no_cors_headers_but_is_served(server):
    tok = token(server, plan="premium")
    r = create(server, tok, 100, Origin=EVIL)
    assert r.status_code == 201, r.text  # processed: the browser, not the server, hides the answer
    assert cors_headers(r) == {}, dict(r.headers)
    r = requests.post(server.http + "/v1/uploads", headers={**TUS, "Origin": EVIL, "Upload-Length": "1"})
    assert r.status_code == 401 and cors_headers(r) == {}


# ---- the browser rule ----

def assert_browser_refused(r, head=False):
    assert r.status_code == 403, (r.status_code, r.text)
    if not head:
        body = r.json()
        assert body["error"] == "browser_upload_requires_premium", body
        assert "premium" in body["message"] and "browser" in body["message"], body


@pytest.mark.parametrize("origin", [APP, EVIL])
def test_free_plan_with_origin_is_refused(server, origin):
    tok = token(server, plan="free")
    r = create(server, tok, 100, Origin=origin)
    assert_browser_refused(r)
    assert "location" not in r.headers
    assert not list(storage(server).rglob("*.info")), "an upload was created"
    if origin == APP:
        assert_actual_cors(r, APP)  # so that the page can read why


def test_free_plan_with_origin_is_refused_on_every_upload_request(server):
    """An upload created from the app cannot be continued, inspected or ended from a browser
    on the free plan."""
    tok = token(server, plan="free")
    r = create(server, tok, 100)
    assert r.status_code == 201, r.text
    url = server.http + r.headers["location"]
    assert_browser_refused(patch(url, tok, 0, JPEG, Origin=APP))
    assert_browser_refused(requests.head(url, headers=auth(tok, Origin=APP)), head=True)
    assert_browser_refused(requests.delete(url, headers=auth(tok, Origin=APP)))
    h = requests.head(url, headers=auth(tok))  # nothing changed: the app still sees offset 0
    assert h.status_code == 200 and h.headers["upload-offset"] == "0"


def test_browser_client_claim_needs_premium_without_origin(server):
    r = create(server, token(server, plan="free", client="browser"), 100)
    assert_browser_refused(r)
    r = create(server, token(server, plan="premium", client="browser"), 100)
    assert r.status_code == 201, r.text


def test_apps_on_the_free_plan_still_upload(server):
    tok = token(server, plan="free")
    r = create(server, tok, len(JPEG))
    assert r.status_code == 201, r.text
    r = patch(server.http + r.headers["location"], tok, 0, JPEG)
    assert r.status_code == 204 and r.headers["media-id"], r.text


# ---- configuration ----

@pytest.mark.parametrize("how", ["yaml", "env"])
def test_config_refuses_any_origin(tmp_path, how):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("http:\n  cors_origins:\n    - https://app.example.com\n    - \"*\"\n")
    for cmd in ("check-config", "serve"):
        if how == "yaml":
            p = run(cmd, "--config", str(cfg), cwd=tmp_path, timeout=10)
        else:
            p = run(cmd, env={"MEDIAEDGE_HTTP_CORS_ORIGINS": "*"}, cwd=tmp_path, timeout=10)
        assert p.returncode == 2, (cmd, p.stdout, p.stderr)
        first = p.stderr.strip().splitlines()[0]
        assert first.startswith(f"{cfg}:2:" if how == "yaml" else "MEDIAEDGE_HTTP_CORS_ORIGINS:"), first
        assert "http.cors_origins" in first and '"*"' in first and "credentials" in first, first


def test_config_lists_in_yaml_and_check_config(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("http:\n  cors_origins: [https://app.example.com, 'http://localhost:3000']\n  cors_max_age: 2h\n")
    p = run("check-config", "--config", str(cfg), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert '  cors_origins: ["https://app.example.com", "http://localhost:3000"]\n' in p.stdout
    assert "  cors_max_age: 2h\n" in p.stdout
    p = run("check-config", "--config", str(cfg), cwd=tmp_path,
            env={"MEDIAEDGE_HTTP_CORS_ORIGINS": "https://a.example.com/"})
    assert p.returncode == 2 and "'https://a.example.com/'" in p.stderr, p.stderr


# ---- tus-js-client, as a web page would use it ----

@needs_node
def test_tus_js_client_from_a_page_on_the_free_plan_is_refused(server, tmp_path):
    path = tmp_path / "kid.jpg"
    make_jpeg(path, 300_000)
    res = run_upload(server, token(server, plan="free", user="u-5", album="fam_5"), path, MiB, "--origin", APP)
    assert not res["ok"] and res["exit"] == 1, j(res)
    assert res["response"]["status"] == 403, j(res)
    body = json.loads(res["response"]["body"])
    assert body["error"] == "browser_upload_requires_premium", j(res)
    assert "premium" in body["message"] and body["message"] in res["error"], j(res)
    assert res["allowOrigins"] == [APP], j(res)  # a page can read the refusal


@needs_node
def test_tus_js_client_from_a_page_on_premium_uploads(server, tmp_path):
    path = tmp_path / "kid.jpg"
    size = 2 * MiB + 4321
    sha = make_jpeg(path, size)
    res = run_upload(server, token(server, plan="premium", user="u-6", album="fam_6"), path, MiB, "--origin", APP)
    check_stored(server, res, sha, size, "u-6", "fam_6")
    assert res["patches"] == 3 and res["retries"] == 0, j(res)
    assert res["allowOrigins"] == [APP], j(res)  # every response readable by the page
