"""The build: configure accepts only the libh2o whose internals server/http/h2o_private.c reads."""
import os
import subprocess

import pytest

from conftest import SRCDIR


def test_configure_refuses_another_libh2o(tmp_path):
    configure = os.path.join(SRCDIR, "configure")
    if not os.path.exists(configure):
        pytest.skip("no configure script (run ./bootstrap)")
    pc = tmp_path / "pc"
    pc.mkdir()
    (pc / "libh2o-evloop.pc").write_text("Name: libh2o-evloop\nDescription: a later libh2o\nVersion: 0.16.0\n"
                                         "Cflags:\nLibs:\n")
    build = tmp_path / "build"
    build.mkdir()
    env = dict(os.environ, PKG_CONFIG_PATH=str(pc))
    p = subprocess.run([configure, "-q"], cwd=build, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert "mediaedge needs libh2o 2.2.5" in p.stderr
    assert "Found: 0.16.0" in p.stderr
