"""The Python API against real `lode serve` processes on loopback."""

import os
import shutil
import subprocess
import sys
import time

import pytest

import lode
from conftest import lode_bin

V1 = b"name,type\nAVAL,inter\n"
V2 = b"name,type\nAVAL,inter\nAVAR,inter\n"
# Over 1 MiB, so that it streams (the batched path carries small objects only).
BIG = bytes((i * 7 + i // 4096) % 251 for i in range(3 * 1024 * 1024 + 123))


@pytest.fixture
def worms(lab, serve):
    repo = lab.dataset(
        "worms",
        {"tables/neurons.csv": V1, "README": b"worms\n"},
        {"tables/neurons.csv": V2, "video/big.bin": BIG},
    )
    return repo, serve(repo)


def test_installed_command_runs_without_cargo(tmp_path):
    bindir = os.path.dirname(lode_bin())
    path = os.pathsep.join([bindir, "/usr/bin", "/bin"])
    assert shutil.which("cargo", path=path) is None, "cargo must not be on this PATH"
    out = subprocess.run(
        ["lode", "--version"], env={"PATH": path, "HOME": str(tmp_path)},
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("lode "), out.stdout
    bad = subprocess.run(["lode", "no-such-command"], env={"PATH": path}, capture_output=True)
    assert bad.returncode == 2


def test_get_files_directories_and_tags(lab, worms, tmp_path):
    _, srv = worms
    dest = tmp_path / "out"
    got = lode.get(srv.ticket, "tables/neurons.csv", dest=dest)
    assert got == [dest / "tables/neurons.csv"]
    assert got[0].read_bytes() == V2
    # A whole directory, at a tag.
    got = lode.get(srv.ticket, "tables", dest=tmp_path / "old", rev="v1")
    assert [p.read_bytes() for p in got] == [V1]
    # Different bytes already there are not replaced without force.
    with pytest.raises(lode.LodeError) as e:
        lode.get(srv.ticket, "tables", dest=tmp_path / "old")
    assert "would replace" in str(e.value) and e.value.hint
    assert (tmp_path / "old/tables/neurons.csv").read_bytes() == V1
    lode.get(srv.ticket, "tables", dest=tmp_path / "old", force=True)
    assert (tmp_path / "old/tables/neurons.csv").read_bytes() == V2
    # Everything, the big file included.
    calls = []
    got = lode.get(srv.ticket, "", dest=tmp_path / "all", progress=lambda *a: calls.append(a))
    assert calls[0] == ("receiving", 0, calls[0][2]) and calls[0][2] >= len(BIG)
    assert calls[-1] == ("receiving", calls[0][2], calls[0][2])
    assert sorted(p.relative_to(tmp_path / "all").as_posix() for p in got) == [
        "README", "tables/neurons.csv", "video/big.bin"]
    assert (tmp_path / "all/video/big.bin").read_bytes() == BIG


def test_open_streams_verified_bytes_without_writing(lab, worms, tmp_path):
    _, srv = worms
    with lode.open(srv.ticket, "video/big.bin") as f:
        assert f.raw.size == len(BIG)
        head = f.read(1000)
        rest = f.read()
    assert head + rest == BIG
    # Nothing was written to the cache by streaming.
    assert all(not files for _, _, files in os.walk(os.path.join(lab.root, "cache", "objects")))
    assert lode.read_bytes(srv.ticket, "tables/neurons.csv", rev="v1") == V1
    with lode.open(srv.ticket, "tables/neurons.csv") as f:
        assert f.readline() == b"name,type\n"
    with pytest.raises(lode.NotFound):
        lode.read_bytes(srv.ticket, "tables/nope.csv")
    with pytest.raises(lode.NotFound):
        lode.read_bytes(srv.ticket, "tables")  # a directory, not a file


def test_ls_lists_the_tree(lab, worms):
    _, srv = worms
    entries = {e.path: e for e in lode.ls(srv.ticket)}
    assert set(entries) == {"README", "tables", "tables/neurons.csv", "video", "video/big.bin"}
    assert entries["video/big.bin"].size == len(BIG)
    assert entries["tables"].kind == "dir" and entries["README"].kind == "file"
    assert len(entries["README"].id) == 64
    old = {e.path for e in lode.ls(srv.ticket, "v1")}
    assert old == {"README", "tables", "tables/neurons.csv"}
    with pytest.raises(lode.NotFound):
        lode.ls(srv.ticket, "no-such-tag")


def test_clone_and_repository(lab, worms, tmp_path):
    _, srv = worms
    repo = lode.clone(srv.ticket, tmp_path / "clone")
    assert (tmp_path / "clone/video/big.bin").read_bytes() == BIG
    assert [c["message"] for c in repo.log()] == ["version 2", "version 1"]
    assert repo.status()["staged"] == []
    # A script that publishes: init, metadata, add, commit.
    mine = lode.Repository(tmp_path / "mine", init=True)
    (tmp_path / "mine/a.csv").write_bytes(b"x,y\n1,2\n")
    mine.meta("title", "Tracks")
    mine.meta("license", "CC-BY-4.0")
    assert mine.meta("title") == "Tracks"
    assert mine.add()["added"] == ["a.csv"]
    report = mine.commit("first")
    assert len(report["commit"]) == 64
    assert mine.log()[0]["message"] == "first"
    with pytest.raises(lode.LodeError) as e:
        mine.commit("again")
    assert "nothing to commit" in str(e.value)
    (tmp_path / "plain").mkdir()
    with pytest.raises(lode.NotFound):
        lode.Repository(tmp_path / "plain")


def test_lazy_clone_fetches_content_on_demand(lab, worms, tmp_path):
    _, srv = worms
    repo = lode.clone(srv.ticket, tmp_path / "lazy", lazy=True)
    assert [c["message"] for c in repo.log()] == ["version 2", "version 1"]
    assert not (tmp_path / "lazy/video/big.bin").exists()
    lab.lode("reader", tmp_path / "lazy", "get", "video/big.bin")
    assert (tmp_path / "lazy/video/big.bin").read_bytes() == BIG


def test_missing_ticket_raises_not_authorized(lab, serve, tmp_path):
    repo = lab.dataset("secret", {"scan.bin": b"private\n"}, private=True)
    srv = serve(repo)
    with pytest.raises(lode.NotAuthorized) as e:
        lode.get(srv.ticket, "scan.bin", dest=tmp_path / "out")
    assert e.value.hint
    assert not (tmp_path / "out/scan.bin").exists()
    with pytest.raises(lode.NotAuthorized):
        lode.read_bytes(srv.ticket, "scan.bin")


def test_cache_hit_needs_no_provider(lab, worms, tmp_path):
    _, srv = worms
    first = lode.get(srv.ticket, "tables", "README", dest=tmp_path / "a", rev="v1")
    assert [p.read_bytes() for p in first] == [b"worms\n", V1]
    lode.get(srv.ticket, "video/big.bin", dest=tmp_path / "b")
    srv.stop()
    # The provider is gone: a pinned revision seen before is a lookup.
    start = time.monotonic()
    again = lode.get(srv.ticket, "tables/neurons.csv", dest=tmp_path / "c", rev="v1")
    assert time.monotonic() - start < 2
    assert again[0].read_bytes() == V1
    with lode.open(srv.ticket, "tables/neurons.csv", rev="v1") as f:
        assert f.read() == V1
    assert {e.path for e in lode.ls(srv.ticket, "v1")} == {"README", "tables", "tables/neurons.csv"}
    # A damaged cache object is never handed out.
    objects = os.path.join(lab.root, "cache", "objects")
    for d, _, files in os.walk(objects):
        for name in files:
            p = os.path.join(d, name)
            os.chmod(p, 0o644)
            with open(p, "r+b") as f:
                f.write(b"Z")
    with pytest.raises(lode.VerificationError):
        lode.get(srv.ticket, "tables/neurons.csv", dest=tmp_path / "d", rev="v1")
    assert not (tmp_path / "d/tables/neurons.csv").exists()
    with pytest.raises(lode.VerificationError):
        lode.read_bytes(srv.ticket, "README", rev="v1")
    # Both damaged objects were dropped from the cache (the next load fetches them again).
    left = [f for _, _, files in os.walk(objects) for f in files]
    assert len(left) == 1  # big.bin, not read since


def test_uri_with_provider_hint_resolves_on_a_fresh_home(lab, worms, tmp_path, monkeypatch):
    _, srv = worms
    monkeypatch.setenv("LODE_HOME", lab.home("fresh"))
    monkeypatch.setenv("LODE_CACHE_DIR", str(tmp_path / "fresh-cache"))
    u = lode.uri(srv.ticket, "tables/neurons.csv", rev="v1")
    assert u.startswith("lode://") and "&provider=lode1" in u
    got = lode.get(u, dest=tmp_path / "out")
    assert got[0].read_bytes() == V1
    bare = u.split("?")[0]
    monkeypatch.setenv("LODE_HOME", lab.home("fresher"))
    with pytest.raises(lode.NotFound) as e:
        lode.get(bare, dest=tmp_path / "none")
    assert "use a ticket once" in str(e.value)
    with pytest.raises(lode.LodeError):
        lode.get(bare + "?provider=lode1notaticket", dest=tmp_path / "none")


def test_network_options_are_checked(lab, worms, tmp_path):
    _, srv = worms
    with pytest.raises(lode.LodeError) as e:
        lode.get(srv.ticket, "README", dest=tmp_path / "x", bind="not-an-address")
    assert "bind" in str(e.value)


def test_a_tampering_peer_is_caught_and_nothing_is_kept(lab, worms, tmp_path):
    repo, srv = worms
    big = next(e for e in lode.ls(srv.ticket) if e.path == "video/big.bin")
    # Bit rot in the served object after the server prepared it: it now sends bytes that
    # do not hash to the id it announces.
    obj = os.path.join(repo, ".lode", "objects", big.id[:2], big.id[2:])
    os.chmod(obj, 0o644)
    at = 2_000_000
    with open(obj, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0xFF]))
    # Streaming: every byte handed out is the published one; then the read raises.
    got = b""
    with pytest.raises(lode.LodeError) as e:
        with lode.open(srv.ticket, "video/big.bin") as f:
            while True:
                chunk = f.read(64 * 1024)
                if not chunk:
                    break
                got += chunk
    assert isinstance(e.value, (lode.VerificationError, lode.PeerUnreachable)), e.value
    assert len(got) <= at and got == BIG[: len(got)]
    # get: nothing in dest, nothing in the cache.
    with pytest.raises((lode.VerificationError, lode.PeerUnreachable)):
        lode.get(srv.ticket, "video", dest=tmp_path / "out")
    assert not (tmp_path / "out/video/big.bin").exists()
    cached = [f for _, _, fs in os.walk(os.path.join(lab.root, "cache", "objects")) for f in fs]
    assert big.id[2:] not in cached
