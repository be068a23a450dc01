"""The cdn and delivery settings: behind CloudFront (the secret origin header, two values at
once), the CDN's base URL, configured keys (RSA with SHA-1 or SHA-256, ECDSA P-256, rotation),
trusted proxies for X-Forwarded-For, originals served as attachments, small chunks."""
import base64
import os
import subprocess
import time

import requests

import cf_sign
from test_origin import ALBUM, MEDIA, LATER, base, put_media, target

KEYS = os.path.join(os.environ.get("ME_SRCDIR", os.path.join(os.path.dirname(__file__), "../..")), "tests/unit/keys")
RSA, EC, EC_PUB = f"{KEYS}/rsa.pem", f"{KEYS}/es256.pem", f"{KEYS}/es256.pub.pem"
NEW, OLD = "new-origin-secret-0123456789", "old-origin-secret-0123456789"


def view_token(server):
    return {"Authorization": "Bearer " + server.token("--scope", "view", "--user", "u1", "--album", ALBUM)}


def urls(server):
    r = requests.get(f"{server.http}/v1/media/{MEDIA}", headers=view_token(server))
    assert r.status_code == 200, r.text
    return r.json()


def test_behind_cloudfront_the_secret_header_opens_the_origin(make_server):
    s = make_server(env={"MEDIAEDGE_CDN_BASE_URL": "https://media.example.test", "MEDIAEDGE_CDN_KEYS": f"K1={RSA}",
                         "MEDIAEDGE_CDN_ORIGIN_SECRET": NEW, "MEDIAEDGE_CDN_ORIGIN_SECRET_PREVIOUS": OLD}).start()
    data = put_media(s)["thumb.jpg"][1]
    url = s.http + target()
    assert requests.get(url).status_code == 403  # not through CloudFront
    assert requests.get(url, headers={"X-Origin-Secret": "wrong-secret-0123456789"}).status_code == 403
    # CloudFront checked the signature; the origin does not look for one
    for secret in (NEW, OLD):  # both during a rotation
        r = requests.get(url, headers={"X-Origin-Secret": secret})
        assert r.status_code == 200 and r.content == data
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    r = requests.get(url, headers={"X-Origin-Secret": NEW, "Range": "bytes=0-9"})  # CloudFront's ranged fetch
    assert r.status_code == 206 and r.content == data[:10]
    u = urls(s)["variants"]["thumb.jpg"]["url"]
    assert u.startswith(f"https://media.example.test/m/{ALBUM}/{MEDIA}/thumb.jpg?Expires=")
    assert u.endswith("&Key-Pair-Id=K1")
    assert NEW not in s.log_text() and OLD not in s.log_text()


def test_a_configured_rsa_key_with_sha256(make_server):
    s = make_server(env={"MEDIAEDGE_CDN_KEYS": f"K1={RSA}", "MEDIAEDGE_CDN_HASH_ALGORITHM": "SHA256"}).start()
    put_media(s)
    u = urls(s)["variants"]["thumb.jpg"]["url"]
    assert "&Key-Pair-Id=K1&Hash-Algorithm=SHA256" in u
    assert requests.get(u, verify=False).status_code == 200
    assert not (s.dir / "var" / "cdn").exists()  # no development key made


