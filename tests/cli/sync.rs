//! Peer-to-peer sync between real processes on 127.0.0.1 (relays and discovery off): clone,
//! pull, get, fetch; malformed tickets, unreachable and lying peers, hostile trees, resume.

use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

use lode::ticket::{Provider, Ticket};

use crate::common::peers::*;
use crate::common::*;

fn dataset(env: &TestEnv) -> &'static str {
    let ds = env.init();
    env.write("ds/tables/neurons.csv", "name,type\nAVAL,inter\n");
    env.write("ds/video/day1.bin", vec![1u8; 3 << 20]);
    env.write("ds/empty.txt", "");
    std::os::unix::fs::symlink("tables/neurons.csv", env.path("ds/latest.csv")).unwrap();
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "day 1"]);
    ds
}

fn same_tree(env: &TestEnv, a: &str, b: &str) {
    assert_eq!(env.ls(a, "HEAD"), env.ls(b, "HEAD"));
    for (p, id) in env.ls(b, "HEAD") {
        let path = env.path(&format!("{b}/{p}"));
        if fs::symlink_metadata(&path).unwrap().is_file() {
            assert_eq!(b3(&path), id, "{p}");
        }
    }
}

#[test]
fn clone_then_pull_between_two_peers() {
    let env = TestEnv::new();
    let ds = dataset(&env);
    let server = serve(&env, "srv", ds);
    assert_eq!(env.ok(ds, &["ticket"]).trim(), server.ticket);
    let r = env.json("", &["clone", &server.ticket, "copy"]);
    assert!(r["objects"].as_u64().unwrap() >= 6, "{r}");
    same_tree(&env, ds, "copy");
    assert_eq!(
        fs::read_link(env.path("copy/latest.csv")).unwrap().to_str(),
        Some("tables/neurons.csv")
    );
    assert_eq!(env.head("copy"), env.head(ds));
    // The owner commits while serving; the clone pulls only what changed.
    env.write(
        "ds/tables/neurons.csv",
        "name,type\nAVAL,inter\nRIML,motor\n",
    );
    env.write("ds/video/day2.bin", vec![2u8; 1 << 20]);
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "day 2"]);
    let r = env.json("copy", &["pull"]);
    let bytes = r["bytes"].as_u64().unwrap();
    assert!(
        bytes < (1 << 20) + 64 * 1024,
        "only the new objects travel: {r}"
    );
    same_tree(&env, ds, "copy");
    assert_eq!(env.head("copy"), env.head(ds));
    // An up-to-date pull moves nothing.
    let r = env.json("copy", &["pull"]);
    assert_eq!(r["objects"], 0, "{r}");
    // A pull refuses to overwrite local changes.
    env.write("ds/tables/neurons.csv", "v3");
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "day 3"]);
    env.write("copy/tables/neurons.csv", "my local edit");
    let err = env.fails("copy", &["pull"], "uncommitted changes");
    assert!(err.contains("neurons.csv"));
    assert_eq!(env.read("copy/tables/neurons.csv"), b"my local edit");
    env.ok("copy", &["verify"]);
    drop(server);
}

#[test]
fn clone_with_link_shares_the_stored_objects_read_only() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let env = TestEnv::new();
    let ds = dataset(&env);
    let server = serve(&env, "srv", ds);
    env.ok("", &["clone", &server.ticket, "copy", "--link"]);
    same_tree(&env, ds, "copy");
    let object = |rel: &str| {
        let id = b3(&env.path(&format!("copy/{rel}")));
        env.object("copy", &id)
    };
    let shared = |rel: &str| {
        let file = fs::metadata(env.path(&format!("copy/{rel}"))).unwrap();
        let stored = fs::metadata(object(rel)).unwrap();
        file.ino() == stored.ino() && file.dev() == stored.dev()
    };
    for rel in ["tables/neurons.csv", "video/day1.bin"] {
        assert!(shared(rel), "{rel} is the stored object");
        let mode = fs::metadata(env.path(&format!("copy/{rel}")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o222, 0, "{rel} is read-only");
    }
    assert!(env.ok("copy", &["status"]).contains("clean"));
    env.ok("copy", &["verify"]);
    // A pull replaces a linked file by a link to the new object; the old object is intact.
    let old = object("tables/neurons.csv");
    env.write(
        "ds/tables/neurons.csv",
        "name,type\nAVAL,inter\nRIML,motor\n",
    );
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "day 2"]);
    env.ok("copy", &["pull"]);
    same_tree(&env, ds, "copy");
    assert!(shared("tables/neurons.csv"));
    assert_eq!(fs::read(&old).unwrap(), b"name,type\nAVAL,inter\n");
    env.ok("copy", &["verify"]);
    // A clone without --link keeps its own copies.
    env.ok("", &["clone", &server.ticket, "plain"]);
    let a = fs::metadata(env.path("plain/video/day1.bin")).unwrap();
    let id = b3(&env.path("plain/video/day1.bin"));
    let b = fs::metadata(env.object("plain", &id)).unwrap();
    assert_ne!(a.ino(), b.ino());
    drop(server);
}

