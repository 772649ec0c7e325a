"""Fixtures: the installed wheel's `lode` command, hermetic homes, and real `lode serve`
processes on loopback (relays and discovery off), as tests/cli/sync.rs runs them."""

import os
import queue
import shutil
import subprocess
import sys
import threading
import time

import pytest

NET_ENV = {
    "LODE_RELAY": "disabled",
    "LODE_NO_DISCOVERY": "true",
    "LODE_BIND": "127.0.0.1:0",
}


def lode_bin():
    """The `lode` console script the wheel installed next to this interpreter."""
    path = os.path.join(os.path.dirname(sys.executable), "lode")
    assert os.path.exists(path), f"the wheel installed no lode command at {path}"
    return path


class Lab:
    """A temp directory with one LODE_HOME per identity and a cache per test."""

    def __init__(self, root):
        self.root = root

    def home(self, name):
        h = os.path.join(self.root, "homes", name)
        os.makedirs(h, exist_ok=True)
        return h

    def env(self, home):
        env = {k: v for k, v in os.environ.items() if not k.startswith("LODE_")}
        env.update(NET_ENV)
        env["LODE_HOME"] = self.home(home)
        return env

    def lode(self, home, cwd, *args, check=True):
        out = subprocess.run(
            [lode_bin(), *args], cwd=cwd, env=self.env(home), capture_output=True, text=True
        )
        if check and out.returncode != 0:
            raise AssertionError(f"lode {args} failed: {out.stderr}")
        return out

    def dataset(self, name, files_v1, files_v2=None, private=False):
        """A dataset at tag v1 (files_v1), then main (files_v2 if given), made by `lab`."""
        d = os.path.join(self.root, name)
        os.makedirs(d)
        self.lode("lab", d, "init", *(["--private"] if private else []))
        for version, files in ((1, files_v1), (2, files_v2)):
            if files is None:
                continue
            for rel, data in files.items():
                p = os.path.join(d, rel)
                os.makedirs(os.path.dirname(p), exist_ok=True)
                with open(p, "wb") as f:
                    f.write(data)
            self.lode("lab", d, "add", ".")
            self.lode("lab", d, "commit", "-m", f"version {version}")
            if version == 1:
                self.lode("lab", d, "tag", "v1")
        return d


class Server:
    def __init__(self, lab, repo):
        self.proc = subprocess.Popen(
            [lode_bin(), "serve", "-q"],
            cwd=repo,
            env=lab.env("lab"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(l) for l in self.proc.stdout], daemon=True
        ).start()
        try:
            line = lines.get(timeout=60)
        except queue.Empty:
            self.stop()
            raise AssertionError("lode serve printed no ticket in 60 s")
        assert line.startswith("ticket: "), line
        self.ticket = line[len("ticket: "):].strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture
def lab(tmp_path, monkeypatch):
    lab = Lab(str(tmp_path))
    for k in list(os.environ):
        if k.startswith("LODE_"):
            monkeypatch.delenv(k)
    for k, v in NET_ENV.items():
        monkeypatch.setenv(k, v)
    # The API's own identity and cache, never the user's.
    monkeypatch.setenv("LODE_HOME", lab.home("user"))
    monkeypatch.setenv("LODE_CACHE_DIR", os.path.join(lab.root, "cache"))
    return lab


@pytest.fixture
def serve(lab):
    servers = []

    def start(repo):
        s = Server(lab, repo)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()
