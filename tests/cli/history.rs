//! History: log, revisions (ids, prefixes, tags, HEAD~N), diff, checkout, tag, gc.

use std::fs;

use crate::common::*;

fn three_commits(env: &TestEnv) -> &'static str {
    let ds = env.init();
    env.write("ds/a.csv", "v1");
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "one"]);
    env.write("ds/a.csv", "v2 longer");
    env.write("ds/b.csv", "b");
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "two"]);
    fs::remove_file(env.path("ds/b.csv")).unwrap();
    env.write("ds/c/d.csv", "d");
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "three\n\nbody"]);
    ds
}

#[test]
fn log_and_revisions() {
    let env = TestEnv::new();
    let ds = three_commits(&env);
    let log = env.json(ds, &["log"]);
    let msgs: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["message"].as_str().unwrap())
        .collect();
    assert_eq!(msgs, ["three\n\nbody", "two", "one"]);
    let ids: Vec<String> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        env.json(ds, &["log", "-n", "1"]).as_array().unwrap().len(),
        1
    );
    for (rev, want) in [
        ("HEAD", 0),
        ("HEAD~1", 1),
        ("HEAD~2", 2),
        ("HEAD^^", 2),
        ("main~1", 1),
    ] {
        assert_eq!(
            env.json(ds, &["show", rev])["commit"]["id"],
            ids[want].as_str(),
            "{rev}"
        );
    }
    let prefix = &ids[1][..10];
    assert_eq!(
        env.json(ds, &["show", prefix])["commit"]["id"],
        ids[1].as_str()
    );
    env.ok(ds, &["tag", "v1", "HEAD~2"]);
    assert_eq!(
        env.json(ds, &["show", "v1"])["commit"]["id"],
        ids[2].as_str()
    );
    env.fails(ds, &["tag", "v1"], "already exists");
    env.ok(ds, &["tag", "-f", "v1"]);
    assert_eq!(env.json(ds, &["tag"])["v1"], ids[0].as_str());
    env.fails(ds, &["show", "HEAD~5"], "no ancestor");
    env.fails(ds, &["show", "nosuchrev"], "unknown revision");
    env.fails(ds, &["tag", "bad..name"], "invalid tag name");
}

#[test]
fn diff_between_revisions_and_worktree() {
    let env = TestEnv::new();
    let ds = three_commits(&env);
    let d = env.json(ds, &["diff", "HEAD~2", "HEAD"]);
    let changes: Vec<(&str, &str)> = d
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["path"].as_str().unwrap(), c["change"].as_str().unwrap()))
        .collect();
    assert_eq!(changes, [("a.csv", "modified"), ("c/d.csv", "added")]);
    assert_eq!(d[0]["old_size"], 2);
    assert_eq!(d[0]["new_size"], 9);
    let d = env.json(ds, &["diff", "HEAD~1", "HEAD"]);
    assert_eq!(d[0]["path"], "b.csv");
    assert_eq!(d[0]["change"], "removed".replace("removed", "deleted"));
    assert!(env.json(ds, &["diff"]).as_array().unwrap().is_empty());
    env.write("ds/a.csv", "worktree edit");
    let d = env.json(ds, &["diff"]);
    assert_eq!(d[0]["path"], "a.csv");
    let text = env.ok(ds, &["diff", "HEAD~2", "HEAD"]);
    assert!(text.contains("modified: a.csv"), "{text}");
}

#[test]
fn checkout_moves_tree_and_refuses_to_lose_changes() {
    let env = TestEnv::new();
    let ds = three_commits(&env);
    env.ok(ds, &["checkout", "HEAD~2"]);
    assert_eq!(env.read("ds/a.csv"), b"v1");
    assert!(!env.path("ds/c").exists());
    assert!(env.ok(ds, &["status"]).contains("detached"));
    env.ok(ds, &["checkout", "main"]);
    assert_eq!(env.read("ds/c/d.csv"), b"d");
    assert!(env.ok(ds, &["status"]).contains("On branch main"));
    // Uncommitted edit: refused, then forced.
    env.write("ds/a.csv", "precious");
    env.fails(ds, &["checkout", "HEAD~1"], "uncommitted changes");
    assert_eq!(env.read("ds/a.csv"), b"precious");
    // An untracked file where the target has one.
    env.write("ds/b.csv", "untracked but precious");
    env.ok(ds, &["checkout", "-f", "HEAD"]);
    env.fails(ds, &["checkout", "HEAD~1"], "untracked");
    fs::remove_file(env.path("ds/b.csv")).unwrap();
    env.ok(ds, &["checkout", "HEAD~1"]);
    assert_eq!(env.read("ds/b.csv"), b"b");
    env.ok(ds, &["checkout", "main"]);
    env.write("ds/a.csv", "precious again");
    env.ok(ds, &["checkout", "--force", "HEAD~1"]);
    assert_eq!(env.read("ds/a.csv"), b"v2 longer");
}

