"""The Kubernetes manifests (deploy/k8s), checked offline by deploy/k8s/validate: both overlays
render with kubectl kustomize, every Secret key and ConfigMap they reference exists, every file
the configuration names is mounted, the production config passes `mediaedge check-config` per
Deployment, and the pod policies hold. Each broken copy below must be caught, naming what is
wrong, so the validator itself is tested."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SRCDIR = Path(os.environ.get("ME_SRCDIR", Path(__file__).resolve().parents[2]))
BIN = os.environ.get("ME_BIN", str(SRCDIR / "build" / "mediaedge"))

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl (kustomize)")


def validate(k8s_dir, *overlays):
    return subprocess.run(["/usr/bin/python3", str(k8s_dir / "validate"), "--mediaedge", BIN,
                           *[str(k8s_dir / "overlays" / o) for o in overlays]],
                          capture_output=True, text=True, timeout=120)


def test_both_overlays_render_and_pass():
    p = validate(SRCDIR / "deploy" / "k8s")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "validate: dev: " in p.stdout and "validate: prod: " in p.stdout
    out = subprocess.run(["kubectl", "kustomize", str(SRCDIR / "deploy" / "k8s" / "overlays" / "prod")],
                         capture_output=True, text=True, check=True).stdout
    # the production shape: two Deployments of one image, workers preferring spot
    assert out.count("\nkind: Deployment\n") == 2 and "karpenter.sh/capacity-type" in out
    assert "111122223333.dkr.ecr.eu-west-1.amazonaws.com/mediaedge:0.1.0" in out


BREAKAGES = [
    # (file under deploy/k8s, text, replacement, what the validator must say)
    ("base/deployment-api.yaml", "items: [{key: es256-public.pem, path: es256-public.pem}]",
     "items: [{key: es256.pem, path: es256-public.pem}]", "has no key es256.pem"),
    ("base/deployment-api.yaml", "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 20",
     "terminationGracePeriodSeconds 20"),
    ("base/deployment-worker.yaml", "terminationGracePeriodSeconds: 100", "terminationGracePeriodSeconds: 150",
     "within a spot notice"),
    ("base/mediaedge.prod.yaml", '  secret_file: "/run/secrets/mediaedge/webhooks/secret"',
     '  secret_file: "/run/secrets/mediaedge/webhook/secret"', "which is no Secret key mounted"),
    ("base/mediaedge.prod.yaml", "  base_url: \"https://media.example.com\"",
     "  base_url: \"https://media.example.com\"\n  origin_secret_file: \"/run/secrets/mediaedge/origin/secret\"",
     "Deployment/mediaedge-worker container mediaedge: cdn.origin_secret_file names"),
    ("base/deployment-worker.yaml", "- name: MEDIAEDGE_SHUTDOWN_DELAY", "- name: MEDIAEDGE_SHUTDOWN_DELAI",
     "unknown setting"),
    ("base/mediaedge.prod.yaml", "  demo_page: false", "  demo_page: true", "demo"),
    ("base/deployment-api.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false",
     "read-only root"),
    ("base/deployment-worker.yaml", "              ephemeral-storage: 12Gi\n", "", "no limits.ephemeral-storage"),
    ("base/service.yaml", "  selector:\n    app.kubernetes.io/name: mediaedge\n    app.kubernetes.io/component: api",
     "  selector:\n    app.kubernetes.io/name: mediaedge\n    app.kubernetes.io/component: apj",
     "Service/mediaedge-api: selects no Deployment"),
    ("overlays/prod/s3-redis-env.yaml", "secretKeyRef: {name: mediaedge-redis, key: url}",
     "secretKeyRef: {name: mediaedge-redis, key: uri}", "no Secret mediaedge-redis with key uri"),
]


@pytest.mark.parametrize("path,old,new,said", BREAKAGES, ids=[b[3][:40] for b in BREAKAGES])
def test_a_broken_copy_is_caught(tmp_path, path, old, new, said):
    k8s = tmp_path / "k8s"
    shutil.copytree(SRCDIR / "deploy" / "k8s", k8s)
    f = k8s / path
    text = f.read_text()
    assert old in text, f"{path} no longer has {old!r}: update this test"
    f.write_text(text.replace(old, new, 1))
    p = validate(k8s, "prod")  # the base's breakages show there too
    assert p.returncode == 1, p.stdout + p.stderr
    assert said in p.stdout, p.stdout
