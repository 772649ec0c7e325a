//! Versions as diffs: files of 4 MiB and more are stored in content-defined chunks. An edit
//! stores and moves only the chunks around it (bytes counted on both sides), files sharing
//! content share chunks, `gc` keeps chunks another file uses, a peer lying about a chunk or a
//! chunk map is named and nothing of it becomes visible, a killed `add` leaves a consistent
//! repository, and a repository of the previous format is upgraded and says so.

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::peers::*;
use crate::common::*;

const MIB: usize = 1 << 20;

/// Bytes of every object file under `repo`'s store (what the store holds on disk).
fn stored(env: &TestEnv, repo: &str) -> u64 {
    fn walk(p: &Path) -> u64 {
        fs::read_dir(p)
            .map(|rd| {
                rd.flatten()
                    .map(|e| {
                        let m = e.metadata().unwrap();
                        if m.is_dir() {
                            walk(&e.path())
                        } else {
                            m.len()
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&env.path(&format!("{repo}/.lode/objects")))
}

fn commit_all(env: &TestEnv, ds: &str, msg: &str) {
    env.ok(ds, &["add", "-q", "."]);
    env.ok(ds, &["commit", "-q", "-m", msg]);
}

/// Pulls into `copy`; returns the payload bytes received. The working file must then equal
/// the origin's.
fn pull(env: &TestEnv, copy: &str, ds: &str, file: &str) -> u64 {
    let r = env.json(copy, &["pull"]);
    assert_eq!(
        env.read(&format!("{copy}/{file}")),
        env.read(&format!("{ds}/{file}")),
        "{file} after the pull"
    );
    r["bytes"].as_u64().unwrap()
}

/// The number of files in a repository's object store (objects, links, packs, indexes).
fn object_files(env: &TestEnv, repo: &str) -> usize {
    fn count(p: &Path) -> usize {
        fs::read_dir(p).map_or(0, |rd| {
            rd.flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => count(&e.path()),
                    _ => 1,
                })
                .sum()
        })
    }
    count(&env.path(&format!("{repo}/.lode/objects")))
}

#[test]
fn an_edit_stores_and_moves_only_the_chunks_around_it() {
    let env = TestEnv::new();
    let ds = env.init();
    let mut data = noise(24 * MIB, 101);
    env.write("ds/big.bin", &data);
    commit_all(&env, ds, "v1");
    // The file keeps its whole-file BLAKE3 id (what b3sum prints), though no object holds it
    // whole: its chunks and its chunk map do.
    let id = b3(&env.path("ds/big.bin"));
    let ls = env.json(ds, &["ls"]);
    assert_eq!(ls[0]["id"], id.as_str(), "{ls}");
    assert!(!env.object(ds, &id).exists(), "not stored whole");
    let link = format!("{}.chunks", env.object(ds, &id).display());
    assert!(Path::new(&link).exists(), "the store records it in chunks");
    let v1_store = stored(&env, ds);
    assert!(
        v1_store < 25 * MIB as u64,
        "24 MiB stored in {v1_store} bytes"
    );
    // Its ~100 chunks went into one pack (and its index), not a file each.
    let files = object_files(&env, ds);
    assert!(files <= 8, "{files} files in the object store");

    let server = serve(&env, "srv", ds);
    let r = env.json("", &["clone", &server.ticket, "copy"]);
    assert_eq!(env.read("copy/big.bin"), data);
    let first = r["bytes"].as_u64().unwrap();
    assert!(first >= 24 * MIB as u64, "{r}");
    // The first clone fetched the file whole (it held none of its chunks), cut it into
    // chunks, and dropped the whole copy once its swarm session ended.
    assert!(!env.object("copy", &id).exists(), "no whole copy left");
    assert!(Path::new(&format!("{}.chunks", env.object("copy", &id).display())).exists());
    // The fetched file became the pack of its chunks: one file, not one per chunk, and
    // 24 MiB on disk, not twice that.
    let files = object_files(&env, "copy");
    assert!(files <= 12, "{files} files in the clone's object store");
    let copy_store = stored(&env, "copy");
    assert!(copy_store < 25 * MIB as u64, "{copy_store} bytes");

    // A 1 MiB edit in the middle: the publisher stores about that much more, and the pull
    // receives the chunks it touches, one or two on each side (chunks are at most 1 MiB).
    for b in &mut data[11 * MIB..12 * MIB] {
        *b ^= 0x5a;
    }
    env.write("ds/big.bin", &data);
    let added = env.json(ds, &["add", "."]);
    let said = added["bytes_stored"].as_u64().unwrap();
    commit_all(&env, ds, "edit");
    let grown = stored(&env, ds) - v1_store;
    // `add` reports the new chunks' bytes, not the file's size.
    assert!(
        said <= grown && said >= MIB as u64,
        "add said {said}, the store grew {grown}"
    );
    assert!(grown < 5 * MIB as u64, "a 1 MiB edit stored {grown} bytes");
    let got = pull(&env, "copy", ds, "big.bin");
    assert!(got < 5 * MIB as u64, "a 1 MiB edit moved {got} bytes");

    // Appended rows: the new tail and the chunk it continues.
    data.extend(noise(2 * MIB, 103));
    env.write("ds/big.bin", &data);
    commit_all(&env, ds, "append");
    let got = pull(&env, "copy", ds, "big.bin");
    assert!(got < 4 * MIB as u64, "a 2 MiB append moved {got} bytes");

    // One byte inserted at the start shifts every offset; content-defined cuts resync.
    data.insert(0, b'#');
    env.write("ds/big.bin", &data);
    commit_all(&env, ds, "insert");
    let got = pull(&env, "copy", ds, "big.bin");
    assert!(got < 3 * MIB as u64, "a 1-byte insertion moved {got} bytes");

    // A second file that shares most of the first is stored once, less what differs.
    let before = stored(&env, ds);
    let mut twin = data.clone();
    twin.truncate(20 * MIB);
    twin.extend(noise(MIB / 2, 105));
    env.write("ds/twin.bin", &twin);
    commit_all(&env, ds, "twin");
    let grown = stored(&env, ds) - before;
    assert!(grown < 3 * MIB as u64, "a near copy stored {grown} bytes");
    let got = pull(&env, "copy", ds, "twin.bin");
    assert!(got < 3 * MIB as u64, "a near copy moved {got} bytes");

    // Checkout of an older version assembles it from the chunks, checked.
    env.ok("copy", &["checkout", "HEAD~3"]);
    assert_eq!(env.read("copy/big.bin")[..11 * MIB], data[1..11 * MIB + 1]);
    env.ok("copy", &["checkout", "main"]);
    assert_eq!(env.read("copy/twin.bin"), twin);
    // cat and a partial get put the file together too.
    let out = env.cmd("copy", &["cat", "HEAD:twin.bin"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, twin);
    env.ok("", &["get", &server.ticket, "twin.bin", "--to", "part"]);
    assert_eq!(env.read("part/twin.bin"), twin);

    for repo in [ds, "copy"] {
        env.ok(repo, &["verify"]);
        let s = env.json(repo, &["status"]);
        for k in ["staged", "unstaged", "untracked"] {
            assert_eq!(s[k], serde_json::json!([]), "{repo}: status {k}: {s}");
        }
    }
    drop(server);
}

#[test]
fn gc_keeps_chunks_that_another_file_uses() {
    let env = TestEnv::new();
    let ds = env.init();
    let a = noise(8 * MIB, 107);
    env.write("ds/a.bin", &a);
    commit_all(&env, ds, "a");
    let kept = stored(&env, ds);
    // b shares a's first 6 MiB; it is staged, then unstaged: only its own chunks are garbage.
    let mut b = a[..6 * MIB].to_vec();
    b.extend(noise(3 * MIB, 109));
    env.write("ds/b.bin", &b);
    env.ok(ds, &["add", "-q", "b.bin"]);
    assert!(stored(&env, ds) > kept + 2 * MIB as u64);
    env.ok(ds, &["rm", "-q", "--cached", "b.bin"]);
    let r = env.json(ds, &["gc"]);
    assert!(r["objects_removed"].as_u64().unwrap() >= 3, "{r}");
    assert_eq!(
        stored(&env, ds),
        kept,
        "exactly b's own chunks and map went"
    );
    env.ok(ds, &["verify"]);
    fs::remove_file(env.path("ds/a.bin")).unwrap();
    env.ok(ds, &["checkout", "-f", "HEAD", "a.bin"]);
    assert_eq!(env.read("ds/a.bin"), a);
}

#[test]
fn a_peer_lying_about_a_chunk_or_a_chunk_map_is_named_and_nothing_is_written() {
    use lode::object::{ChunkMap, EntryKind, TreeEntry};
    // A chunk that does not match its id (bit rot on the server).
    let env = TestEnv::new();
    let ds = env.init();
    env.write("ds/big.bin", noise(6 * MIB, 111));
    commit_all(&env, ds, "v1");
    let server = serve(&env, "srv", ds);
    let id = b3(&env.path("ds/big.bin"));
    let link = format!("{}.chunks", env.object(ds, &id).display());
    let map_id = hex::encode(fs::read(&link).unwrap());
    let map = ChunkMap::decode(&fs::read(env.object(ds, &map_id)).unwrap()).unwrap();
    // `add` wrote the file's chunks, in order, into one pack.
    let packs: Vec<_> = fs::read_dir(env.path("ds/.lode/objects/pack"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pack"))
        .collect();
    assert_eq!(packs.len(), 1, "{packs:?}");
    let at: u64 = map.chunks[..3].iter().map(|c| u64::from(c.1)).sum::<u64>() + 1000;
    let pack = &packs[0];
    fs::set_permissions(pack, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(pack).unwrap();
    bytes[at as usize] ^= 0xff;
    fs::write(pack, &bytes).unwrap();
    clone_fails_naming(&env, "srv", &server.ticket, "copy");
    assert!(!env.path("copy/big.bin").exists(), "nothing visible");
    drop(server);

    // A chunk map whose chunks (each genuine, and held by the peer already) do not assemble
    // to the file id it claims.
    let env = TestEnv::new();
    let ds = env.init();
    let real = noise(6 * MIB, 113);
    env.write("ds/real.bin", &real);
    commit_all(&env, ds, "v1");
    let server = serve(&env, "srv", ds);
    env.json("", &["clone", &server.ticket, "copy"]);
    drop(server);
    let real_id: lode::ObjectId = b3(&env.path("ds/real.bin")).parse().unwrap();
    let link = format!("{}.chunks", env.object(ds, &real_id.to_hex()).display());
    let real_map = lode::ObjectId(fs::read(&link).unwrap().try_into().unwrap());
    let chunks = ChunkMap::decode(&fs::read(env.object(ds, &real_map.to_hex())).unwrap())
        .unwrap()
        .chunks;
    let claimed = lode::ObjectId::of(b"some other file entirely");
    let repo = lode::Repo::discover(
        &env.path(ds),
        lode::keys::Home::new(env.path("home")),
        Default::default(),
    )
    .unwrap();
    let size = real.len() as u64;
    let lie_map = ChunkMap {
        file: claimed,
        size,
        chunks,
    };
    let lie_map = repo.store().put_bytes(&lie_map.encode()).unwrap();
    let entry = |name: &str, id, map| TreeEntry {
        name: name.into(),
        kind: EntryKind::File,
        size,
        id,
        chunks: Some(map),
    };
    let tree = lode::object::Tree {
        entries: vec![
            entry("lie.bin", claimed, lie_map),
            entry("real.bin", real_id, real_map),
        ],
    };
    let tree = repo.store().put_bytes(&tree.encode()).unwrap();
    drop(repo);
    crate::control::plant_commit(&env, "home", ds, tree);
    let server = serve(&env, "srv", ds);
    let err = env.fails("copy", &["pull"], "sent bad data");
    assert!(err.contains("do not assemble"), "{err}");
    assert!(!env.path("copy/lie.bin").exists(), "nothing visible");
    env.ok("copy", &["verify"]);
    drop(server);
}

#[test]
fn kill_9_during_add_of_a_chunked_file_leaves_a_consistent_repository() {
    let env = TestEnv::new();
    let ds = env.init();
    let data = noise(48 * MIB, 117);
    env.write("ds/big.bin", &data);
    for delay in [5u64, 20, 60, 150] {
        let mut child = env
            .cmd(ds, &["add", "-q", "big.bin"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever the instant, the repository reads and verifies.
        env.ok(ds, &["verify"]);
    }
    commit_all(&env, ds, "after the kills");
    env.ok(ds, &["verify"]);
    env.json(ds, &["gc"]);
    fs::remove_file(env.path("ds/big.bin")).unwrap();
    env.ok(ds, &["checkout", "-f", "HEAD", "big.bin"]);
    assert_eq!(env.read("ds/big.bin"), data);
    let tmp = fs::read_dir(env.path("ds/.lode/tmp")).unwrap().count();
    assert_eq!(tmp, 0, "no temp file stays after gc");
}

#[test]
fn a_repository_of_the_previous_format_is_upgraded_and_says_so() {
    let set_format = |env: &TestEnv, v: u32| {
        let db =
            lode::db::Db::open(&env.path("ds/.lode/lode.redb"), Duration::from_secs(5)).unwrap();
        let tx = db.db.begin_write().unwrap();
        tx.open_table(lode::db::CONFIG)
            .unwrap()
            .insert("format", &v.to_le_bytes()[..])
            .unwrap();
        tx.commit().unwrap();
    };
    let env = TestEnv::new();
    let ds = env.init();
    env.write("ds/small.csv", "a,b\n1,2\n");
    commit_all(&env, ds, "v1");
    set_format(&env, 1);
    let out = env.cmd(ds, &["status"]).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("upgraded the repository") && err.contains("from format 1 to 3"),
        "{err}"
    );
    let out = env.cmd(ds, &["status"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("upgraded"),
        "said once"
    );
    // Its history reads as before, and new large files go in chunks.
    env.write("ds/big.bin", noise(5 * MIB, 119));
    commit_all(&env, ds, "v2");
    env.ok(ds, &["verify"]);
    let log = env.ok(ds, &["log"]);
    assert!(log.contains("v1") && log.contains("v2"), "{log}");
    // A repository of a newer format than this build knows is refused, not misread.
    set_format(&env, 4);
    let err = env.fails(ds, &["status"], "upgrade lode");
    assert!(err.contains("format version 4"), "{err}");
}

#[test]
fn a_mirror_quota_counts_each_chunk_once_and_drops_only_what_an_old_version_alone_uses() {
    let env = TestEnv::new();
    let ds = env.init();
    let mut data = noise(6 * MIB, 121);
    env.write("ds/a.bin", &data);
    commit_all(&env, ds, "v1");
    let v1 = b3(&env.path("ds/a.bin"));
    let origin = serve(&env, "srv", ds);
    let id = env.dataset_id(ds);
    env.ok_as("m", "", &["mirror", "add", &origin.ticket, "--quota", "8M"]);
    let mut dropped = Vec::new();
    // Two versions, each with 1 MiB changed: three whole copies would be 18 MiB; the
    // versions share most chunks, so the three fit in about 9 MiB and dropping the oldest
    // frees only the chunks around its edit.
    for (v, at) in [(2u8, MIB), (3, 4 * MIB)] {
        for b in &mut data[at..at + MIB] {
            *b ^= v;
        }
        env.write("ds/a.bin", &data);
        commit_all(&env, ds, &format!("v{v}"));
        let r = env.json_as("m", "", &["mirror", "sync"]);
        dropped.extend(r["mirrors"][0]["dropped"].as_array().unwrap().clone());
    }
    let list = env.json_as("m", "", &["mirror", "list"]);
    assert!(list[0]["bytes"].as_u64().unwrap() <= 8 << 20, "{list}");
    let old = dropped
        .iter()
        .find(|d| d["id"] == v1.as_str())
        .unwrap_or_else(|| panic!("v1 was not dropped: {dropped:?}"));
    let freed = old["bytes"].as_u64().unwrap();
    assert!(
        freed > 0 && freed < 3 * MIB as u64,
        "dropping v1 freed {freed} bytes: only its own chunks go"
    );
    let mirror_dir = format!("m/mirrors/{id}");
    env.ok_as("m", &mirror_dir, &["verify"]);
    // With the origin gone, the mirror serves the current version whole.
    let (_mirror, tickets) = serve_args(&env, "m", "", &["--mirrors", "--follow", "0"], 1);
    drop(origin);
    env.ok_as("d", "", &["get", &tickets[0], "a.bin", "--to", "out"]);
    assert_eq!(env.read("out/a.bin"), data);
}

#[test]
fn a_push_sends_only_the_new_chunks_and_the_gateway_serves_a_chunked_file_with_ranges() {
    let env = TestEnv::new();
    let ds = env.init();
    let mut data = noise(12 * MIB, 123);
    env.write("ds/big.bin", &data);
    commit_all(&env, ds, "v1");
    let server = serve(&env, "srv", ds);
    env.json_as("b", "", &["clone", &server.ticket, "b"]);
    for b in &mut data[5 * MIB..6 * MIB] {
        *b ^= 0x33;
    }
    env.write("b/big.bin", &data);
    env.ok_as("b", "b", &["add", "-q", "."]);
    env.ok_as("b", "b", &["commit", "-q", "-m", "b's edit"]);
    let tb = grant(&env, ds, "b", &["--write"]);
    let r = env.json_as("b", "b", &["push", "--ticket", &tb]);
    let sent = r["bytes_sent"].as_u64().unwrap();
    assert!(
        sent < 4 * MIB as u64,
        "a 1 MiB edit pushed {sent} bytes: {r}"
    );
    assert_eq!(env.read("ds/big.bin"), data);
    env.ok(ds, &["verify"]);
    drop(server);

    // The gateway reads the file from its chunks: whole (checked against its id) and by
    // ranges that cross chunk boundaries.
    let gw = crate::gateway::start(&env, &[ds]);
    let url = format!("{}/d/{}/big.bin", gw.url, env.dataset_id(ds));
    let (code, _, body) = crate::gateway::curl(&[&url]);
    assert_eq!(code, 200);
    assert!(body == data, "the whole file ({} bytes)", body.len());
    for (from, to) in [
        (0usize, 99usize),
        (MIB - 10, 3 * MIB + 10),
        (12 * MIB - 5, 12 * MIB - 1),
    ] {
        let range = format!("bytes={from}-{to}");
        let (code, _, body) = crate::gateway::curl(&["-H", &format!("Range: {range}"), &url]);
        assert_eq!(code, 206, "{range}");
        assert!(body[..] == data[from..=to], "{range}");
    }
}
