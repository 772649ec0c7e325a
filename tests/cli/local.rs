//! The everyday flow on one machine: init, add, status, commit, ls, cat, rm, ignore rules,
//! odd names, symlinks, empty files and directories, the link import mode.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::common::*;

#[test]
fn init_add_commit_ls_ids_equal_b3sum() {
    let env = TestEnv::new();
    let ds = env.init();
    env.write("ds/tables/neurons.csv", "name,type\nAVAL,inter\n");
    env.write("ds/video/worm.bin", vec![7u8; 3 << 20]);
    env.write("ds/empty.txt", "");
    fs::create_dir_all(env.path("ds/emptydir")).unwrap();
    env.ok(ds, &["add", "."]);
    let out = env.ok(ds, &["commit", "-m", "first"]);
    assert!(out.contains("first"), "{out}");
    let ls = env.ls(ds, "HEAD");
    let paths: Vec<&str> = ls.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "empty.txt",
            "emptydir",
            "tables/neurons.csv",
            "video/worm.bin"
        ]
    );
    for (p, id) in &ls {
        if p != "emptydir" {
            assert_eq!(id, &b3(&env.path(&format!("ds/{p}"))), "{p}");
        }
    }
    let st = env.json(ds, &["status"]);
    assert_eq!(st["staged"].as_array().unwrap().len(), 0);
    assert_eq!(st["unstaged"].as_array().unwrap().len(), 0);
    assert!(env.ok(ds, &["status"]).contains("working tree clean"));
    // Commit with nothing new is refused.
    env.fails(ds, &["commit", "-m", "again"], "nothing to commit");
    // cat streams the exact bytes.
    let out = env
        .cmd(ds, &["cat", "HEAD:video/worm.bin"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, env.read("ds/video/worm.bin"));
}

#[test]
fn status_sees_modified_deleted_untracked_and_staged() {
    let env = TestEnv::new();
    let ds = env.init();
    env.write("ds/a.csv", "1");
    env.write("ds/b.csv", "2");
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "one"]);
    env.write("ds/a.csv", "changed, same dir");
    fs::remove_file(env.path("ds/b.csv")).unwrap();
    env.write("ds/c.csv", "3");
    let st = env.json(ds, &["status"]);
    let unstaged: Vec<(String, String)> = st["unstaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().into(),
                c["change"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        unstaged,
        [
            ("a.csv".into(), "modified".into()),
            ("b.csv".into(), "deleted".into())
        ]
    );
    assert_eq!(st["untracked"], serde_json::json!(["c.csv"]));
    env.ok(ds, &["add", "."]);
    let st = env.json(ds, &["status"]);
    let staged: Vec<&str> = st["staged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["change"].as_str().unwrap())
        .collect();
    assert_eq!(staged, ["modified", "deleted", "added"]);
    // A same-size edit with the mtime put back is still caught (ctime and racy checks).
    env.ok(ds, &["commit", "-m", "two"]);
    let p = env.path("ds/c.csv");
    let mtime = fs::metadata(&p).unwrap().modified().unwrap();
    fs::write(&p, "4").unwrap();
    fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(env.json(ds, &["status"])["unstaged"][0]["path"], "c.csv");
}

#[test]
fn lodeignore_is_honoured() {
    let env = TestEnv::new();
    let ds = env.init();
    env.write("ds/.lodeignore", "*.tmp\ncache/\n");
    env.write("ds/keep.csv", "k");
    env.write("ds/junk.tmp", "j");
    env.write("ds/cache/x", "c");
    env.write("ds/sub/.lodeignore", "secret\n");
    env.write("ds/sub/secret", "s");
    env.write("ds/sub/open", "o");
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "m"]);
    let paths: Vec<String> = env.ls(ds, "HEAD").into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        [".lodeignore", "keep.csv", "sub/.lodeignore", "sub/open"]
    );
    assert!(env.json(ds, &["status"])["untracked"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn odd_names_spaces_unicode_newlines() {
    let env = TestEnv::new();
    let ds = env.init();
    let names = [
        "with space.csv",
        "ünïcödé-线虫.txt",
        "new\nline",
        "tab\tname",
        "-dash",
        "quote\"d",
    ];
    for (i, n) in names.iter().enumerate() {
        env.write(&format!("ds/dir with space/{n}"), format!("{i}"));
    }
    env.ok(ds, &["add", "dir with space"]);
    env.ok(ds, &["commit", "-m", "odd"]);
    let ls = env.ls(ds, "HEAD");
    assert_eq!(ls.len(), names.len());
    fs::remove_dir_all(env.path("ds/dir with space")).unwrap();
    env.ok(ds, &["checkout", "-f", "HEAD"]);
    for (i, n) in names.iter().enumerate() {
        assert_eq!(
            env.read(&format!("ds/dir with space/{n}")),
            format!("{i}").as_bytes()
        );
    }
    // Text output quotes control characters so one path stays one line.
    let text = env.ok(ds, &["ls"]);
    assert_eq!(text.lines().count(), names.len(), "{text}");
}

#[test]
fn symlinks_are_recorded_not_followed() {
    let env = TestEnv::new();
    let ds = env.init();
    env.write("outside/secret.txt", "do not take me");
    env.write("ds/real.csv", "r");
    std::os::unix::fs::symlink("real.csv", env.path("ds/inside-link")).unwrap();
    std::os::unix::fs::symlink(env.path("outside"), env.path("ds/outside-dir")).unwrap();
    std::os::unix::fs::symlink("../../nowhere", env.path("ds/dangling")).unwrap();
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "links"]);
    let v = env.json(ds, &["ls"]);
    let kinds: Vec<(&str, &str)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("dangling", "symlink"),
            ("inside-link", "symlink"),
            ("outside-dir", "symlink"),
            ("real.csv", "file")
        ]
    );
    // Nothing of the outside directory entered the store.
    let out = env.run(ds, &["cat", "HEAD:outside-dir/secret.txt"]);
    assert!(!out.status.success());
    for l in ["inside-link", "outside-dir", "dangling"] {
        fs::remove_file(env.path(&format!("ds/{l}"))).unwrap();
    }
    env.ok(ds, &["checkout", "-f", "HEAD"]);
    assert_eq!(
        fs::read_link(env.path("ds/outside-dir")).unwrap(),
        env.path("outside")
    );
    assert_eq!(
        fs::read_link(env.path("ds/dangling")).unwrap().to_str(),
        Some("../../nowhere")
    );
}