def test_an_ecdsa_key_signs_what_openssl_verifies(make_server, tmp_path):
    s = make_server(env={"MEDIAEDGE_CDN_KEYS": f"EC1={EC}"}).start()
    put_media(s)
    u = urls(s)["variants"]["thumb.jpg"]["url"]
    assert requests.get(u, verify=False).status_code == 200
    resource, query = u.split("?", 1)
    q = dict(p.split("=", 1) for p in query.split("&"))
    assert q["Key-Pair-Id"] == "EC1" and q["Hash-Algorithm"] == "SHA256"
    policy = ('{"Statement":[{"Resource":"%s","Condition":{"DateLessThan":{"AWS:EpochTime":%s}}}]}'
              % (resource, q["Expires"])).encode()
    sig = base64.b64decode(q["Signature"].replace("-", "+").replace("_", "=").replace("~", "/"))
    (tmp_path / "policy").write_bytes(policy)
    (tmp_path / "sig").write_bytes(sig)
    v = subprocess.run(["openssl", "dgst", "-sha256", "-verify", EC_PUB, "-signature", str(tmp_path / "sig"),
                        str(tmp_path / "policy")], capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
    # the same URL again within the step: the signature cache keeps ECDSA's URLs stable here
    assert urls(s)["variants"]["thumb.jpg"]["url"] == u


def test_key_rotation_signs_with_the_new_key_and_accepts_the_old(make_server, tmp_path):
    new = tmp_path / "new.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(new)],
                   check=True, capture_output=True)
    s = make_server(env={"MEDIAEDGE_CDN_KEYS": f"KOLD={RSA},KNEW={new}", "MEDIAEDGE_CDN_ACTIVE_KEY": "KNEW"}).start()
    put_media(s)
    assert urls(s)["variants"]["thumb.jpg"]["url"].endswith("&Key-Pair-Id=KNEW")
    handed_out = cf_sign.url(RSA, base(s) + target(), LATER, key_id="KOLD")  # before the rotation
    assert requests.get(handed_out, verify=False).status_code == 200


def test_forwarded_for_is_believed_from_trusted_proxies_only(make_server):
    s = make_server(env={"MEDIAEDGE_CDN_TRUSTED_PROXIES": "127.0.0.0/8"}).start()
    put_media(s)
    url = cf_sign.url(cf_sign.dev_key(s), base(s) + target(), LATER, ip="198.51.100.0/24")
    assert requests.get(url, verify=False).status_code == 403  # the proxy itself is not the client
    ok = requests.get(url, verify=False, headers={"X-Forwarded-For": "198.51.100.7"})
    assert ok.status_code == 200
    # what the client wrote itself, left of the address our proxy saw, changes nothing
    spoofed = requests.get(url, verify=False, headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.5"})
    assert spoofed.status_code == 403


def test_originals_as_attachments_with_their_sniffed_type(make_server):
    s = make_server(env={"MEDIAEDGE_DELIVERY_SERVE_ORIGINAL": "true"}).start()
    put_media(s)
    m = urls(s)
    assert m["original"]["content_type"] == "image/jpeg"
    r = requests.get(m["original"]["url"], verify=False)
    assert r.status_code == 200 and r.content == b"\xff\xd8\xff original"
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["content-disposition"] == "attachment"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_small_chunks_and_ranges_across_them(make_server):
    s = make_server(env={"MEDIAEDGE_DELIVERY_CHUNK_SIZE": "4KiB"}).start()
    data = put_media(s, files={"thumb.jpg": ("image/jpeg", os.urandom(50000))})["thumb.jpg"][1]
    url = cf_sign.url(cf_sign.dev_key(s), base(s) + target(), LATER)
    assert requests.get(url, verify=False).content == data
    r = requests.get(url, verify=False, headers={"Range": "bytes=4000-12300"})
    assert r.status_code == 206 and r.content == data[4000:12301]


def test_settings_refused_at_start(make_server):
    # a setting's form or rules: a configuration error (2); a key that will not load: the
    # start fails (1), naming the key and file, never key material
    for env, status, says in [({"MEDIAEDGE_CDN_URL_TTL": "2d"}, 2, "cdn.url_ttl"),
                              ({"MEDIAEDGE_CDN_KEYS": "no-equals-sign"}, 2, "cdn.keys"),
                              ({"MEDIAEDGE_CDN_ORIGIN_SECRET": "short"}, 2, "cdn.origin_secret"),
                              ({"MEDIAEDGE_CDN_KEYS": f"K1={RSA}", "MEDIAEDGE_CDN_ACTIVE_KEY": "K2"}, 2,
                               "cdn.active_key"),
                              ({"MEDIAEDGE_CDN_TRUSTED_PROXIES": "10.0.0.0/8,nope"}, 2, "cdn.trusted_proxies"),
                              ({"MEDIAEDGE_CDN_KEYS": f"K1={EC_PUB}"}, 1, "K1: its file holds a public key")]:
        s = make_server(env=env)
        s.start(wait=False)
        assert s.proc.wait(timeout=10) == status, env
        time.sleep(0.05)
        assert says in s.log_text(), (env, s.log_text())
