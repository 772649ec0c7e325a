//! kill -9 of `clone`, `pull`, `checkout` and `get` at instants spread over each command's
//! life, each followed by a resume: the tree must come out byte-identical to the origin with
//! nothing extra (no temp file, no staging directory), `verify` must pass, and data received
//! before the kill must not be sent again. Also: what `status`, `gc`, `add` and `init` do with
//! lode's own temp names, and that a user's file is never taken for one.
//!
//! Peers run on loopback with relays and discovery off (see common.rs). Each command is killed
//! 20 times; the instants are (i + 1/2)/20 of the time one uninterrupted run took, so they
//! cover start-up, the transfer and the checkout.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::peers::serve;
use crate::common::*;

const RUNS: u32 = 20;
const BIG: usize = 16 << 20;

/// Writes version `v` of the dataset into `ds` (one 32 MiB file, 100 small files, a symlink,
/// an executable) and commits it.
fn write_version(env: &TestEnv, v: u64) {
    env.write("ds/big.bin", noise(BIG, 0x5eed << v));
    for i in 0..100u64 {
        // Version 2 changes half of the small files, drops ten and adds ten.
        if v > 1 && i < 10 {
            let _ = fs::remove_file(env.path(&format!("ds/small/d{}/f{i}.csv", i % 4)));
            env.write(
                &format!("ds/new/f{i}.csv"),
                noise(3000 + i as usize, v * 1000 + i),
            );
            continue;
        }
        let seed = if i % 2 == 0 { v * 1000 + i } else { i };
        env.write(
            &format!("ds/small/d{}/f{i}.csv", i % 4),
            noise(2000 + 37 * i as usize, seed),
        );
    }
    let link = env.path("ds/latest");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(format!("small/d{}", v % 4), &link).unwrap();
    env.write("ds/run.sh", format!("#!/bin/sh\necho {v}\n"));
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(env.path("ds/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    env.ok("ds", &["add", "."]);
    env.ok("ds", &["commit", "-m", &format!("version {v}")]);
}

/// What stands at a path of a tree.
#[derive(Clone, PartialEq, Eq)]
enum Node {
    Dir,
    Link(std::path::PathBuf),
    File { exec: bool, data: Vec<u8> },
}

/// Every path below `root` (the top-level `.lode` aside) with what stands there. Equal maps:
/// byte-identical trees with nothing extra.
fn tree(root: &Path) -> BTreeMap<String, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
            if rel == ".lode" {
                continue;
            }
            let m = fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                out.insert(rel, Node::Link(fs::read_link(&p).unwrap()));
            } else if m.is_dir() {
                out.insert(rel, Node::Dir);
                walk(root, &p, out);
            } else {
                let exec = std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0;
                let data = fs::read(&p).unwrap();
                out.insert(rel, Node::File { exec, data });
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Asserts that two trees are equal, naming the paths that differ.
fn assert_same(got: &BTreeMap<String, Node>, want: &BTreeMap<String, Node>, what: &str) {
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let differ: Vec<&String> = got
        .iter()
        .filter(|(k, v)| want.get(*k).is_some_and(|w| w != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        extra.is_empty() && missing.is_empty() && differ.is_empty(),
        "{what}: extra {extra:?}, missing {missing:?}, different {differ:?}"
    );
}

/// The parts of `tree` under the given top-level names.
fn subtree(t: &BTreeMap<String, Node>, names: &[&str]) -> BTreeMap<String, Node> {
    t.iter()
        .filter(|(k, _)| {
            names
                .iter()
                .any(|n| k == n || k.starts_with(&format!("{n}/")))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Bytes of file content below `p` (files come and go while a command runs): each file's
/// allocated blocks (a download under way is a sparse file: only what arrived takes room),
/// at most its length (a small object's last block is mostly empty), databases aside (they
/// hold no content). Counting every allocated block, `lode.redb` (1.6 MB), the transfer
/// stores' `blobs.db` and the small objects' block tails added 2.4 MB to a clone under way,
/// so a run killed with 42 of the 64 pieces of its big file (66%) passed for one killed after
/// 3/4 of the content had arrived.
fn arrived(p: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(p) else { return 0 };
    rd.flatten()
        .map(|e| {
            let Ok(m) = fs::symlink_metadata(e.path()) else {
                return 0;
            };
            let name = e.file_name();
            let name = name.to_string_lossy();
            if m.is_dir() {
                arrived(&e.path())
            } else if name.ends_with(".redb") || name.ends_with(".db") {
                0
            } else {
                (std::os::unix::fs::MetadataExt::blocks(&m) * 512).min(m.len())
            }
        })
        .sum()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let m = fs::symlink_metadata(&src).unwrap();
        if m.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if m.is_dir() {
            copy_dir(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

/// `LODE_TEST_SLOW_PLACE_MS` for the killed runs and the timed run they are spread over:
/// checkout and get wait this long before each file they rename into place, so that the
/// instants land in every phase reliably on a loaded machine.
const SLOW_MS: &str = "3";

/// Runs `lode ARGS --json` as `home` in `cwd`, slowed down (see [`SLOW_MS`]); asserts success.
fn json_slow(env: &TestEnv, home: &str, cwd: &str, args: &[&str]) -> serde_json::Value {
    let mut cmd = env.cmd_as(home, cwd, args);
    cmd.arg("--json").env("LODE_TEST_SLOW_PLACE_MS", SLOW_MS);
    let out = cmd.output().expect("run lode");
    assert!(
        out.status.success(),
        "lode {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

/// What a killed run saw: whether the command had ended by itself before the kill, and the
/// bytes of content below `watch` at the kill ([`arrived`]).
struct Killed {
    finished: bool,
    bytes_at_kill: u64,
}

/// Starts `cmd`, kills it (SIGKILL) after `delay`, and waits for it.
fn kill_after(mut cmd: Command, delay: Duration, watch: &Path) -> Killed {
    let mut child = cmd
        .env("LODE_TEST_SLOW_PLACE_MS", SLOW_MS)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lode");
    let start = Instant::now();
    let mut finished = false;
    while start.elapsed() < delay {
        if child.try_wait().unwrap().is_some() {
            finished = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(1).min(delay.saturating_sub(start.elapsed())));
    }
    let bytes_at_kill = arrived(watch);
    let _ = child.kill();
    let _ = child.wait();
    Killed {
        finished,
        bytes_at_kill,
    }
}

/// The kill instants: spread evenly over one and a half times `life` (a killed run, watched
/// and slowed, takes longer than the timed one; the last instants may come after the end).
fn instants(life: Duration) -> Vec<Duration> {
    (0..RUNS)
        .map(|i| life.mul_f64(1.5 * (f64::from(i) + 0.5) / f64::from(RUNS)))
        .collect()
}

/// After a resume: what `status` and `verify` say about repository `dir`.
fn assert_clean_repo(env: &TestEnv, home: &str, dir: &str) {
    env.ok_as(home, dir, &["verify"]);
    let s = env.json_as(home, dir, &["status"]);
    for k in ["staged", "unstaged", "untracked", "leftovers"] {
        assert_eq!(s[k], serde_json::json!([]), "{dir}: status {k}: {s}");
    }
    // No temp file of a killed checkout stays in `.lode/tmp` either.
    let tmp: Vec<String> = fs::read_dir(env.path(&format!("{dir}/.lode/tmp")))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(tmp.is_empty(), "{dir}: .lode/tmp holds {tmp:?}");
}

/// One killed run of a transfer: bytes that had arrived at the kill, bytes received by the
/// resume, and whether the command had ended by itself before the kill.
type Run = (u64, u64, bool);

/// Checks the resends: a run killed once at least 3/4 of `total` had arrived must not
/// receive more than 1/3 of it again. Also checks that the instants were spread: most runs
/// were killed mid-run, some early in the transfer and some late.
fn check_runs(what: &str, runs: &[Run], total: u64, bound_resends: bool) {
    let (mut early, mut late, mut unfinished) = (0, 0, 0);
    for (i, &(got_before, resent, finished)) in runs.iter().enumerate() {
        if finished {
            continue;
        }
        unfinished += 1;
        if got_before < total / 4 {
            early += 1;
        }
        if got_before >= total / 4 * 3 {
            late += 1;
            assert!(
                !bound_resends || resent < total / 3,
                "{what} run {i}: {got_before} of {total} bytes had arrived before the kill, \
                 yet the resume received {resent}"
            );
        }
    }
    eprintln!(
        "{what}: {unfinished} of {RUNS} killed mid-run ({early} early, {late} late); \
         (received before the kill, received by the resume, ended first) = {runs:?}"
    );
    // Spread: many runs killed mid-way, some early, and some in the second half of the
    // transfer (how many land where depends on the machine's speed at the moment).
    let second_half = runs.iter().filter(|r| !r.2 && r.0 >= total / 2).count();
    assert!(
        unfinished >= RUNS / 4 && early >= 1 && second_half >= 1,
        "{what}: the kills were not spread over the run"
    );
}

#[test]
fn kill_9_during_clone_then_resume() {
    let env = TestEnv::new();
    env.init();
    write_version(&env, 1);
    let origin = tree(&env.path("ds"));
    let server = serve(&env, "srv", "ds");
    // The first transfer of an object makes the server compute its outboard: warm up first,
    // so that the timed run is like the killed ones.
    env.json_as("peer", "", &["clone", &server.ticket, "warm"]);
    let t = Instant::now();
    let full = json_slow(&env, "peer", "", &["clone", &server.ticket, "whole"]);
    let life = t.elapsed();
    let total = full["bytes"].as_u64().unwrap();
    assert_same(&tree(&env.path("whole")), &origin, "uninterrupted");
    let mut runs = Vec::new();
    for (i, delay) in instants(life).into_iter().enumerate() {
        let dir = format!("c{i}");
        let killed = kill_after(
            env.cmd_as("peer", "", &["clone", &server.ticket, &dir]),
            delay,
            &env.path(&dir),
        );
        // Resume: `lode pull` in the half-made clone (every other run, when it got as far
        // as naming its origin), else `lode clone` again into the same directory.
        let has_origin = env.path(&format!("{dir}/.lode")).is_dir()
            && env
                .cmd_as("peer", &dir, &["remote", "list"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("origin"));
        let r = if i % 2 == 1 && has_origin {
            env.json_as("peer", &dir, &["pull"])
        } else {
            env.json_as("peer", "", &["clone", &server.ticket, &dir])
        };
        runs.push((
            killed.bytes_at_kill,
            r["bytes"].as_u64().unwrap(),
            killed.finished,
        ));
        assert_same(
            &tree(&env.path(&dir)),
            &origin,
            &format!("clone run {i} (killed at {delay:?})"),
        );
        assert_clean_repo(&env, "peer", &dir);
        fs::remove_dir_all(env.path(&dir)).unwrap();
    }
    eprintln!("one clone took {life:?}");
    check_runs("clone", &runs, total, true);
}

#[test]
fn kill_9_during_pull_then_resume() {
    let env = TestEnv::new();
    env.init();
    write_version(&env, 1);
    let server = serve(&env, "srv", "ds");
    env.json_as("peer", "", &["clone", &server.ticket, "base"]);
    write_version(&env, 2);
    let origin = tree(&env.path("ds"));
    copy_dir(&env.path("base"), &env.path("warm"));
    env.json_as("peer", "warm", &["pull"]);
    copy_dir(&env.path("base"), &env.path("whole"));
    let t = Instant::now();
    let full = json_slow(&env, "peer", "whole", &["pull"]);
    let life = t.elapsed();
    let total = full["bytes"].as_u64().unwrap();
    assert!(total > BIG as u64, "{full}");
    assert_same(&tree(&env.path("whole")), &origin, "uninterrupted");
    let mut runs = Vec::new();
    for (i, delay) in instants(life).into_iter().enumerate() {
        let dir = format!("p{i}");
        copy_dir(&env.path("base"), &env.path(&dir));
        let before = arrived(&env.path(&format!("{dir}/.lode")));
        let killed = kill_after(
            env.cmd_as("peer", &dir, &["pull"]),
            delay,
            &env.path(&format!("{dir}/.lode")),
        );
        let r = env.json_as("peer", &dir, &["pull"]);
        runs.push((
            killed.bytes_at_kill.saturating_sub(before),
            r["bytes"].as_u64().unwrap(),
            killed.finished,
        ));
        assert_same(
            &tree(&env.path(&dir)),
            &origin,
            &format!("pull run {i} (killed at {delay:?})"),
        );
        assert_clean_repo(&env, "peer", &dir);
        fs::remove_dir_all(env.path(&dir)).unwrap();
    }
    eprintln!("one pull took {life:?}");
    check_runs("pull", &runs, total, true);
}

#[test]
fn kill_9_during_checkout_then_resume() {
    let env = TestEnv::new();
    env.init();
    write_version(&env, 1);
    let v1 = env.head("ds").unwrap();
    let tree1 = tree(&env.path("ds"));
    write_version(&env, 2);
    let tree2 = tree(&env.path("ds"));
    // The two directions: to version 1 (detached), back to main (version 2).
    let t = Instant::now();
    json_slow(&env, "home", "ds", &["checkout", &v1]);
    let life = t.elapsed();
    assert_same(&tree(&env.path("ds")), &tree1, "uninterrupted");
    env.ok("ds", &["checkout", "main"]);
    let mut unfinished = 0;
    for (i, delay) in instants(life).into_iter().enumerate() {
        let (rev, want) = if i % 2 == 0 {
            (v1.as_str(), &tree1)
        } else {
            ("main", &tree2)
        };
        let killed = kill_after(env.cmd("ds", &["checkout", rev]), delay, &env.path("ds"));
        unfinished += u32::from(!killed.finished);
        env.ok("ds", &["checkout", rev]);
        assert_same(
            &tree(&env.path("ds")),
            want,
            &format!("checkout run {i} (killed at {delay:?})"),
        );
        assert_clean_repo(&env, "home", "ds");
    }
    eprintln!("checkout: {unfinished} of {RUNS} killed mid-run; one took {life:?}");
    assert!(unfinished >= RUNS / 4, "the kills came mid-run");
}

#[test]
fn kill_9_during_get_then_resume() {
    let env = TestEnv::new();
    env.init();
    write_version(&env, 1);
    let want = subtree(
        &tree(&env.path("ds")),
        &["big.bin", "small", "latest", "run.sh"],
    );
    let server = serve(&env, "srv", "ds");
    let args = |to: &str| -> Vec<String> {
        let mut a: Vec<String> = vec!["get".into(), server.ticket.clone()];
        a.extend(["big.bin", "small", "latest", "run.sh", "--to", to].map(String::from));
        a
    };
    let run = |to: &str, slow: bool| -> serde_json::Value {
        let a = args(to);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        if slow {
            json_slow(&env, "peer", "", &a)
        } else {
            env.json_as("peer", "", &a)
        }
    };
    run("warm", false);
    let t = Instant::now();
    let full = run("whole", true);
    let life = t.elapsed();
    let total = full["bytes"].as_u64().unwrap();
    assert_same(&tree(&env.path("whole")), &want, "uninterrupted");
    let mut runs = Vec::new();
    for (i, delay) in instants(life).into_iter().enumerate() {
        let to = format!("g{i}");
        let a = args(&to);
        let mut cmd = env.cmd_as("peer", "", &[]);
        cmd.args(&a);
        let killed = kill_after(cmd, delay, &env.path(&format!("{to}/.lode-get")));
        // Whatever the killed get left, no visible file of it is partial.
        if env.path(&to).is_dir() {
            let left = tree(&env.path(&to));
            for (p, v) in &left {
                if p.starts_with(".lode-get") {
                    continue;
                }
                assert!(
                    want.get(p) == Some(v) || *v == Node::Dir,
                    "get run {i}: partial or stray {p} after the kill"
                );
            }
        }
        let r = run(&to, false);
        runs.push((
            killed.bytes_at_kill,
            r["bytes"].as_u64().unwrap(),
            killed.finished,
        ));
        assert_same(
            &tree(&env.path(&to)),
            &want,
            &format!("get run {i} (killed at {delay:?})"),
        );
        fs::remove_dir_all(env.path(&to)).unwrap();
    }
    eprintln!("one get took {life:?}");
    // `get` resumes from its transfer store (iroh-blobs' FsStore), but what a kill leaves
    // there is not always whole: its size at the kill overstates what a resume can use, so
    // only correctness and the spread of the instants are checked for it.
    check_runs("get", &runs, total, false);
}

/// A process id that is surely dead: a reaped child's.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

#[test]
fn leftovers_are_shown_removed_and_never_confused_with_user_files() {
    let env = TestEnv::new();
    let ds = env.init();
    env.commit_files(ds, &[("data/a.csv", b"a\n")], "one");
    let dead = dead_pid();
    let mut live = Command::new("sleep").arg("30").spawn().unwrap();
    let dead_tmp = format!("data/.lode-tmp-{dead}-3");
    let live_tmp = format!("data/.lode-tmp-{}-1", live.id());
    let old_tmp = "data/.lode-tmp-aB3xY9"; // an older lode's name (no pid)
    let dead_init = format!(".lode-init-{dead}-Qw3rty");
    env.write(&format!("ds/{dead_tmp}"), vec![7u8; 4096]);
    env.write(&format!("ds/{live_tmp}"), "in progress");
    env.write(&format!("ds/{old_tmp}"), vec![8u8; 4096]);
    env.write(&format!("ds/{dead_init}/lode.redb"), "x");
    // Names a user may well have: never taken for lode's.
    let users = [
        "data/.lode-tmp-notes.txt",
        "data/.lode-tmp-12-draft",
        ".lode-init-Qw3rty.bak",
        "data/.lode-tmp-",
    ];
    for u in users {
        env.write(&format!("ds/{u}"), "mine");
    }
    // While a writer holds the lock, `status` removes nothing: it shows the leftovers of
    // dead processes and older lodes, not the running process's temp file.
    let mut holder = hold_writer_lock(&env, "ds");
    let s = env.json(ds, &["status"]);
    assert_eq!(
        s["leftovers"],
        serde_json::json!([dead_init, dead_tmp, old_tmp]),
        "{s}"
    );
    let mut untracked: Vec<&str> = users.to_vec();
    untracked.sort();
    assert_eq!(s["untracked"], serde_json::json!(untracked), "{s}");
    let human = env.ok(ds, &["status"]);
    assert!(
        human.contains("interrupted lode") && human.contains(old_tmp),
        "{human}"
    );
    for p in [&dead_tmp, &live_tmp, &old_tmp.to_string(), &dead_init] {
        assert!(env.path(&format!("ds/{p}")).exists(), "{p}");
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
    // `add` never stages them.
    let added = env.json(ds, &["add", "."]);
    let added: Vec<String> = serde_json::from_value(added["added"].clone()).unwrap();
    let mut users_sorted: Vec<String> = users.iter().map(|u| u.to_string()).collect();
    users_sorted.sort();
    assert_eq!(added, users_sorted);
    env.ok(ds, &["commit", "-m", "user files"]);
    // `gc` removes the dead processes' and the older lode's, not the running process's.
    let g = env.json(ds, &["gc"]);
    assert_eq!(g["temp_files_removed"], 3, "{g}");
    for p in [&dead_tmp, &old_tmp.to_string(), &dead_init] {
        assert!(!env.path(&format!("ds/{p}")).exists(), "{p}");
    }
    assert!(env.path(&format!("ds/{live_tmp}")).exists());
    // Once its process is gone, `status` removes it (no writer runs now).
    live.kill().unwrap();
    live.wait().unwrap();
    let s = env.json(ds, &["status"]);
    assert_eq!(s["leftovers"], serde_json::json!([]), "{s}");
    assert!(!env.path(&format!("ds/{live_tmp}")).exists());
    for u in users {
        assert_eq!(env.read(&format!("ds/{u}")), b"mine", "{u}");
    }
    let s = env.json(ds, &["status"]);
    assert_eq!(s["leftovers"], serde_json::json!([]), "{s}");
    assert_eq!(s["untracked"], serde_json::json!([]), "{s}");
}

#[test]
fn a_staging_directory_of_a_killed_init_is_removed_by_the_next_one() {
    let env = TestEnv::new();
    let dead = dead_pid();
    let mut live = Command::new("sleep").arg("30").spawn().unwrap();
    let dead_init = format!("ds/.lode-init-{dead}-Abc123");
    let live_init = format!("ds/.lode-init-{}-Xyz789", live.id());
    env.write(&format!("{dead_init}/lode.redb"), "partial");
    env.write(&format!("{live_init}/lode.redb"), "busy");
    env.write("ds/.lode-init-mine/notes", "mine");
    env.ok("", &["init", "ds"]);
    assert!(!env.path(&dead_init).exists());
    assert!(
        env.path(&live_init).exists(),
        "a running init's staging stays"
    );
    assert_eq!(env.read("ds/.lode-init-mine/notes"), b"mine");
    live.kill().unwrap();
    live.wait().unwrap();
    // The one left by a process that died since is removed by `gc` in the working tree.
    env.ok("ds", &["gc"]);
    assert!(!env.path(&live_init).exists());
    assert_eq!(env.read("ds/.lode-init-mine/notes"), b"mine");
}
