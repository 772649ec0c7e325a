//! A hermetic environment for driving the real `lode` binary: its own temp dir, `LODE_HOME`
//! inside it, a cleared environment, and helpers that assert on exit status and output.

pub mod peers;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct TestEnv {
    pub tmp: tempfile::TempDir,
}

pub fn lode_bin() -> &'static str {
    env!("CARGO_BIN_EXE_lode")
}

impl TestEnv {
    pub fn new() -> TestEnv {
        TestEnv {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Where repository `repo` (relative to the test root) stores object `id` (hex).
    pub fn object(&self, repo: &str, id: &str) -> PathBuf {
        self.path(&format!("{repo}/.lode/objects/{}/{}", &id[..2], &id[2..]))
    }

    /// `repo`'s object store, read through lode's own store (objects in their own files,
    /// in packs, or in chunks).
    pub fn store(&self, repo: &str) -> lode::store::Store {
        lode::store::Store::new(
            self.path(&format!("{repo}/.lode/objects")),
            self.path(&format!("{repo}/.lode/tmp")),
        )
    }

    /// Whether `repo`'s store holds object `id` (in its own file, a pack, or chunks).
    pub fn holds(&self, repo: &str, id: &str) -> bool {
        self.store(repo).has(&id.parse().expect("an object id"))
    }

    /// The bytes of object `id` in `repo`'s store, wherever it is kept; `None` when absent.
    pub fn object_bytes(&self, repo: &str, id: &str) -> Option<Vec<u8>> {
        use std::io::Read;
        let id: lode::ObjectId = id.parse().expect("an object id");
        let mut out = Vec::new();
        self.store(repo)
            .reader(&id)
            .ok()?
            .read_to_end(&mut out)
            .ok()?;
        Some(out)
    }

    /// Bit rot in place: flips the byte at `at` of object `id` in `repo`'s store, in its own
    /// file or in the pack that holds it (same length, same inode: a server that opened it
    /// reads the damage).
    pub fn rot(&self, repo: &str, id: &str, at: u64) {
        use std::io::{Read, Seek, SeekFrom, Write};
        use std::os::unix::fs::PermissionsExt;
        let own = self.object(repo, id);
        let (file, start) = if own.exists() {
            (own, 0)
        } else {
            let id: lode::ObjectId = id.parse().expect("an object id");
            self.store(repo)
                .pack_file_of(&id)
                .unwrap_or_else(|| panic!("{repo} holds no object {id}"))
        };
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file)
            .unwrap();
        let mut b = [0u8; 1];
        f.seek(SeekFrom::Start(start + at)).unwrap();
        f.read_exact(&mut b).unwrap();
        f.seek(SeekFrom::Start(start + at)).unwrap();
        f.write_all(&[b[0] ^ 0xff]).unwrap();
    }

    /// A `lode` command started in `cwd` (relative to the temp dir).
    pub fn cmd(&self, cwd: &str, args: &[&str]) -> Command {
        self.cmd_as("home", cwd, args)
    }

    /// A `lode` command of another peer: its own `LODE_HOME` (device identity). Network
    /// commands stay on loopback: direct addresses, no relay, no discovery.
    pub fn cmd_as(&self, home: &str, cwd: &str, args: &[&str]) -> Command {
        let mut c = Command::new(lode_bin());
        c.args(args)
            .current_dir(self.path(cwd))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LODE_HOME", self.path(home))
            .env("LODE_LOCK_TIMEOUT_MS", "2000")
            .env("LODE_BIND", "127.0.0.1:0")
            .env("LODE_RELAY", "disabled")
            .env("LODE_NO_DISCOVERY", "true")
            .stdin(Stdio::null());
        c
    }

    #[must_use]
    pub fn run(&self, cwd: &str, args: &[&str]) -> Output {
        self.cmd(cwd, args).output().expect("run lode")
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, cwd: &str, args: &[&str]) -> String {
        self.ok_as("home", cwd, args)
    }

    /// [`TestEnv::ok`] as peer `home`.
    pub fn ok_as(&self, home: &str, cwd: &str, args: &[&str]) -> String {
        let out = self.cmd_as(home, cwd, args).output().expect("run lode");
        assert!(
            out.status.success(),
            "lode {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs and asserts failure with a one-line error containing `needle`; returns stderr.
    pub fn fails(&self, cwd: &str, args: &[&str], needle: &str) -> String {
        self.fails_as("home", cwd, args, needle)
    }

    /// [`TestEnv::fails`] as peer `home`.
    pub fn fails_as(&self, home: &str, cwd: &str, args: &[&str], needle: &str) -> String {
        let out = self.cmd_as(home, cwd, args).output().expect("run lode");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success(),
            "lode {args:?} should fail; stderr: {err}"
        );
        assert_eq!(out.status.code(), Some(1), "exit code of {args:?}: {err}");
        assert!(
            err.contains(needle),
            "lode {args:?}: expected {needle:?} in {err:?}"
        );
        assert_error_line(&err);
        err
    }

    pub fn json_as(&self, home: &str, cwd: &str, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.cmd_as(home, cwd, &a).output().expect("run lode");
        assert!(
            out.status.success(),
            "lode {a:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("valid JSON")
    }

    pub fn json(&self, cwd: &str, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(cwd, &a)).expect("valid JSON")
    }

    pub fn write(&self, rel: &str, data: impl AsRef<[u8]>) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
        fs::write(p, data).expect("write");
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        fs::read(self.path(rel)).expect("read")
    }

    /// Writes `files` into repository `cwd`, adds everything and commits with `msg`.
    pub fn commit_files(&self, cwd: &str, files: &[(&str, &[u8])], msg: &str) {
        for (rel, data) in files {
            self.write(&format!("{cwd}/{rel}"), data);
        }
        self.ok(cwd, &["add", "."]);
        self.ok(cwd, &["commit", "-m", msg]);
    }

    /// The dataset id (hex) of repository `cwd`.
    pub fn dataset_id(&self, cwd: &str) -> String {
        self.json(cwd, &["show"])["dataset"]
            .as_str()
            .expect("dataset id")
            .to_string()
    }

    /// `lode init ds` and returns "ds".
    pub fn init(&self) -> &'static str {
        self.ok("", &["init", "ds"]);
        "ds"
    }

