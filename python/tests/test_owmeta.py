"""lode.owmeta with the real owmeta-core from PyPI (tests/python.rs runs this file in a
virtualenv that has it: target/owmeta-venv, with LODE_TEST_REQUIRE_OWMETA set)."""

import os
import subprocess
import sys

import pytest

if os.environ.get("LODE_TEST_REQUIRE_OWMETA"):
    import owmeta_core.datasource_loader  # noqa: F401  (must be importable here)
else:
    pytest.importorskip("owmeta_core.datasource_loader")

import lode  # noqa: E402
from owmeta_core.datasource_loader import LoadFailed  # noqa: E402

from lode.owmeta import LodeDataSource, LodeDirLoader  # noqa: E402

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "owmeta", "check_loader.py")
V1 = b"name,type\nAVAL,inter\n"
V2 = b"name,type\nAVAL,inter\nAVAR,inter\n"


def test_loads_by_uri_on_a_home_that_never_saw_a_ticket(lab, serve, tmp_path, monkeypatch):
    repo = lab.dataset("ow", {"tables/neurons.csv": V1}, {"tables/neurons.csv": V2})
    srv = serve(repo)
    uri = lode.uri(srv.ticket, "tables/neurons.csv", rev="v1")
    base = tmp_path / "owmeta-files"
    base.mkdir()
    # The example script, as a user runs it: a fresh LODE_HOME, no ticket used before.
    env = lab.env("fresh")
    env["LODE_CACHE_DIR"] = str(tmp_path / "cache")
    out = subprocess.run(
        [sys.executable, EXAMPLE, str(base), uri], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    loaded = out.stdout.strip()
    assert os.path.realpath(loaded).startswith(os.path.realpath(base))
    with open(os.path.join(loaded, "tables/neurons.csv"), "rb") as f:
        assert f.read() == V1

    # In-process: by ticket and directory (the current version), through the cache.
    monkeypatch.setenv("LODE_HOME", lab.home("fresh2"))
    monkeypatch.setenv("LODE_CACHE_DIR", str(tmp_path / "cache"))
    loader = LodeDirLoader(str(base))
    ds = LodeDataSource(ident="http://example.org/by-ticket", lode_uri=f"{srv.ticket} tables")
    d = loader(ds)
    with open(os.path.join(d, "tables/neurons.csv"), "rb") as f:
        assert f.read() == V2

    # A failure is owmeta's LoadFailed, with lode's message, and leaves nothing behind.
    bad = LodeDataSource(ident="http://example.org/missing",
                         lode_uri=lode.uri(srv.ticket, "no/such.csv"))
    with pytest.raises(LoadFailed) as e:
        loader(bad)
    assert "no/such.csv" in str(e.value)
    assert not [n for n in os.listdir(base) if n.endswith(".partial")]

    # The pinned URI loads again with the provider gone: the cache answers.
    srv.stop()
    pinned = LodeDataSource(ident="http://example.org/pinned", lode_uri=uri)
    d = loader(pinned)
    with open(os.path.join(d, "tables/neurons.csv"), "rb") as f:
        assert f.read() == V1