#[test]
fn a_tree_cannot_make_checkout_write_through_a_symlink() {
    let env = TestEnv::new();
    let ds = env.init();
    env.write("ds/d/file.csv", "v1");
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "dir"]);
    // Replace the directory with a symlink to the outside, staged and committed.
    fs::remove_dir_all(env.path("ds/d")).unwrap();
    fs::create_dir_all(env.path("outside")).unwrap();
    std::os::unix::fs::symlink(env.path("outside"), env.path("ds/d")).unwrap();
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "link"]);
    env.ok(ds, &["checkout", "HEAD~1"]);
    assert!(fs::symlink_metadata(env.path("ds/d")).unwrap().is_dir());
    assert_eq!(env.read("ds/d/file.csv"), b"v1");
    assert!(!env.path("outside/file.csv").exists());
}

#[test]
fn rm_unstages_and_deletes() {
    let env = TestEnv::new();
    let ds = env.init();
    env.write("ds/a/x", "x");
    env.write("ds/a/y", "y");
    env.write("ds/keep", "k");
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "m"]);
    env.ok(ds, &["rm", "--cached", "keep"]);
    assert!(env.path("ds/keep").exists());
    env.write("ds/a/x", "edited");
    let err = env.fails(ds, &["rm", "a"], "refusing to delete");
    assert!(err.contains("a/x") && err.contains("--cached"), "{err}");
    env.ok(ds, &["rm", "-f", "a"]);
    assert!(!env.path("ds/a").exists());
    env.ok(ds, &["commit", "-m", "rm"]);
    assert!(env.ls(ds, "HEAD").is_empty());
    env.fails(ds, &["rm", "nothing-here"], "did not match");
}