    /// Paths of the HEAD commit, from `lode ls --json`.
    pub fn ls(&self, cwd: &str, rev: &str) -> Vec<(String, String)> {
        let v = self.json(cwd, &["ls", rev]);
        v.as_array()
            .expect("array")
            .iter()
            .map(|e| {
                (
                    e["path"].as_str().unwrap().to_string(),
                    e["id"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    pub fn head(&self, cwd: &str) -> Option<String> {
        self.json(cwd, &["status"])["head"]
            .as_str()
            .map(String::from)
    }
}

/// An error is one `error: ...` line with no panic text.
pub fn assert_error_line(stderr: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "error must be one line: {stderr:?}");
    assert!(lines[0].starts_with("error: "), "{stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr:?}");
}

pub fn b3(path: &Path) -> String {
    blake3::hash(&fs::read(path).expect("read"))
        .to_hex()
        .to_string()
}

/// Deterministic pseudo-random bytes (xorshift from `seed | 1`), so that nothing
/// deduplicates or compresses.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    let mut x = seed | 1;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    data
}

/// Holds the writer lock of repository `repo` from another process (`flock … sleep 10`), as
/// a long `lode add` would; kill the child to release it.
pub fn hold_writer_lock(env: &TestEnv, repo: &str) -> std::process::Child {
    let holder = Command::new("flock")
        .arg("-o")
        .arg(env.path(&format!("{repo}/.lode/lock")))
        .args(["sleep", "10"])
        .spawn()
        .expect("start flock");
    std::thread::sleep(std::time::Duration::from_millis(300));
    holder
}

pub fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// A test that cannot run its case here (not root, a tool or PyPI missing) says so; under CI
/// (the `CI` environment variable set, as `.ci/run` runs) that is a failure, since `.ci/run`
/// provides everything the suite needs: nothing passes there without having run.
pub fn cannot_run(why: &str) {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false") {
        panic!("{why}: under CI every case must run (.ci/run installs what the tests need)");
    }
    eprintln!("not run: {why}");
}