#[test]
fn checkout_paths_restores_only_those() {
    let env = TestEnv::new();
    let ds = three_commits(&env);
    let head = env.head(ds);
    env.ok(ds, &["checkout", "HEAD~2", "a.csv"]);
    assert_eq!(env.read("ds/a.csv"), b"v1");
    assert_eq!(env.read("ds/c/d.csv"), b"d");
    assert_eq!(env.head(ds), head, "HEAD does not move");
    let st = env.json(ds, &["status"]);
    assert_eq!(st["staged"][0]["path"], "a.csv");
    env.fails(ds, &["checkout", "HEAD", "nope.csv"], "does not exist");
}

#[test]
fn gc_removes_only_unreachable() {
    let env = TestEnv::new();
    let ds = three_commits(&env);
    // Stage then unstage a file: its object becomes garbage.
    env.write("ds/tmp.bin", vec![9u8; 100_000]);
    env.ok(ds, &["add", "tmp.bin"]);
    env.ok(ds, &["rm", "--cached", "tmp.bin"]);
    let v = env.json(ds, &["gc"]);
    assert_eq!(v["objects_removed"], 1);
    assert!(v["bytes_freed"].as_u64().unwrap() >= 100_000);
    assert!(env.ok(ds, &["gc"]).contains("freed 0 B"));
    // Every commit still checks out.
    for rev in ["main~2", "main~1", "main"] {
        env.ok(ds, &["checkout", rev]);
    }
    env.ok(ds, &["verify"]);
    // Staged objects survive gc.
    env.write("ds/staged.bin", vec![1u8; 5000]);
    env.ok(ds, &["add", "staged.bin"]);
    assert_eq!(env.json(ds, &["gc"])["objects_removed"], 0);
    env.ok(ds, &["commit", "-m", "s"]);
}

#[test]
fn checkout_of_many_files_writes_every_one() {
    // 600 files: the checkout writes them with two workers; directories that both create,
    // a file that becomes a directory and a directory that becomes a file all come out right.
    let env = TestEnv::new();
    let ds = env.init();
    for d in 0..30 {
        for f in 0..20 {
            env.write(&format!("ds/d{d:02}/f{f:02}.csv"), format!("{d},{f}\n"));
        }
    }
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "v1"]);
    let v1 = env.ls(ds, "HEAD");
    fs::remove_dir_all(env.path("ds/d00")).unwrap();
    env.write("ds/d00", "now a file\n");
    fs::remove_file(env.path("ds/d29/f19.csv")).unwrap();
    env.write("ds/d29/f19.csv/inner.csv", "now a directory\n");
    for f in 0..20 {
        env.write(&format!("ds/d15/f{f:02}.csv"), format!("changed {f}\n"));
    }
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "v2"]);
    let v2 = env.ls(ds, "HEAD");
    for (rev, want) in [("HEAD~1", &v1), ("main", &v2), ("HEAD~1", &v1)] {
        // Most files missing from the working tree: hundreds to write.
        for d in 1..29 {
            fs::remove_dir_all(env.path(&format!("ds/d{d:02}"))).unwrap();
        }
        env.ok(ds, &["checkout", "-f", rev]);
        assert_eq!(&env.ls(ds, "HEAD"), want);
        for (p, id) in want.iter() {
            assert_eq!(&b3(&env.path(&format!("ds/{p}"))), id, "{p} at {rev}");
        }
        assert!(env.ok(ds, &["status"]).contains("clean"), "{rev}");
    }
}