#[test]
fn rm_never_deletes_the_only_copy_of_a_file() {
    let env = TestEnv::new();
    let ds = env.init();
    env.write("ds/c.txt", "committed");
    env.ok(ds, &["add", "."]);
    env.ok(ds, &["commit", "-m", "c"]);
    // Staged, never committed: the working file is the only copy (git: "has changes staged
    // in the index").
    env.write("ds/b.txt", "only copy");
    env.ok(ds, &["add", "b.txt"]);
    let err = env.fails(ds, &["rm", "b.txt"], "refusing to delete");
    assert!(err.contains("b.txt") && err.contains("--force"), "{err}");
    assert_eq!(env.read("ds/b.txt"), b"only copy");
    // A committed file edited and staged: HEAD holds another content.
    env.write("ds/c.txt", "edited, staged");
    env.ok(ds, &["add", "c.txt"]);
    env.fails(ds, &["rm", "c.txt"], "refusing to delete");
    assert_eq!(env.read("ds/c.txt"), b"edited, staged");
    // --cached unstages and keeps the file.
    env.ok(ds, &["rm", "--cached", "b.txt"]);
    assert_eq!(env.read("ds/b.txt"), b"only copy");
    let st = env.json(ds, &["status"]);
    assert!(st.to_string().contains("b.txt"), "{st}");
    // --force deletes when asked.
    env.ok(ds, &["rm", "--force", "c.txt"]);
    assert!(!env.path("ds/c.txt").exists());
    // A committed, unchanged file is deleted without --force (its content is in a commit).
    env.ok(ds, &["checkout", "-f", "HEAD", "c.txt"]);
    env.ok(ds, &["add", "c.txt"]);
    env.ok(ds, &["rm", "c.txt"]);
    assert!(!env.path("ds/c.txt").exists());
}

#[test]
fn link_mode_does_not_copy() {
    let env = TestEnv::new();
    let ds = env.init();
    env.write("ds/huge.bin", vec![3u8; 2 << 20]);
    env.ok(ds, &["add", "--link", "huge.bin"]);
    env.ok(ds, &["commit", "-m", "m"]);
    let meta = fs::metadata(env.path("ds/huge.bin")).unwrap();
    assert_eq!(meta.nlink(), 2, "working file and object share one inode");
    assert_eq!(meta.permissions().mode() & 0o222, 0, "made read-only");
    assert!(env.ok(ds, &["status"]).contains("clean"));
    env.ok(ds, &["verify"]);
}

#[test]
fn metadata_is_recorded_by_the_next_commit() {
    let env = TestEnv::new();
    let ds = env.init();
    env.write("ds/a", "a");
    env.ok(ds, &["add", "a"]);
    env.ok(ds, &["commit", "-m", "data"]);
    env.ok(ds, &["meta", "title", "Worm tracks"]);
    env.ok(ds, &["meta", "authors", "A. Lee", "B. Ortiz"]);
    env.ok(ds, &["meta", "license", "CC-BY-4.0"]);
    env.ok(ds, &["meta", "strain", "N2"]);
    assert!(env.json(ds, &["status"])["metadata_changed"]
        .as_bool()
        .unwrap());
    assert_eq!(env.ok(ds, &["meta", "strain"]).trim(), "N2");
    env.ok(ds, &["commit", "-m", "describe"]);
    let show = env.json(ds, &["show"]);
    let m = &show["commit"]["metadata"];
    assert_eq!(m["title"], "Worm tracks");
    assert_eq!(m["authors"], serde_json::json!(["A. Lee", "B. Ortiz"]));
    assert_eq!(m["extra"]["strain"], "N2");
    assert!(show["commit"]["signature_valid"].as_bool().unwrap());
    assert_eq!(show["dataset"].as_str().unwrap().len(), 64);
    // The earlier commit keeps its metadata: content immutable, metadata versioned.
    assert!(env.json(ds, &["show", "HEAD~1"])["commit"]["metadata"]["title"].is_null());
    env.ok(ds, &["meta", "--unset", "strain"]);
    assert!(env.json(ds, &["meta"])["extra"]
        .as_object()
        .unwrap()
        .is_empty());
    env.fails(ds, &["meta", "bad key!", "x"], "unknown metadata key");
}