#[test]
fn get_fetches_only_the_named_file() {
    let env = TestEnv::new();
    let ds = env.init();
    for d in 0..100 {
        for f in 0..100 {
            env.write(
                &format!("ds/d{d}/f{f}.csv"),
                format!("dir {d} file {f} ").repeat(20),
            );
        }
    }
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "10k files"]);
    let server = serve(&env, "srv", ds);
    let r = env.json("", &["get", &server.ticket, "d42/f7.csv", "--to", "out"]);
    assert_eq!(r["files"], serde_json::json!(["d42/f7.csv"]));
    assert_eq!(
        env.read("out/d42/f7.csv"),
        "dir 42 file 7 ".repeat(20).as_bytes()
    );
    // One commit, the root tree, one subtree and the file.
    assert!(r["objects"].as_u64().unwrap() <= 4, "{r}");
    let total: u64 = 10_000 * 300;
    assert!(r["bytes"].as_u64().unwrap() < total / 50, "{r}");
    assert_eq!(
        fs::read_dir(env.path("out")).unwrap().count(),
        1,
        "nothing else written"
    );
    env.fails(
        "",
        &["get", &server.ticket, "no/such.csv", "--to", "out2"],
        "does not exist",
    );
}

#[test]
fn malformed_tickets_are_refused() {
    let env = TestEnv::new();
    env.fails("", &["clone", "hello"], "invalid ticket");
    env.fails("", &["clone", "lode1!!!!"], "invalid ticket");
    let t = Ticket {
        dataset: ed25519_dalek::SigningKey::from_bytes(&[7; 32])
            .verifying_key()
            .to_bytes(),
        providers: vec![Provider {
            id: [1; 32],
            addrs: vec![],
            relay: None,
        }],
    }
    .to_string();
    env.fails("", &["clone", &t[..t.len() - 3]], "invalid ticket");
    env.fails("", &["clone", &format!("{t}aaaa")], "invalid ticket");
}

#[test]
fn unreachable_peer_fails_in_bounded_time() {
    let env = TestEnv::new();
    // A valid endpoint id that nobody runs, at a loopback port nobody listens on.
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let t = Ticket {
        dataset: ed25519_dalek::SigningKey::from_bytes(&[7; 32])
            .verifying_key()
            .to_bytes(),
        providers: vec![Provider {
            id: key.verifying_key().to_bytes(),
            addrs: vec!["127.0.0.1:9".parse().unwrap()],
            relay: None,
        }],
    };
    let start = Instant::now();
    let err = env.fails("", &["clone", &t.to_string(), "x"], "cannot reach peer");
    assert!(
        start.elapsed() < Duration::from_secs(40),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        err.contains(&hex::encode(&key.verifying_key().to_bytes()[..5])),
        "{err}"
    );
}

#[test]
fn a_peer_serving_corrupt_bytes_is_named_and_nothing_is_kept() {
    // A big object (streamed) and a small one (fetched in a batch with others).
    for (file, dir, at) in [
        ("video/day1.bin", "video", 2_000_000),
        ("tables/table.bin", "tables", 100_000),
    ] {
        let env = TestEnv::new();
        let ds = dataset(&env);
        env.write("ds/tables/table.bin", vec![7u8; 200_000]);
        env.ok(ds, &["add", "."]);
        env.ok(ds, &["commit", "-m", "a table"]);
        let server = serve(&env, "srv", ds);
        // Damage the object after the server prepared it: it now sends bytes that do not
        // hash to the id it announces.
        let id = b3(&env.path(&format!("ds/{file}")));
        // Bit rot in place: same length, one byte flipped.
        env.rot("ds", &id, at);
        clone_fails_naming(&env, "srv", &server.ticket, "copy");
        assert!(!env.holds("copy", &id));
        assert!(
            !env.path(&format!("copy/{dir}")).exists(),
            "nothing written to the working tree"
        );
    }
}

