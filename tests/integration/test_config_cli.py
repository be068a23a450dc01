"""The command line: check-config, bad configs (exit 2 with file:line), the production profile."""
import subprocess

import pytest

from conftest import SRCDIR, run


def test_example_config_is_valid_and_redacted(tmp_path):
    p = run("check-config", "--config", f"{SRCDIR}/conf/mediaedge.yaml",
            env={"MEDIAEDGE_TOKENS_HS256_SECRET": "a-secret-that-is-long-enough-for-hs256-0123"})
    assert p.returncode == 0, p.stderr
    assert "a-secret-that-is-long-enough" not in p.stdout
    assert "<redacted>" in p.stdout
    assert "max_patch_size: 16MiB" in p.stdout


def test_effective_config_reloads(tmp_path):
    p = run("check-config", env={"MEDIAEDGE_SERVER_THREADS": "3", "MEDIAEDGE_LISTEN_HTTPS": ""}, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    again = tmp_path / "again.yaml"
    again.write_text(p.stdout.replace("<redacted>", "x" * 40))
    q = run("check-config", "--config", str(again), cwd=tmp_path)
    assert q.returncode == 0, q.stderr
    assert "threads: 3" in q.stdout
    assert 'https: ""' in q.stdout


@pytest.mark.parametrize("text,line,words", [
    ("server:\n  treads: 4\n", 2, "treads"),
    ("server:\n  threads: many\n", 2, "threads"),
    ("listen:\n  http: \"127.0.0.1:99999\"\n", None, "listen.http"),
    ("http:\n  max_patch_size: 12 parsecs\n", 2, "max_patch_size"),
    ("storage: [1, 2\n", 2, "YAML syntax error"),
    ("tokens:\n  algorithm: none\n", 2, "algorithm"),
    ("shutdown:\n  delay: soon\n", 2, "delay"),
])
def test_bad_config_exits_2_with_line(tmp_path, text, line, words):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    for cmd in ("check-config", "serve"):
        p = run(cmd, "--config", str(cfg), cwd=tmp_path, timeout=10)
        assert p.returncode == 2, (cmd, p.stdout, p.stderr)
        first = p.stderr.strip().splitlines()[0]
        prefix = f"{cfg}:{line}:" if line else f"{cfg}"
        assert first.startswith(prefix), first
        assert words in first


def test_bad_environment_value_names_the_variable(tmp_path):
    p = run("check-config", env={"MEDIAEDGE_SERVER_THREADS": "lots"}, cwd=tmp_path)
    assert p.returncode == 2
    assert "MEDIAEDGE_SERVER_THREADS" in p.stderr


def test_missing_config_file_is_an_error(tmp_path):
    p = run("check-config", "--config", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert p.returncode == 2
    assert "nope.yaml" in p.stderr


def test_production_profile_refuses_development_defaults(tmp_path):
    """Non-file storage means production: each development default is refused by name."""
    key = tmp_path / "pub.pem"
    priv = tmp_path / "priv.pem"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(priv)], check=True)
    subprocess.run(["openssl", "ec", "-in", str(priv), "-pubout", "-out", str(key)], check=True,
                   capture_output=True)
    cert, certkey = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", "/CN=test", "-keyout", str(certkey), "-out", str(cert), "-days", "2"],
                   check=True, capture_output=True)
    prod = {"MEDIAEDGE_STORAGE_BACKEND": "s3", "MEDIAEDGE_S3_BUCKET": "media"}
    steps = [
        ({}, "tokens.hs256_secret"),
        ({"MEDIAEDGE_TOKENS_HS256_SECRET": "p" * 40}, "tokens.algorithm"),
        ({"MEDIAEDGE_TOKENS_ALGORITHM": "ES256", "MEDIAEDGE_TOKENS_ES256_PUBLIC_KEY_FILE": str(key)}, "cdn.keys"),
        ({"MEDIAEDGE_CDN_KEYS": f"K1={priv}"}, "tls.cert_file"),
        ({"MEDIAEDGE_TLS_CERT_FILE": str(cert), "MEDIAEDGE_TLS_KEY_FILE": str(certkey)}, "server.demo_page"),
    ]
    for extra, setting in steps:
        prod.update(extra)
        for cmd in ("check-config", "serve"):
            p = run(cmd, env=prod, cwd=tmp_path, timeout=10)
            assert p.returncode == 2, (cmd, p.stderr)
            assert setting in p.stderr, (setting, p.stderr)
    prod["MEDIAEDGE_SERVER_DEMO_PAGE"] = "false"
    p = run("check-config", env=prod, cwd=tmp_path)
    assert p.returncode == 0, p.stderr


def test_version():
    p = run("version")
    assert p.returncode == 0
    assert p.stdout.startswith("mediaedge 0.1.0")
