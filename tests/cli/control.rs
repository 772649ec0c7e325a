//! Attacks on the control directory `.lode` and on the store through pushes (issue 11, items 1
//! and 2): hostile trees naming `.lode` in any spelling, from a dataset author (clone, get)
//! and from a writer (push), and refused pushes that must leave nothing in the store.

use std::fs;

use crate::common::peers::{grant, serve};
use crate::common::{assert_error_line, b3, TestEnv};
use lode::object::{Commit, CommitBody, EntryKind, Tree, TreeEntry};
use lode::ObjectId;

/// The spellings of `.lode` that some file system resolves to the control directory.
const SPELLINGS: &[&str] = &[
    ".lode",
    ".LODE",
    ".Lode",
    ".lode.",
    ".lode ",
    ".lode::$INDEX_ALLOCATION",
    ".l\u{200c}ode",
    "\u{feff}.lode",
    "LODE~1",
];

fn open(env: &TestEnv, home: &str, ds: &str) -> lode::Repo {
    lode::Repo::discover(
        &env.path(ds),
        lode::keys::Home::new(env.path(home)),
        Default::default(),
    )
    .unwrap()
}

/// A tree holding `name/lode.redb` (a directory named like the control directory, with a
/// database in it), optionally under `sub/`, beside an honest `ok.csv`.
fn hostile_tree(repo: &lode::Repo, name: &str, nested: bool) -> ObjectId {
    let store = repo.store();
    let db = store.put_bytes(b"not your database").unwrap();
    let ok = store.put_bytes(b"1,2\n").unwrap();
    let file = |name: &str, id: ObjectId, size: u64| TreeEntry {
        name: name.into(),
        kind: EntryKind::File,
        size,
        id,
        chunks: None,
    };
    let dir = |name: &str, entries: Vec<TreeEntry>| {
        let size = entries.iter().map(|e| e.size).sum();
        let id = store.put_bytes(&Tree { entries }.encode()).unwrap();
        TreeEntry {
            name: name.into(),
            kind: EntryKind::Dir,
            size,
            id,
            chunks: None,
        }
    };
    let control = dir(name, vec![file("lode.redb", db, 17)]);
    let mut entries = if nested {
        vec![dir("sub", vec![control])]
    } else {
        vec![control]
    };
    entries.push(file("ok.csv", ok, 4));
    entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    store.put_bytes(&Tree { entries }.encode()).unwrap()
}

/// Commits `tree` on top of `main` of `ds` by hand (as an attacker with the library would),
/// signed with the device key of `home`, and moves `main` there.
pub fn plant_commit(env: &TestEnv, home: &str, ds: &str, tree: ObjectId) -> ObjectId {
    let repo = open(env, home, ds);
    let key = repo.device_key().unwrap();
    let body = CommitBody {
        dataset: repo.dataset_id().unwrap().to_bytes(),
        tree,
        parents: repo.main().unwrap().into_iter().collect(),
        author: key.verifying_key().to_bytes(),
        time: 2,
        message: "hostile".into(),
        metadata: Default::default(),
        person: None,
    };
    let id = repo
        .store()
        .put_bytes(&Commit::sign(body, &key).encode())
        .unwrap();
    let db = repo.db().unwrap();
    let tx = db.db.begin_write().unwrap();
    tx.open_table(lode::db::REFS)
        .unwrap()
        .insert("heads/main", id.to_hex().as_str())
        .unwrap();
    tx.commit().unwrap();
    id
}

fn names_in(dir: &std::path::Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_dataset_author_cannot_plant_a_control_directory() {
    let cases = SPELLINGS
        .iter()
        .map(|n| (*n, false))
        .chain([(".lode", true), ("LODE~1", true)]);
    for (i, (name, nested)) in cases.enumerate() {
        {
            let env = TestEnv::new();
            let ds = env.init();
            let tree = hostile_tree(&open(&env, "home", ds), name, nested);
            plant_commit(&env, "home", ds, tree);
            let server = serve(&env, "srv", ds);
            let case = format!("{name:?} nested={nested}");

            // clone: refused as a lying peer, naming the entry; nothing of it written.
            let out = env
                .cmd_as("peer", "", &["clone", &server.ticket, "copy"])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{case}: clone must fail");
            assert!(err.contains("sent bad data"), "{case}: {err}");
            assert!(err.contains("control directory .lode"), "{case}: {err}");
            assert_error_line(&err);
            for n in names_in(&env.path("copy")) {
                assert!(
                    n == ".lode",
                    "{case}: clone wrote {n:?} into the working tree"
                );
            }

            // get of the whole dataset ("") into a repository's working tree, and of the path
            // itself: refused, the repository's database untouched.
            let victim = format!("victim{i}{nested}");
            env.ok_as("peer", "", &["init", &victim]);
            let db = env.path(&format!("{victim}/.lode/lode.redb"));
            let before = b3(&db);
            let path = if nested {
                format!("sub/{name}")
            } else {
                name.to_string()
            };
            for want in ["", path.as_str()] {
                let out = env
                    .cmd_as("peer", &victim, &["get", &server.ticket, want, "--to", "."])
                    .output()
                    .unwrap();
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(!out.status.success(), "{case} get {want:?}: must fail");
                assert!(
                    err.contains("control directory") || err.contains("sent bad data"),
                    "{case} get {want:?}: {err}"
                );
            }
            assert_eq!(b3(&db), before, "{case}: database changed");
            assert!(!env.path(&format!("{victim}/ok.csv")).exists());
            env.ok_as("peer", &victim, &["status"]);
        }
    }
}

#[test]
fn add_never_records_a_control_directory() {
    let env = TestEnv::new();
    let ds = env.init();
    env.write(&format!("{ds}/data.csv"), "1\n");
    env.write(&format!("{ds}/sub/.lode/f"), "planted");
    env.write(&format!("{ds}/.LODE/g"), "planted");
    env.write(&format!("{ds}/deep/er/LODE~1/h"), "planted");
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "one"]);
    let names: Vec<String> = env.ls(ds, "HEAD").into_iter().map(|(p, _)| p).collect();
    // The directories stay (empty), nothing inside a control directory is recorded.
    assert!(names.contains(&"data.csv".to_string()), "{names:?}");
    for n in &names {
        assert!(
            !n.split('/').any(lode::object::is_control_name),
            "recorded {n:?}"
        );
    }
    for p in [
        "sub/.lode/f",
        ".LODE/g",
        "deep/er/LODE~1/h",
        ".lode/lode.redb",
    ] {
        let err = env.fails(ds, &["add", p], "control directory");
        assert_error_line(&err);
    }
    // Nothing staged by the refused adds.
    let status = env.ok(ds, &["status"]);
    assert!(!status.to_lowercase().contains("lode/"), "{status}");
}

