"""The /demo upload page in headless Chromium (Debian's chromium, driven by playwright-core): a
premium user uploads a photo with tus-js-client and sees its thumbnail, loaded through a signed
URL; a free-plan user sees the refusal's message. Screenshots are kept as test artifacts
(ME_ARTIFACTS, default the test's temp directory)."""
import json
import os
import re
import shutil
import subprocess

import pytest
import requests

from test_processing import photo

NODE_DIR = os.path.join(os.path.dirname(__file__), "node")
pytestmark = [
    pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs Debian's chromium"),
    pytest.mark.skipif(not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "playwright-core")),
                       reason="needs playwright-core (./bootstrap check installs it)"),
    pytest.mark.skipif(shutil.which("convert") is None, reason="needs ImageMagick's convert"),
]


def artifacts(tmp_path):
    d = os.environ.get("ME_ARTIFACTS") or str(tmp_path)
    os.makedirs(d, exist_ok=True)
    return d


def open_page(server, plan, tmp_path, file, want, shot):
    tok = {scope: server.token("--scope", scope, "--user", "demo-user", "--album", "demo-album", "--plan", plan)
           for scope in ("upload", "view")}
    url = f"{server.http}/demo#upload={tok['upload']}&view={tok['view']}"
    p = subprocess.run(["node", "demo.mjs", url, str(file), os.path.join(artifacts(tmp_path), shot), want],
                       cwd=NODE_DIR, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr + server.log_text()[-3000:]
    return json.loads(p.stdout)


def test_a_premium_user_uploads_a_photo_and_sees_its_thumbnail(make_server, tmp_path):
    s = make_server(env={"MEDIAEDGE_SERVER_ROLE": "all"}).start()
    page = requests.get(s.http + "/demo")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    js = requests.get(s.http + "/demo/tus.min.js")
    assert js.status_code == 200 and "tus" in js.text  # served by mediaedge: no CDN at run time
    f = tmp_path / "kid.jpg"
    f.write_bytes(photo(tmp_path, "src.jpg", "1200x900"))
    shown = open_page(s, "premium", tmp_path, f, "thumbnail", "demo-premium.png")
    assert shown["error"] is None, shown
    assert shown["width"] == 320, shown  # the square thumbnail, decoded by the browser
    assert re.match(rf"{re.escape(s.http)}/m/demo-album/[A-Za-z0-9_-]+/thumb\.jpg\?Expires=\d+&Signature=", shown["thumbnail"])
    assert shown["progress"] == [1]
    # the upload went in PATCHes, as the page's tus client sends them
    assert any(l.get("type") == "access" and l["method"] == "PATCH" for l in s.log_lines())


def test_a_free_plan_user_sees_why(make_server, tmp_path):
    s = make_server(env={"MEDIAEDGE_SERVER_ROLE": "all"}).start()
    f = tmp_path / "kid.jpg"
    f.write_bytes(photo(tmp_path, "src.jpg", "64x64"))
    shown = open_page(s, "free", tmp_path, f, "error", "demo-free.png")
    assert shown["error"] == ("Uploading from a web browser needs the premium plan. Use the mobile app, "
                              "or upgrade to premium."), shown


def test_without_tokens_the_page_says_how_to_open_it(server):
    r = requests.get(server.http + "/demo")
    assert r.status_code == 200 and "#upload=" in requests.get(server.http + "/demo/demo.js").text
    assert requests.get(server.http + "/demo/other.js").status_code == 404