/// Writes a hostile commit into the repository `ds` of peer `home`: a tree made by hand,
/// signed with that peer's device key, made the head of `main`.
fn plant(env: &TestEnv, home: &str, ds: &str, entries: Vec<lode::object::TreeEntry>) {
    let repo = lode::Repo::discover(
        &env.path(ds),
        lode::keys::Home::new(env.path(home)),
        Default::default(),
    )
    .unwrap();
    let tree = repo
        .store()
        .put_bytes(&lode::object::Tree { entries }.encode())
        .unwrap();
    drop(repo);
    crate::control::plant_commit(env, home, ds, tree);
}

#[test]
fn hostile_trees_are_rejected_before_any_write() {
    use lode::object::{EntryKind, TreeEntry};
    let file = |name: &str, id: lode::ObjectId| TreeEntry {
        name: name.into(),
        kind: EntryKind::File,
        size: 1,
        id,
        chunks: None,
    };
    type Make = Box<dyn Fn(&lode::Repo) -> Vec<TreeEntry>>;
    let cases: Vec<(&str, Make)> = vec![
        (
            "dotdot",
            Box::new(move |r| vec![file("..", r.store().put_bytes(b"x").unwrap())]),
        ),
        (
            "absolute",
            Box::new(move |r| vec![file("/etc/passwd", r.store().put_bytes(b"x").unwrap())]),
        ),
        (
            "duplicate",
            Box::new(move |r| {
                let id = r.store().put_bytes(b"x").unwrap();
                vec![file("a", id), file("a", id)]
            }),
        ),
        (
            "case",
            Box::new(move |r| {
                let id = r.store().put_bytes(b"x").unwrap();
                vec![file("A.csv", id), file("a.csv", id)]
            }),
        ),
        (
            "symlink-out",
            Box::new(move |r| {
                let target = r.store().put_bytes(b"../../etc/passwd").unwrap();
                vec![TreeEntry {
                    name: "l".into(),
                    kind: EntryKind::Symlink,
                    size: 16,
                    id: target,
                    chunks: None,
                }]
            }),
        ),
    ];
    for (name, make) in cases {
        let env = TestEnv::new();
        let ds = env.init();
        let repo = lode::Repo::discover(
            &env.path(ds),
            lode::keys::Home::new(env.path("home")),
            Default::default(),
        )
        .unwrap();
        let entries = make(&repo);
        drop(repo);
        plant(&env, "home", ds, entries);
        let server = serve(&env, "srv", ds);
        let out = env
            .cmd_as("peer", "", &["clone", &server.ticket, "copy"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: clone must fail");
        assert!(err.contains("sent bad data"), "{name}: {err}");
        assert_error_line(&err);
        let written: Vec<_> = fs::read_dir(env.path("copy"))
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(
            written.iter().all(|n| n == ".lode"),
            "{name}: wrote {written:?}"
        );
        assert!(!env.path("etc").exists() && !env.path("l").exists());
    }
}

fn dir_size(p: &std::path::Path) -> u64 {
    let Ok(rd) = fs::read_dir(p) else { return 0 };
    rd.flatten()
        .map(|e| {
            // Files come and go while a fetch runs.
            let Ok(m) = e.metadata() else { return 0 };
            if m.is_dir() {
                dir_size(&e.path())
            } else {
                // Bytes on disk: a piecewise download's partial file is sparse.
                std::os::unix::fs::MetadataExt::blocks(&m) * 512
            }
        })
        .sum()
}

/// Starts `lode clone TICKET DIR` as peer `home` and kills it (-9) once `DIR/.lode` holds
/// more than `bytes` on disk; asserts it was interrupted mid-transfer.
fn interrupt(env: &TestEnv, home: &str, ticket: &str, dir: &str, bytes: u64) {
    interrupt_with(env, home, &["clone", ticket, dir], dir, bytes);
}

/// Starts `args` (a clone into `dir`) as peer `home` and kills it once `dir/.lode` holds more
/// than `bytes`.
fn interrupt_with(env: &TestEnv, home: &str, args: &[&str], dir: &str, bytes: u64) {
    let mut child = env
        .cmd_as(home, "", args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let store = env.path(&format!("{dir}/.lode"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut killed_at = 0;
    while Instant::now() < deadline {
        let n = dir_size(&store);
        if n > bytes {
            let _ = child.kill();
            killed_at = n;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.wait();
    assert!(killed_at > 0, "the clone was interrupted mid-transfer");
}

#[test]
fn an_interrupted_clone_resumes() {
    let env = TestEnv::new();
    let ds = env.init();
    let total: u64 = 256 << 20;
    let data = noise(total as usize, 0x9e3779b97f4a7c15);
    env.write("ds/big.bin", &data);
    drop(data);
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "big"]);
    let server = serve(&env, "srv", ds);
    // partial/ and fetch-store/ fill up under copy/.lode.
    interrupt(&env, "peer", &server.ticket, "copy", total / 4);
    let r = env.json_as("peer", "", &["clone", &server.ticket, "copy"]);
    let resent = r["bytes"].as_u64().unwrap();
    assert!(
        resent < total - total / 5,
        "verified data is not sent again: {resent} of {total}"
    );
    assert_eq!(b3(&env.path("copy/big.bin")), b3(&env.path("ds/big.bin")));
    env.ok("copy", &["verify"]);
}

#[test]
fn push_fast_forward_rejected_and_forced() {
    let env = TestEnv::new();
    let ds = dataset(&env);
    let server = serve(&env, "srv", ds);
    env.json_as("b", "", &["clone", &server.ticket, "b"]);
    env.json_as("c", "", &["clone", &server.ticket, "c"]);
    // B changes a file and pushes: the owner's main and working tree move.
    env.write("b/tables/neurons.csv", "from b");
    assert!(env
        .cmd_as("b", "b", &["add", "."])
        .status()
        .unwrap()
        .success());
    assert!(env
        .cmd_as("b", "b", &["commit", "-m", "b's change"])
        .status()
        .unwrap()
        .success());
    // Pushing needs a ticket with the write right.
    let err = String::from_utf8_lossy(&env.cmd_as("b", "b", &["push"]).output().unwrap().stderr)
        .to_string();
    assert!(
        err.contains("not authorized") && err.contains("write right"),
        "{err}"
    );
    let tb = grant(&env, ds, "b", &["--write"]);
    let r = env.json_as("b", "b", &["push", "--ticket", &tb]);
    assert!(r["bytes_sent"].as_u64().unwrap() <= 6 + 64 * 1024, "{r}");
    assert_eq!(env.head(ds), env.head("b"));
    assert_eq!(env.read("ds/tables/neurons.csv"), b"from b");
    assert!(env.ok(ds, &["status"]).contains("clean"));
    // C committed on the old main: its push is refused, nothing moves.
    env.write("c/tables/neurons.csv", "from c");
    assert!(env
        .cmd_as("c", "c", &["add", "."])
        .status()
        .unwrap()
        .success());
    assert!(env
        .cmd_as("c", "c", &["commit", "-m", "c's change"])
        .status()
        .unwrap()
        .success());
    let tc = grant(&env, ds, "c", &["--write"]);
    let out = env
        .cmd_as("c", "c", &["push", "--ticket", &tc])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("push rejected") && err.contains("pull"),
        "{err}"
    );
    assert_error_line(&err);
    assert_eq!(env.read("ds/tables/neurons.csv"), b"from b");
    // --force overwrites.
    assert!(env
        .cmd_as("c", "c", &["push", "--force"])
        .status()
        .unwrap()
        .success());
    assert_eq!(env.read("ds/tables/neurons.csv"), b"from c");
    assert_eq!(env.head(ds), env.head("c"));
    env.ok(ds, &["verify"]);
}

#[test]
fn of_two_racing_pushes_one_wins() {
    let env = TestEnv::new();
    let ds = dataset(&env);
    let server = serve(&env, "srv", ds);
    // Each peer clones beside its home (a clone never goes into a non-empty directory).
    for p in ["b", "c"] {
        let t = grant(&env, ds, p, &["--read", "--write"]);
        let dir = format!("{p}-ds");
        env.json_as(p, "", &["clone", &server.ticket, &dir, "--ticket", &t]);
        env.write(&format!("{dir}/{p}.csv"), vec![b'x'; 500_000]);
        assert!(env
            .cmd_as(p, &dir, &["add", "."])
            .status()
            .unwrap()
            .success());
        assert!(env
            .cmd_as(p, &dir, &["commit", "-m", p])
            .status()
            .unwrap()
            .success());
    }
    let b = env
        .cmd_as("b", "b-ds", &["push"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let c = env
        .cmd_as("c", "c-ds", &["push"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (b, c) = (b.wait_with_output().unwrap(), c.wait_with_output().unwrap());
    assert_ne!(
        b.status.success(),
        c.status.success(),
        "exactly one push wins"
    );
    let loser = if b.status.success() { &c } else { &b };
    let err = String::from_utf8_lossy(&loser.stderr);
    assert!(
        err.contains("push rejected") && err.contains("pull"),
        "{err}"
    );
    let winner = if b.status.success() { "b-ds" } else { "c-ds" };
    assert_eq!(env.head(ds), env.head(winner));
}

#[test]
fn three_peers_survive_a_provider_killed_mid_transfer() {
    let env = TestEnv::new();
    let ds = env.init();
    let total: u64 = 192 << 20;
    env.write("ds/big.bin", noise(total as usize, 7));
    env.write("ds/small.csv", "a,b\n");
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "big"]);
    let origin = serve(&env, "srv", ds);
    // A mirror clones the dataset and serves it too.
    env.json_as("m", "", &["clone", &origin.ticket, "mirror"]);
    let mirror = serve(&env, "m", "mirror");
    // One ticket naming both providers, the origin first.
    let m: Ticket = mirror.ticket.parse().unwrap();
    let both = joined(&[&origin.ticket, &mirror.ticket]);
    let mut child = env
        .cmd_as("b", "", &["clone", &both, "copy", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let store = env.path("copy/.lode"); // partial/ and fetch-store/
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut origin = Some(origin);
    while Instant::now() < deadline && origin.is_some() {
        if dir_size(&store) > total / 4 || child.try_wait().unwrap().is_some() {
            drop(origin.take()); // kill -9 the origin
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mirror_id = hex::encode(&m.providers[0].id[..5]);
    assert!(
        r["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == mirror_id.as_str()),
        "{r}"
    );
    assert_eq!(b3(&env.path("copy/big.bin")), b3(&env.path("ds/big.bin")));
    env.ok("copy", &["verify"]);
    drop(mirror);
}

#[test]
fn one_object_comes_in_pieces_from_two_providers_and_resumes() {
    let env = TestEnv::new();
    let ds = env.init();
    let total: u64 = 96 << 20;
    env.write("ds/big.bin", noise(total as usize, 11));
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "big"]);
    let origin = serve(&env, "srv", ds);
    env.json_as("m", "", &["clone", &origin.ticket, "mirror"]);
    let mirror = serve(&env, "m", "mirror");
    let a: Ticket = origin.ticket.parse().unwrap();
    let m: Ticket = mirror.ticket.parse().unwrap();
    let both = joined(&[&origin.ticket, &mirror.ticket]);
    // Both providers deliver pieces of the one object (outside a swarm: `--no-share`).
    let r = env.json_as("b", "", &["clone", "--no-share", &both, "copy"]);
    let peers: Vec<&str> = r["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for p in [&a, &m] {
        let name = hex::encode(&p.providers[0].id[..5]);
        assert!(peers.contains(&name.as_str()), "{r}");
    }
    assert_eq!(b3(&env.path("copy/big.bin")), b3(&env.path("ds/big.bin")));

    // Interrupted, then run again: only the missing pieces travel.
    interrupt_with(
        &env,
        "c",
        &["clone", "--no-share", &both, "copy2"],
        "copy2",
        total / 3,
    );
    let partial = env.path("copy2/.lode/partial");
    let maps = fs::read_dir(&partial)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pieces"))
        .count();
    assert_eq!(maps, 1, "a piece map records what is done");
    let r = env.json_as("c", "", &["clone", "--no-share", &both, "copy2"]);
    let resent = r["bytes"].as_u64().unwrap();
    assert!(
        resent < total - total / 5,
        "verified pieces are not sent again: {resent} of {total}"
    );
    assert_eq!(b3(&env.path("copy2/big.bin")), b3(&env.path("ds/big.bin")));
    env.ok("copy2", &["verify"]);

    // The mirror's copy rots (one byte in every 4 MiB): whatever pieces it sends fail
    // verification, go back to the queue, and the origin delivers them.
    // The mirror holds the file in chunks (it is over 4 MiB), in one pack: the file it
    // fetched whole, kept as the pack of its chunks. The rot goes into that pack.
    let id = b3(&env.path("ds/big.bin"));
    let packs: Vec<_> = fs::read_dir(env.path("mirror/.lode/objects/pack"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pack"))
        .filter(|p| fs::metadata(p).unwrap().len() == total)
        .collect();
    assert_eq!(packs.len(), 1, "{packs:?}");
    fs::set_permissions(
        &packs[0],
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let f = fs::OpenOptions::new().write(true).open(&packs[0]).unwrap();
    for off in (1_000_000..total).step_by(4 << 20) {
        use std::os::unix::fs::FileExt;
        f.write_all_at(&[0xa5], off).unwrap();
    }
    env.json_as("d", "", &["clone", "--no-share", &both, "copy3"]);
    assert_eq!(b3(&env.path("copy3/big.bin")), id);
    drop((origin, mirror));
}

#[test]
fn disk_full_during_pull_fails_cleanly_and_a_retry_completes() {
    if !is_root() {
        crate::common::cannot_run("the disk-full pull test needs root for a private tmpfs mount");
        return;
    }
    let env = TestEnv::new();
    let ds = dataset(&env);
    let server = serve(&env, "srv", ds);
    let mnt = env.path("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let script = r#"set -u
mount -t tmpfs -o size=12m tmpfs "$MNT" || exit 99
cd "$MNT"
"$LODE" clone "$TICKET" copy >/dev/null 2>&1 || { echo clone_failed; exit 98; }
cd copy
touch "$MNT/../cloned"
i=0; while [ ! -e "$MNT/../committed" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
head_before=$("$LODE" log -n 1 --json | grep -o '"id": "[0-9a-f]*"' | head -n 1)
"$LODE" pull 2>"$MNT/../pull.err"; echo "pull_rc=$?"
"$LODE" verify >/dev/null 2>&1; echo "verify_rc=$?"
head_after=$("$LODE" log -n 1 --json | grep -o '"id": "[0-9a-f]*"' | head -n 1)
[ "$head_before" = "$head_after" ] && echo head_unchanged
mount -o remount,size=64m "$MNT"
"$LODE" pull >/dev/null; echo "retry_rc=$?"
"$LODE" verify >/dev/null; echo "verify2_rc=$?"
cmp -s video/day2.bin "$SRC/video/day2.bin" && echo same_bytes
"#;
    let child = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("MNT", &mnt)
        .env("SRC", env.path("ds"))
        .env("LODE", lode_bin())
        .env("TICKET", &server.ticket)
        .env("LODE_HOME", env.path("puller"))
        .env("LODE_BIND", "127.0.0.1:0")
        .env("LODE_RELAY", "disabled")
        .env("LODE_NO_DISCOVERY", "true")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the puller has cloned, the owner commits something that does not fit its disk.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !env.path("cloned").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    env.write("ds/video/day2.bin", noise(6 << 20, 3));
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "day 2"]);
    fs::write(env.path("committed"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(99) {
        crate::common::cannot_run("cannot mount a tmpfs here for the disk-full pull test");
        return;
    }
    let err = fs::read_to_string(env.path("pull.err")).unwrap_or_default();
    assert!(text.contains("pull_rc=1"), "{text} {err}");
    assert!(
        err.contains("No space left") || err.contains("disk"),
        "{err}"
    );
    assert!(err.contains("free disk space"), "{err}");
    assert_error_line(&err);
    assert!(
        text.contains("verify_rc=0") && text.contains("head_unchanged"),
        "{text}"
    );
    assert!(
        text.contains("retry_rc=0") && text.contains("verify2_rc=0") && text.contains("same_bytes"),
        "{text}"
    );
}

#[test]
fn serve_refuses_hashes_not_reachable_from_its_refs() {
    use iroh_blobs::Hash;
    use lode::net::endpoint::{bind, NetOptions, Relay};
    let env = TestEnv::new();
    let ds = dataset(&env);
    // Staged but never committed: in the store, reachable from no ref.
    env.write("ds/secret.csv", "staged, never committed");
    env.ok(ds, &["add", "secret.csv"]);
    let server = serve(&env, "srv", ds);
    let ticket: Ticket = server.ticket.parse().unwrap();
    let public = b3(&env.path("ds/tables/neurons.csv"));
    let secret = b3(&env.path("ds/secret.csv"));
    let hash = |hex: &str| Hash::from_bytes(hex::decode(hex).unwrap().try_into().unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let opts = NetOptions {
            bind: Some("127.0.0.1:0".parse().unwrap()),
            relay: Relay::Disabled,
            discovery: false,
            ..Default::default()
        };
        let net = bind(&ed25519_dalek::SigningKey::from_bytes(&[3; 32]), &opts)
            .await
            .unwrap();
        let id = net.learn(&ticket.providers[0]).unwrap();
        let conn = net.endpoint.connect(id, iroh_blobs::ALPN).await.unwrap();
        let store = iroh_blobs::store::mem::MemStore::new();
        store
            .remote()
            .fetch(conn.clone(), hash(&public))
            .await
            .expect("a committed file is served");
        assert!(
            store
                .remote()
                .fetch(conn.clone(), hash(&secret))
                .await
                .is_err(),
            "an unreachable hash is refused"
        );
        let made_up = Hash::new(b"not in any store");
        assert!(store.remote().fetch(conn.clone(), made_up).await.is_err());
        assert!(!store.has(hash(&secret)).await.unwrap());
        // Many blobs on one stream (how small objects travel): allowed only when every hash
        // in the request is.
        let none = |_: u64| {};
        let got = lode::net::pieces::get_many(&conn, &[hash(&public)], &none)
            .await
            .expect("a batch of published hashes is served");
        assert_eq!(got.len(), 1);
        assert_eq!(&got[0].1[..], &env.read("ds/tables/neurons.csv")[..]);
        let conn = net.endpoint.connect(id, iroh_blobs::ALPN).await.unwrap();
        for batch in [vec![hash(&public), hash(&secret)], vec![made_up]] {
            assert!(
                lode::net::pieces::get_many(&conn, &batch, &none)
                    .await
                    .is_err(),
                "a batch naming an unpublished hash is refused"
            );
        }
        net.endpoint.close().await;
    });
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    let env = TestEnv::new();
    let ds = dataset(&env);
    let mut server = serve(&env, "srv", ds);
    assert!(env.path("ds/.lode/serve.ticket").exists());
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = server.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(
        !env.path("ds/.lode/serve.ticket").exists(),
        "the ticket file is removed"
    );
    env.fails(ds, &["ticket"], "no `lode serve` is running");
    env.ok(ds, &["verify"]);
}

#[test]
fn a_peer_without_lode_1_gets_a_clear_message() {
    use lode::net::endpoint::{bind, NetOptions, Relay};
    let env = TestEnv::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // An iroh endpoint that speaks only iroh-blobs: another program, or another lode version.
    let (router, ticket) = rt.block_on(async {
        let opts = NetOptions {
            bind: Some("127.0.0.1:0".parse().unwrap()),
            relay: Relay::Disabled,
            discovery: false,
            ..Default::default()
        };
        let net = bind(&ed25519_dalek::SigningKey::from_bytes(&[5; 32]), &opts)
            .await
            .unwrap();
        let store = iroh_blobs::store::mem::MemStore::new();
        let router = iroh::protocol::Router::builder(net.endpoint.clone())
            .accept(
                iroh_blobs::ALPN,
                iroh_blobs::BlobsProtocol::new(&store, None),
            )
            .spawn();
        let dataset = ed25519_dalek::SigningKey::from_bytes(&[6; 32])
            .verifying_key()
            .to_bytes();
        (
            router,
            Ticket {
                dataset,
                providers: vec![net.provider()],
            },
        )
    });
    let err = env.fails(
        "",
        &["clone", &ticket.to_string(), "x"],
        "does not speak lode/2",
    );
    assert!(
        err.contains(&hex::encode(&ticket.providers[0].id[..5])),
        "{err}"
    );
    rt.block_on(async { router.shutdown().await.unwrap() });
}

/// The README's quick start runs end to end (with this build of lode).
#[test]
fn the_quick_start_runs() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .env("LODE", lode_bin())
        .env_remove("LODE_HOME")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("quick start finished"), "{stdout}");
    assert!(
        stdout.contains("worm-data  "),
        "the search found it: {stdout}"
    );
}
