"""Benchmarks of the Python package (docs/PERFORMANCE.md, "Python package").

Usage: python bench/python.py [SIZE_MIB]   (with lode-data installed in that interpreter)

In a temp directory: a dataset with a SIZE_MIB file (default 1024) and a small table is
served by `lode serve` on loopback (relays and discovery off); then it measures
`import lode`, a cached `lode.get` of a pinned file, and `lode.open()` reading the big file
against `lode get` writing it to disk.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    bindir = os.path.dirname(sys.executable)
    lode_bin = os.path.join(bindir, "lode")
    root = tempfile.mkdtemp(prefix="lode-pybench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LODE_")}
    env.update(LODE_RELAY="disabled", LODE_NO_DISCOVERY="true", LODE_BIND="127.0.0.1:0")
    lab = dict(env, LODE_HOME=os.path.join(root, "lab"))
    user = dict(env, LODE_HOME=os.path.join(root, "user"), LODE_CACHE_DIR=os.path.join(root, "cache"))
    ds = os.path.join(root, "ds")
    os.makedirs(ds)
    run = lambda *a, e=lab, cwd=ds: subprocess.run([lode_bin, *a], cwd=cwd, env=e, check=True,
                                                 capture_output=True)
    run("init")
    with open(os.path.join(ds, "big.bin"), "wb") as f:
        block = os.urandom(MIB)
        for i in range(size):
            f.write(block[i % 7:] + block[: i % 7])
    with open(os.path.join(ds, "t.csv"), "w") as f:
        f.write("name,type\nAVAL,inter\n")
    run("add", ".")
    run("commit", "-m", "bench")
    run("tag", "v1")
    srv = subprocess.Popen([lode_bin, "serve", "-q"], cwd=ds, env=lab, stdout=subprocess.PIPE, text=True)
    try:
        ticket = srv.stdout.readline().split("ticket: ")[1].strip()
        os.environ.update(user)

        def py(code: str) -> float:
            out = subprocess.run([sys.executable, "-c", code], env=user, check=True,
                                 capture_output=True, text=True)
            return float(out.stdout)

        t_import = statistics.median(
            py("import time; t=time.perf_counter(); import lode; print(time.perf_counter()-t)")
            for _ in range(7))
        print(f"import lode: {t_import * 1000:.1f} ms (median of 7, fresh interpreters)")

        import lode

        dest = os.path.join(root, "get")
        lode.get(ticket, "t.csv", dest=dest + "-0", rev="v1")  # fills the cache
        times = []
        for i in range(1, 21):
            t = time.perf_counter()
            lode.get(ticket, "t.csv", dest=f"{dest}-{i}", rev="v1")
            times.append(time.perf_counter() - t)
        print(f"cached lode.get (pinned rev, new dest): {statistics.median(times) * 1000:.2f} ms "
              f"(median of 20)")

        t = time.perf_counter()
        n = 0
        with lode.open(ticket, "big.bin") as f:
            while True:
                chunk = f.read(MIB)
                if not chunk:
                    break
                n += len(chunk)
        t_open = time.perf_counter() - t
        assert n == size * MIB
        out = os.path.join(root, "cli-get")
        t = time.perf_counter()
        run("get", ticket, "big.bin", "--to", out, e=user, cwd=root)
        t_get = time.perf_counter() - t
        print(f"lode.open() read {size} MiB: {t_open:.2f} s, {size / t_open:.0f} MiB/s")
        print(f"lode get to disk {size} MiB: {t_get:.2f} s, {size / t_get:.0f} MiB/s")
        print(f"open / get throughput: {t_get / t_open:.2f}")
    finally:
        srv.kill()
        srv.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
