//! Many small files over the network: a clone and a pull of a few thousand files (fetched in
//! batches several at a time, written by the landing threads, checked out the cheap way),
//! every file's content checked; a peer that serves one bad object among them.

use std::fs;

use crate::common::peers::*;
use crate::common::*;

const DIRS: usize = 30;
const PER_DIR: usize = 100;

/// The content of file `i`, version `v`: distinct for every file, 200 to 1,400 bytes.
fn content(i: usize, v: u32) -> Vec<u8> {
    let mut b = format!("file {i} version {v}\n").into_bytes();
    b.extend(noise(200 + (i * 37) % 1200, (i as u64) << 8 | v as u64));
    b
}

fn name(i: usize) -> String {
    format!("d{:02}/f{:03}.bin", i / PER_DIR, i % PER_DIR)
}

/// A repository `ds` of DIRS × PER_DIR small files, committed.
fn many(env: &TestEnv) -> &'static str {
    let ds = env.init();
    for i in 0..DIRS * PER_DIR {
        env.write(&format!("ds/{}", name(i)), content(i, 0));
    }
    env.ok(ds, &["add", "-q", "."]);
    env.ok(ds, &["commit", "-q", "-m", "many"]);
    ds
}

/// Checks that every file of `repo` holds what `ds` holds, and that nothing else is there.
fn same_files(env: &TestEnv, ds: &str, repo: &str) {
    let mut n = 0;
    for i in 0..DIRS * PER_DIR {
        let want = env.read(&format!("{ds}/{}", name(i)));
        assert_eq!(
            env.read(&format!("{repo}/{}", name(i))),
            want,
            "{}",
            name(i)
        );
        n += 1;
    }
    let mut got = 0;
    for d in fs::read_dir(env.path(repo)).unwrap() {
        let d = d.unwrap();
        if d.file_name() != ".lode" {
            got += fs::read_dir(d.path()).unwrap().count();
        }
    }
    assert_eq!(got, n, "no other files in {repo}");
}

#[test]
fn many_small_files_clone_and_pull_whole() {
    let env = TestEnv::new();
    let ds = many(&env);
    let server = serve(&env, "srv", ds);
    let r = env.json("", &["clone", &server.ticket, "copy"]);
    assert!(
        r["objects"].as_u64().unwrap() >= (DIRS * PER_DIR) as u64,
        "{r}"
    );
    same_files(&env, ds, "copy");
    assert_eq!(env.head("copy"), env.head(ds));
    // Objects are read-only (the clone wrote them into packs, a handful of files, not one
    // per object), and files are ordinary working files.
    let id = b3(&env.path("copy/d00/f000.bin"));
    assert!(!env.object("copy", &id).exists());
    assert!(env.object_bytes("copy", &id).is_some());
    let packs: Vec<_> = fs::read_dir(env.path("copy/.lode/objects/pack"))
        .unwrap()
        .flatten()
        .collect();
    // (a pack per writer thread for each level of trees, and for the files)
    assert!(
        !packs.is_empty() && packs.len() <= 16,
        "{} pack files",
        packs.len()
    );
    for p in packs {
        assert!(p.metadata().unwrap().permissions().readonly(), "{p:?}");
    }
    assert!(!fs::metadata(env.path("copy/d00/f000.bin"))
        .unwrap()
        .permissions()
        .readonly());
    env.ok("copy", &["verify"]);
    // The index caches what checkout wrote: nothing shows as changed.
    let s = env.json("copy", &["status"]);
    for k in ["staged", "unstaged", "untracked", "leftovers"] {
        assert_eq!(s[k], serde_json::json!([]), "status {k}: {s}");
    }

    // 100 files change, 50 are added: the pull fetches just those and writes them.
    for i in (0..DIRS * PER_DIR).step_by(DIRS * PER_DIR / 100) {
        env.write(&format!("ds/{}", name(i)), content(i, 1));
    }
    for i in 0..50 {
        env.write(&format!("ds/new/n{i:02}.bin"), content(10_000 + i, 0));
    }
    env.ok(ds, &["add", "-q", "."]);
    env.ok(ds, &["commit", "-q", "-m", "changes"]);
    let r = env.json("copy", &["pull"]);
    // 150 blobs, the 32 trees above them and the commit: nothing else travels.
    let objects = r["objects"].as_u64().unwrap();
    assert!((150..=183).contains(&objects), "{r}");
    for i in 0..50 {
        let p = format!("new/n{i:02}.bin");
        assert_eq!(env.read(&format!("copy/{p}")), env.read(&format!("ds/{p}")));
    }
    fs::remove_dir_all(env.path("copy/new")).unwrap();
    fs::remove_dir_all(env.path("ds/new")).unwrap();
    same_files(&env, ds, "copy");
    env.ok("copy", &["verify"]);
    drop(server);
}

#[test]
fn many_small_files_one_bad_object_names_the_peer_and_is_not_kept() {
    let env = TestEnv::new();
    let ds = many(&env);
    let server = serve(&env, "srv", ds);
    // Bit rot in one object among thousands, after the server started: it sends bytes that
    // do not hash to the id it announces.
    let bad = name(1234);
    let id = b3(&env.path(&format!("ds/{bad}")));
    env.rot("ds", &id, 100);
    clone_fails_naming(&env, "srv", &server.ticket, "copy");
    assert!(!env.holds("copy", &id), "the bad object is not kept");
    assert!(
        !env.path(&format!("copy/{bad}")).exists(),
        "nothing written to the working tree"
    );
    assert!(!env.path("copy/d00").exists(), "no working file at all");
    drop(server);
}