#[test]
fn a_writer_cannot_push_a_control_directory_or_leave_objects_behind() {
    let env = TestEnv::new();
    env.ok("", &["init", "pub"]);
    env.write("pub/tables/t.csv", "1");
    env.write("pub/video/v.bin", "2");
    env.ok("pub", &["add", "."]);
    env.ok("pub", &["commit", "-m", "one"]);
    let server = serve(&env, "srv", "pub");
    env.json_as("g", "", &["clone", &server.ticket, "gclone"]);
    let full = grant(&env, "pub", "g", &["--write"]);
    let objects = |repo: &str| -> usize { walk(&env.path(&format!("{repo}/.lode/objects"))) };
    let main_before = env.head("pub");

    // 1. A writer with the full write right pushes `.lode/lode.redb`: refused, naming the
    // entry; the owner's database, refs and store are untouched.
    let stored_before = objects("pub");
    let tree = hostile_tree(&open(&env, "g", "gclone"), ".lode", false);
    plant_commit(&env, "g", "gclone", tree);
    let err = env.fails_as(
        "g",
        "gclone",
        &["push", "--ticket", &full],
        "control directory",
    );
    assert_error_line(&err);
    assert_eq!(env.head("pub"), main_before);
    assert_eq!(
        objects("pub"),
        stored_before,
        "a refused push stored objects"
    );
    env.ok("pub", &["status"]);
    env.ok("pub", &["verify"]);

    // 2. A writer scoped to tables/ pushes HTML under video/: refused, and the page is not
    // in the owner's store (it could otherwise be served by id).
    env.json_as("g", "", &["clone", &server.ticket, "g2"]);
    let scoped = grant(&env, "pub", "g", &["--write", "--path", "tables"]);
    let page = b"<script>alert(1)</script>";
    env.write("g2/video/inject.html", page);
    env.ok_as("g", "g2", &["add", "."]);
    env.ok_as("g", "g2", &["commit", "-m", "inject"]);
    env.fails_as(
        "g",
        "g2",
        &["push", "--ticket", &scoped],
        "outside the ticket's scope",
    );
    let page_id = lode::ObjectId::of(page).to_hex();
    assert!(
        !env.holds("pub", &page_id),
        "the refused page entered the store"
    );
    assert_eq!(objects("pub"), stored_before);
    assert!(
        names_in(&env.path("pub/.lode/quarantine")).is_empty(),
        "quarantine left behind"
    );
    assert_eq!(env.head("pub"), main_before);

    // 3. An accepted push still lands, and its objects are in the store.
    env.json_as("g", "", &["clone", &server.ticket, "g3"]);
    env.write("g3/tables/t.csv", "from g");
    env.ok_as("g", "g3", &["add", "."]);
    env.ok_as("g", "g3", &["commit", "-m", "ok"]);
    env.ok_as("g", "g3", &["push", "--ticket", &scoped]);
    assert_eq!(env.read("pub/tables/t.csv"), b"from g");
    assert!(env
        .object_bytes("pub", &lode::ObjectId::of(b"from g").to_hex())
        .is_some());
    assert!(names_in(&env.path("pub/.lode/quarantine")).is_empty());
    env.ok("pub", &["verify"]);
}

#[test]
fn gc_removes_the_quarantine_of_a_killed_server_only() {
    let env = TestEnv::new();
    let ds = env.init();
    let q = env.path(&format!("{ds}/.lode/quarantine"));
    // pid 1 lives (init); a pid above the kernel's limit never does.
    let live = q.join("push-1-0/objects/ab");
    let dead = q.join("push-4194305-0/objects/ab");
    fs::create_dir_all(&live).unwrap();
    fs::create_dir_all(&dead).unwrap();
    fs::write(dead.join("cd"), "partial push").unwrap();
    env.ok(ds, &["gc"]);
    assert!(live.exists(), "a live server's quarantine was removed");
    assert!(!q.join("push-4194305-0").exists(), "a dead one was kept");
}

fn walk(dir: &std::path::Path) -> usize {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| {
            if e.file_type().unwrap().is_dir() {
                walk(&e.path())
            } else {
                1
            }
        })
        .sum()
}