#[test]
fn meta_takes_names_with_commas_and_catches_typos() {
    let env = TestEnv::new();
    let ds = env.init();
    // Commas belong to names: one value per author, or `;` between them.
    env.ok(ds, &["meta", "authors", "Lee, Ana; Ortiz, Ben"]);
    assert_eq!(
        env.json(ds, &["meta"])["authors"],
        serde_json::json!(["Lee, Ana", "Ortiz, Ben"])
    );
    env.ok(
        ds,
        &["meta", "authors", "Lee, Ana", "Ortiz, Ben", "Chen, W."],
    );
    assert_eq!(
        env.json(ds, &["meta"])["authors"],
        serde_json::json!(["Lee, Ana", "Ortiz, Ben", "Chen, W."])
    );
    assert_eq!(
        env.ok(ds, &["meta", "authors"]).trim(),
        "Lee, Ana; Ortiz, Ben; Chen, W."
    );
    env.ok(ds, &["meta", "keywords", "worm, neurons", "tracking"]);
    assert_eq!(
        env.json(ds, &["meta"])["keywords"],
        serde_json::json!(["worm", "neurons", "tracking"])
    );
    // A near miss of a known key is refused, with the fix; nothing stored.
    let err = env.fails(
        ds,
        &["meta", "licence", "CC-BY-4.0"],
        "did you mean `license`",
    );
    assert!(err.contains("extra.licence"), "{err}");
    env.fails(ds, &["meta", "titel", "x"], "did you mean `title`");
    assert!(env.json(ds, &["meta"])["extra"]
        .as_object()
        .unwrap()
        .is_empty());
    // extra.NAME says it is meant.
    env.ok(ds, &["meta", "extra.licence", "see LICENSE"]);
    // Licenses are SPDX expressions.
    env.ok(ds, &["meta", "license", "CC-BY-4.0"]);
    env.ok(ds, &["meta", "license", "MIT OR Apache-2.0"]);
    env.ok(ds, &["meta", "license", "LicenseRef-lab-terms"]);
    let err = env.fails(ds, &["meta", "license", "CC BY 4.0 please"], "not an SPDX");
    assert!(err.contains("spdx.org"), "{err}");
    assert_eq!(env.json(ds, &["meta"])["license"], "LicenseRef-lab-terms");
    // Fields of one value refuse several.
    env.fails(ds, &["meta", "title", "C.", "elegans"], "takes one value");
}

#[test]
fn id_is_stable_and_key_files_private() {
    let env = TestEnv::new();
    let a = env.ok("", &["id"]);
    // A second later: the card is dated by the key, not by the clock, so it is the same card.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = env.ok("", &["id"]);
    assert_eq!(a, b);
    assert_eq!(a.lines().next().unwrap().len(), 64);
    assert!(a.contains("age recipient: age1") && a.contains("identity card: lodeid1"));
    env.init();
    for entry in walk(&env.path("home")) {
        if entry.is_file() {
            let mode = fs::metadata(&entry).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{entry:?} must be private");
        }
    }
    let show = env.json("ds", &["show"]);
    assert!(show["commit"].is_null());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn help_has_examples() {
    let env = TestEnv::new();
    for cmd in [
        "init", "add", "status", "commit", "log", "show", "diff", "checkout", "tag", "ls", "cat",
        "meta", "verify", "gc", "id", "rm",
    ] {
        let out = env.ok("", &[cmd, "--help"]);
        assert!(out.contains("Example"), "{cmd} --help lacks an example");
    }
}

#[test]
fn errors_under_json_are_json() {
    let env = TestEnv::new();
    let ds = env.init();
    let out = env.run(ds, &["rm", "nothing-here", "--json"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let v: serde_json::Value = serde_json::from_slice(&out.stderr).expect("one JSON object");
    assert!(
        v["error"].as_str().unwrap().contains("did not match"),
        "{v}"
    );
    assert!(v.get("hint").is_some(), "{v}");
    let out = env.run("", &["log", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stderr).expect("one JSON object");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("not a lode repository"),
        "{v}"
    );
    assert!(v["hint"].as_str().unwrap().contains("lode init"), "{v}");
}

/// A directory whose tree is larger than trees were once bounded to (64 MiB, about a
/// million entries of short names) commits, reads back and checks out: 240,000 empty files
/// (cheap to make) of 255-byte names make one tree of about 70 MiB.
#[test]
fn a_directory_whose_tree_exceeds_the_old_bound() {
    const N: usize = 240_000;
    let name = |i: usize| format!("{i:08}{}", "x".repeat(247));
    let env = TestEnv::new();
    let ds = env.init();
    let dir = env.path("ds/big");
    fs::create_dir_all(&dir).unwrap();
    for i in 0..N {
        fs::File::create(dir.join(name(i))).unwrap();
    }
    env.ok(ds, &["add", "--no-progress", "."]);
    env.ok(ds, &["commit", "-m", "big"]);
    let largest = walk(&env.path("ds/.lode/objects"))
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .max()
        .unwrap();
    assert!(largest > 64 << 20, "the big tree is {largest} bytes");
    assert!(env.ok(ds, &["status"]).contains("working tree clean"));
    let ls = env.ls(ds, "HEAD");
    assert_eq!(ls.len(), N);
    assert_eq!(ls[N - 1].0, format!("big/{}", name(N - 1)));

    fs::remove_dir_all(&dir).unwrap();
    env.ok(ds, &["checkout", "-f", "--no-progress", "HEAD"]);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), N);
    assert_eq!(names[0], name(0));
    assert_eq!(names[N - 1], name(N - 1));
    assert!(env.ok(ds, &["status"]).contains("working tree clean"));
}
