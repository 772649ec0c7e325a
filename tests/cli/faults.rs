//! Bad input and faults: outside a repository, paths outside it, unreadable and special
//! files, a file that changes while added, corrupt objects and databases, a second writer,
//! a full disk, and kill -9 at random instants during add and commit.

use std::fs;
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn not_in_a_repository() {
    let env = TestEnv::new();
    fs::create_dir_all(env.path("plain")).unwrap();
    for cmd in [
        &["status"][..],
        &["add", "."],
        &["log"],
        &["commit", "-m", "x"],
        &["verify"],
    ] {
        env.fails("plain", cmd, "not a lode repository");
    }
    env.init();
    env.fails("", &["init", "ds"], "already exists");
}

#[test]
fn paths_outside_the_repository_are_refused() {
    let env = TestEnv::new();
    let ds = env.init();
    env.write("other/file", "x");
    env.fails(ds, &["add", "../other/file"], "outside the repository");
    let abs = env.path("other/file");
    env.fails(
        ds,
        &["add", abs.to_str().unwrap()],
        "outside the repository",
    );
    env.fails(ds, &["add", ".lode/lode.redb"], ".lode");
    env.fails(ds, &["add", "missing.csv"], "did not match");
    // A subdirectory works as the cwd, and `..` inside the tree is fine.
    env.write("ds/sub/f", "f");
    env.write("ds/g", "g");
    env.ok("ds/sub", &["add", "f", "../g"]);
    assert_eq!(
        env.json(ds, &["status"])["staged"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn unreadable_file_is_named() {
    let env = TestEnv::new();
    let root = is_root();
    let run = |args: &[&str]| {
        let mut c = env.cmd("", args);
        if root {
            // Root reads anything: drop to nobody for this test.
            let mut w = Command::new("setpriv");
            w.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
                lode_bin(),
            ])
            .args(args)
            .current_dir(env.path(""))
            .env_clear()
            .env("LODE_HOME", env.path("home"));
            c = w;
        }
        c.output().unwrap()
    };
    fs::set_permissions(
        env.path(""),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    assert!(run(&["init", "ds"]).status.success());
    env.write("ds/ok.csv", "fine");
    env.write("ds/locked.csv", "secret");
    if root {
        Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(env.path("ds"))
            .status()
            .unwrap();
    }
    fs::set_permissions(
        env.path("ds/locked.csv"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let out = run(&["-C", "ds", "add", "."]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("locked.csv") && err.contains("ermission denied"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert_error_line(&err);
    // Nothing was staged by the failed add.
    let st = run(&["-C", "ds", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert!(v["staged"].as_array().unwrap().is_empty(), "{v}");
}

#[test]
fn special_files_are_refused_with_a_hint() {
    let env = TestEnv::new();
    let ds = env.init();
    Command::new("mkfifo")
        .arg(env.path("ds/pipe"))
        .status()
        .unwrap();
    let err = env.fails(ds, &["add", "."], "not a regular file");
    assert!(err.contains(".lodeignore"), "{err}");
    env.write("ds/.lodeignore", "pipe\n");
    env.ok(ds, &["add", "."]);
}

#[test]
fn file_changing_while_added_is_detected() {
    let env = TestEnv::new();
    let ds = env.init();
    env.write("ds/growing.log", vec![b'x'; 32 << 20]);
    let path = env.path("ds/growing.log");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !s2.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
            f.write_all(b"more data\n").unwrap();
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    std::thread::sleep(Duration::from_millis(20));
    let err = env.fails(
        ds,
        &["add", "growing.log"],
        "changed while it was being added",
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(err.contains("growing.log"));
    assert!(env.json(ds, &["status"])["staged"]
        .as_array()
        .unwrap()
        .is_empty());
    env.ok(ds, &["add", "growing.log"]);
}

#[test]
fn corrupt_object_is_named_and_never_written_out() {
    let env = TestEnv::new();
    let ds = env.init();
    env.write("ds/data/cells.csv", vec![b'c'; 2 << 20]);
    env.write("ds/small.txt", "small");
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "m"]);
    let id = b3(&env.path("ds/data/cells.csv"));
    let obj = env.object("ds", &id);
    fs::set_permissions(&obj, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&obj).unwrap();
    bytes[1000] ^= 1;
    fs::write(&obj, bytes).unwrap();
    let out = env.run(ds, &["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&id) && text.contains("data/cells.csv"),
        "{text}"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&env.run(ds, &["verify", "--json"]).stdout).unwrap();
    assert_eq!(v["damaged"][0]["id"], id.as_str());
    // checkout refuses to write it, and leaves the old file as it was.
    fs::remove_file(env.path("ds/data/cells.csv")).unwrap();
    env.fails(ds, &["checkout", "-f", "HEAD"], &id);
    assert!(!env.path("ds/data/cells.csv").exists());
    let leftovers: Vec<_> = fs::read_dir(env.path("ds/data")).unwrap().collect();
    assert!(leftovers.is_empty(), "no temp file left: {leftovers:?}");
    env.fails(ds, &["cat", "HEAD:data/cells.csv"], "corrupt");
}

#[test]
fn corrupt_or_missing_database_is_reported() {
    let env = TestEnv::new();
    let ds = env.init();
    fs::write(
        env.path("ds/.lode/lode.redb"),
        b"this is not a database at all, sorry",
    )
    .unwrap();
    env.fails(ds, &["status"], "corrupt");
    fs::remove_file(env.path("ds/.lode/lode.redb")).unwrap();
    env.fails(ds, &["log"], "corrupt");
}

#[test]
fn second_writer_waits_then_fails_and_readers_keep_working() {
    let env = TestEnv::new();
    let ds = env.init();
    env.write("ds/a", "a");
    env.ok(ds, &["add", "a"]);
    env.ok(ds, &["commit", "-m", "m"]);
    // Hold the writer lock from another process, as a long `lode add` would.
    let mut holder = hold_writer_lock(&env, "ds");
    let start = Instant::now();
    let mut cmd = env.cmd(ds, &["add", "a"]);
    cmd.env("LODE_LOCK_TIMEOUT_MS", "500");
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("another lode command is writing"), "{err}");
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "it waited first"
    );
    assert_error_line(&err);
    // Readers are not blocked by the writer lock.
    env.ok(ds, &["status"]);
    env.ok(ds, &["log"]);
    env.ok(ds, &["ls"]);
    holder.kill().unwrap();
    holder.wait().unwrap();
    env.ok(ds, &["add", "a"]);
}

#[test]
fn full_disk_fails_cleanly_and_a_retry_completes() {
    if !is_root() {
        crate::common::cannot_run("the full-disk test needs root for a private tmpfs mount");
        return;
    }
    let env = TestEnv::new();
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    // One shell in a private mount namespace: a 6 MiB tmpfs, a 4 MiB file that fits in the
    // tree but not twice (tree + store), then room is made and the add retried.
    let script = r#"set -u
mount -t tmpfs -o size=6m tmpfs "$MNT" || exit 99
cd "$MNT" && "$LODE" init ds >/dev/null && cd ds
head -c 1000 /dev/urandom > small && "$LODE" add small && "$LODE" commit -m one >/dev/null
head -c 4500000 /dev/urandom > big
"$LODE" add big 2>"$MNT/../add.err"; echo "add_rc=$?"
"$LODE" verify >/dev/null 2>&1; echo "verify_rc=$?"
"$LODE" status --json > "$MNT/../status.json"; echo "status_rc=$?"
mount -o remount,size=16m "$MNT"
"$LODE" add big; echo "retry_rc=$?"
"$LODE" commit -m two >/dev/null; echo "commit_rc=$?"
"$LODE" verify >/dev/null; echo "verify2_rc=$?"
"#;
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("MNT", &mnt)
        .env("LODE", lode_bin())
        .env("LODE_HOME", env.path("home"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(99) {
        crate::common::cannot_run("cannot mount a tmpfs here for the full-disk test");
        return;
    }
    let err = fs::read_to_string(env.path("add.err")).unwrap();
    assert!(text.contains("add_rc=1"), "{text} {err}");
    assert!(
        err.contains("No space left") && err.contains("free disk space"),
        "{err}"
    );
    assert_error_line(&err);
    assert!(text.contains("verify_rc=0"), "{text}");
    assert!(text.contains("status_rc=0"), "{text}");
    let st: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(env.path("status.json")).unwrap()).unwrap();
    assert!(
        st["staged"].as_array().unwrap().is_empty(),
        "nothing half-staged: {st}"
    );
    assert!(
        text.contains("retry_rc=0")
            && text.contains("commit_rc=0")
            && text.contains("verify2_rc=0"),
        "{text}"
    );
}

/// A tiny deterministic generator, so failures reproduce.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn populate(env: &TestEnv, round: usize) {
    for d in 0..10 {
        for f in 0..30 {
            env.write(
                &format!("ds/d{d}/f{f}.csv"),
                format!("round {round} dir {d} file {f}\n").repeat(50),
            );
        }
    }
    env.write("ds/big.bin", vec![round as u8; 12 << 20]);
}

fn time_of(env: &TestEnv, args: &[&str]) -> Duration {
    let t = Instant::now();
    env.ok("ds", args);
    t.elapsed()
}

fn kill_at(env: &TestEnv, args: &[&str], delay: Duration) {
    let mut child = env
        .cmd("ds", args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
}

#[test]
fn kill_9_during_add_and_commit_leaves_a_consistent_repository() {
    let env = TestEnv::new();
    env.init();
    populate(&env, 0);
    let add_time = time_of(&env, &["add", "."]);
    env.ok("ds", &["commit", "-m", "base"]);
    let mut rng = Lcg(0x10de);
    let runs = 12;
    for round in 1..=runs {
        let before = env.head("ds").unwrap();
        populate(&env, round);
        // kill -9 during add, at a random instant within its expected run time.
        let delay = Duration::from_micros(rng.next() % (add_time.as_micros() as u64 + 1));
        kill_at(&env, &["add", "."], delay);
        env.ok("ds", &["verify"]);
        env.ok("ds", &["status"]);
        // Finish the add, then kill -9 during commit.
        env.ok("ds", &["add", "."]);
        let commit_time = time_of(&env, &["log", "-n", "1"]).max(Duration::from_millis(5)) * 3;
        let delay = Duration::from_micros(rng.next() % (commit_time.as_micros() as u64 + 1));
        kill_at(&env, &["commit", "-m", &format!("round {round}")], delay);
        env.ok("ds", &["verify"]);
        let after = env.head("ds").unwrap();
        if after != before {
            let c = env.json("ds", &["show"]);
            assert_eq!(
                c["commit"]["parents"][0],
                before.as_str(),
                "HEAD is the old commit or its child"
            );
            assert_eq!(c["commit"]["message"], format!("round {round}"));
        } else {
            env.ok("ds", &["commit", "-m", &format!("round {round}")]);
        }
        // The new commit holds exactly the files of this round.
        assert_eq!(env.ok("ds", &["cat", "HEAD:big.bin"]).len(), 12 << 20);
        assert!(env
            .ok("ds", &["cat", "HEAD:d3/f7.csv"])
            .starts_with(&format!("round {round} ")));
    }
    env.ok("ds", &["gc"]);
    env.ok("ds", &["verify"]);
}

/// A database file cut short at any length (some lengths make redb assert) is reported as
/// damaged by every command, with what to do: one error line, exit 1, no panic text.
#[test]
fn truncated_database_is_reported_as_damaged_by_every_command() {
    let env = TestEnv::new();
    let ds = env.init();
    env.commit_files(ds, &[("a.csv", b"a\n1\n")], "one");
    let db = env.path("ds/.lode/lode.redb");
    let whole = fs::read(&db).unwrap();
    let n = whole.len();
    for len in [
        0,
        1,
        100,
        511,
        512,
        4096,
        5000,
        n / 3,
        n / 2,
        n - 4096,
        n - 1,
    ] {
        fs::write(&db, &whole[..len]).unwrap();
        for args in [
            &["status"][..],
            &["log"],
            &["ls"],
            &["show"],
            &["add", "."],
            &["commit", "-m", "x"],
            &["tag", "t"],
            &["checkout", "HEAD"],
            &["meta", "title", "x"],
            &["verify"],
            &["gc"],
            &["serve", "--http", "127.0.0.1:0"],
        ] {
            let err = env.fails(ds, args, "lode.redb");
            assert!(
                err.contains("damaged") || err.contains("corrupt"),
                "{len} {args:?}: {err}"
            );
            assert!(err.contains("hint: restore .lode/lode.redb"), "{err}");
            assert!(
                !err.contains("internal error") && !err.contains("assertion"),
                "{len} {args:?}: {err}"
            );
        }
    }
    fs::write(&db, &whole).unwrap();
    env.ok(ds, &["status"]);
}

/// A secret key file that group or others can read is refused, as ssh refuses such keys:
/// the error names the file and `chmod 600`; once fixed, the key works again.
#[test]
fn group_or_world_readable_key_files_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let ds = env.init();
    env.ok(ds, &["id", "--card"]);
    let device = env.json(ds, &["id"])["device"]
        .as_str()
        .unwrap()
        .to_string();
    let dataset = env.dataset_id(ds);
    let set = |rel: &str, mode: u32| {
        fs::set_permissions(env.path(rel), fs::Permissions::from_mode(mode)).unwrap();
    };
    let cases: [(&str, &[&str]); 3] = [
        ("home/identity.key", &["commit", "-m", "x"]),
        ("home/identity.age", &["id", "--card"]),
        (
            &format!("home/datasets/{dataset}.key"),
            &["grant", &device, "--relay"],
        ),
    ];
    env.write("ds/a.csv", "a\n");
    env.ok(ds, &["add", "."]);
    for (file, args) in cases {
        for mode in [0o644, 0o640, 0o604, 0o620, 0o666] {
            set(file, mode);
            let err = env.fails(ds, args, "too open");
            let path = env.path(file).display().to_string();
            assert!(err.contains(&format!("chmod 600 {path}")), "{err}");
            assert!(err.contains(&format!("{mode:04o}")), "{err}");
        }
        set(file, 0o600);
        env.ok(ds, args);
        // 0400 is private too.
        set(file, 0o400);
        env.ok(ds, &["status"]);
        set(file, 0o600);
    }
}

/// Under `umask 000`, the repository database (epoch secrets, tickets) and every key file
/// are still made 0600, and the key directory 0700.
#[test]
fn secrets_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    sh_ok(
        &env,
        &format!(
            "umask 000 && {b} init --private ds && cd ds && {b} id --card >/dev/null && echo a > a.csv && {b} add a.csv && {b} commit -m one",
            b = lode_bin()
        ),
    );
    let mode = |rel: &str| fs::metadata(env.path(rel)).unwrap().permissions().mode() & 0o777;
    // The umask did apply to the files lode does not treat as secret.
    assert_eq!(mode("ds/a.csv"), 0o666);
    assert_eq!(mode("ds/.lode/lode.redb"), 0o600);
    assert_eq!(mode("home"), 0o700);
    assert_eq!(mode("home/datasets"), 0o700);
    let dataset = env.dataset_id("ds");
    for f in [
        "home/identity.key".to_string(),
        "home/identity.age".into(),
        format!("home/datasets/{dataset}.key"),
    ] {
        assert_eq!(mode(&f), 0o600, "{f}");
    }
    env.ok("ds", &["status"]);
}

/// Runs `script` with `sh -c` in the test's directory, with the environment lode's commands
/// get there; fails the test unless it succeeds.
fn sh_ok(env: &TestEnv, script: &str) {
    let mut sh = std::process::Command::new("sh");
    sh.env_clear();
    for (k, v) in env.cmd("", &[]).get_envs() {
        if let Some(v) = v {
            sh.env(k, v);
        }
    }
    let out = sh
        .current_dir(env.path(""))
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A checked-out file is 0644 (0755 when executable) under any umask: one that would take
/// bits away (077), one that takes none (000) and the usual one (022). (Small files are
/// created with their mode where the umask allows it, and set after the write otherwise.)
/// The files are deleted first, so `--force` discards nothing.
#[test]
fn checked_out_files_have_their_modes_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    env.ok("", &["init", "ds"]);
    env.write("ds/a.csv", "a,b\n1,2\n");
    env.write("ds/sub/run.sh", "#!/bin/sh\necho hi\n");
    fs::set_permissions(env.path("ds/sub/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    env.ok("ds", &["add", "."]);
    env.ok("ds", &["commit", "-m", "one"]);
    let mode = |rel: &str| fs::metadata(env.path(rel)).unwrap().permissions().mode() & 0o777;
    for umask in ["077", "000", "022"] {
        fs::remove_file(env.path("ds/a.csv")).unwrap();
        fs::remove_file(env.path("ds/sub/run.sh")).unwrap();
        sh_ok(
            &env,
            &format!(
                "umask {umask} && cd ds && {b} checkout --force main a.csv sub/run.sh",
                b = lode_bin()
            ),
        );
        assert_eq!(mode("ds/a.csv"), 0o644, "umask {umask}");
        assert_eq!(mode("ds/sub/run.sh"), 0o755, "umask {umask}");
        assert_eq!(fs::read(env.path("ds/a.csv")).unwrap(), b"a,b\n1,2\n");
    }
    env.ok("ds", &["status"]);
}
