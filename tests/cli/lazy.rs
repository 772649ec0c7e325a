//! Lazy clones: `clone --lazy` (commits and trees only), `lode get PATH` inside the clone,
//! `lode drop PATH` (never the only copy, never a changed file), status and verify.

use std::fs;

use crate::common::peers::serve;
use crate::common::*;

fn dataset(env: &TestEnv) -> &'static str {
    let ds = env.init();
    env.write("ds/tables/neurons.csv", "name,type\nAVAL,inter\n");
    env.write("ds/video/day1.bin", noise(3 << 20, 5));
    env.write("ds/notes.txt", "lab notes\n");
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "day 1"]);
    ds
}

fn absent(env: &TestEnv, repo: &str) -> Vec<String> {
    let s = env.json_as("peer", repo, &["status"]);
    assert!(
        s["unstaged"].as_array().unwrap().is_empty(),
        "absent files are not deleted: {s}"
    );
    s["absent"]
        .as_array()
        .map(|a| a.iter().map(|p| p.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn a_lazy_clone_gets_and_drops_files() {
    let env = TestEnv::new();
    let ds = dataset(&env);
    let video = env
        .ls(ds, "HEAD")
        .into_iter()
        .find(|(p, _)| p == "video/day1.bin")
        .unwrap()
        .1;
    let server = serve(&env, "srv", ds);
    env.ok_as("peer", "", &["clone", "--lazy", &server.ticket, "c"]);
    // History and trees, no file content, no files.
    assert_eq!(env.ls("c", "HEAD"), env.ls(ds, "HEAD"));
    assert!(!env.path("c/video/day1.bin").exists());
    assert!(!env.holds("c", &video));
    assert_eq!(
        absent(&env, "c"),
        ["notes.txt", "tables/neurons.csv", "video/day1.bin"]
    );
    let v = env.json_as("peer", "c", &["verify"]);
    assert_eq!(v["damaged"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["absent"], 3);
    // `get PATH` inside the clone: only those files, verified, checked out.
    env.ok_as("peer", "c", &["get", "video"]);
    assert_eq!(b3(&env.path("c/video/day1.bin")), video);
    assert_eq!(absent(&env, "c"), ["notes.txt", "tables/neurons.csv"]);
    env.ok_as("peer", "c", &["get", "tables/neurons.csv"]);
    assert_eq!(env.read("c/tables/neurons.csv"), b"name,type\nAVAL,inter\n");
    // Drop: the provider holds it, so the content goes and the file is absent again.
    let d = env.json_as("peer", "c", &["drop", "video/day1.bin"]);
    assert_eq!(d["dropped"][0], "video/day1.bin");
    assert!(!env.path("c/video/day1.bin").exists());
    assert!(!env.holds("c", &video));
    assert_eq!(absent(&env, "c"), ["notes.txt", "video/day1.bin"]);
    env.ok_as("peer", "c", &["get", "video/day1.bin"]);
    assert_eq!(b3(&env.path("c/video/day1.bin")), video);
    // A path the revision does not have is named.
    env.fails_as("peer", "c", &["get", "nope.txt"], "nope.txt");
}

#[test]
fn drop_never_removes_the_only_copy_or_a_changed_file() {
    let env = TestEnv::new();
    let ds = dataset(&env);
    let server = serve(&env, "srv", ds);
    env.ok_as("peer", "", &["clone", "--lazy", &server.ticket, "c"]);
    env.ok_as("peer", "c", &["get", "tables", "notes.txt"]);
    // A changed file is refused, and stays as the user left it.
    env.write("c/notes.txt", "my edits\n");
    env.fails_as("peer", "c", &["drop", "notes.txt"], "changed or staged");
    assert_eq!(env.read("c/notes.txt"), b"my edits\n");
    // Staged but not committed: its content exists only here.
    env.ok_as("peer", "c", &["add", "notes.txt"]);
    env.fails_as("peer", "c", &["drop", "notes.txt"], "changed or staged");
    assert_eq!(env.read("c/notes.txt"), b"my edits\n");
    // With no provider reachable, nothing is deleted: it could be the only copy.
    drop(server);
    let err = env.fails_as("peer", "c", &["drop", "tables"], "");
    assert!(
        err.contains("no provider") || err.contains("reach") || err.contains("unreachable"),
        "{err}"
    );
    assert_eq!(env.read("c/tables/neurons.csv"), b"name,type\nAVAL,inter\n");
    let id = env
        .ls("c", "HEAD")
        .into_iter()
        .find(|(p, _)| p == "tables/neurons.csv")
        .unwrap()
        .1;
    assert!(env.object_bytes("c", &id).is_some());
    // Only a lazy clone drops content.
    env.fails(ds, &["drop", "notes.txt"], "lazy clone");
    assert!(fs::metadata(env.path("ds/notes.txt")).is_ok());
}

#[test]
fn a_lazy_clone_pulls_history_without_content() {
    let env = TestEnv::new();
    let ds = dataset(&env);
    let server = serve(&env, "srv", ds);
    env.ok_as("peer", "", &["clone", "--lazy", &server.ticket, "c"]);
    env.commit_files(ds, &[("day2.csv", b"more\n")], "day 2");
    env.ok_as("peer", "c", &["pull"]);
    assert_eq!(env.head("c"), env.head(ds));
    assert!(absent(&env, "c").contains(&"day2.csv".to_string()));
    env.ok_as("peer", "c", &["get", "day2.csv"]);
    assert_eq!(env.read("c/day2.csv"), b"more\n");
}
