//! A first week of real use (issue 13): mistakes a new user makes, and what lode says.

use crate::common::peers::serve;
use crate::common::{assert_error_line, TestEnv};

#[test]
fn a_second_serve_of_one_repository_names_the_first() {
    let env = TestEnv::new();
    let ds = env.init();
    env.commit_files(ds, &[("a.csv", b"1\n")], "one");
    let first = serve(&env, "srv", ds);
    let out = env.cmd_as("srv", ds, &["serve"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("already served by another `lode serve`")
            && err.contains(&format!("pid {}", first.child.id())),
        "{err}"
    );
    assert!(!err.contains("Database already open"), "{err}");
    assert_error_line(&err);
    // Once the first stops, serving works again.
    drop(first);
    let again = serve(&env, "srv", ds);
    assert!(again.ticket.starts_with("lode1"));
}

#[test]
fn words_agree_across_commands() {
    let env = TestEnv::new();
    let ds = env.init();
    env.commit_files(
        ds,
        &[("big.bin", &[7u8; 3 << 20]), ("a.csv", b"1\n")],
        "one",
    );
    // ls: human sizes by default, exact with --bytes.
    let ls = env.ok(ds, &["ls"]);
    assert!(ls.contains("3.00 MiB") || ls.contains("3.0 MiB"), "{ls}");
    let exact = env.ok(ds, &["ls", "--bytes"]);
    assert!(exact.contains(" 3145728  big.bin"), "{exact}");
    // status and diff say the same word for a file gone from the working tree.
    std::fs::remove_file(env.path(&format!("{ds}/a.csv"))).unwrap();
    let status = env.ok(ds, &["status"]);
    let diff = env.ok(ds, &["diff"]);
    assert!(
        status.contains("deleted:") && diff.contains("deleted:"),
        "{status}\n{diff}"
    );
    assert!(!diff.contains("removed"), "{diff}");
    // A bad identity card: the owner is told to ask the holder, not "the dataset owner".
    let err = env.fails(ds, &["grant", "lodeid1junk", "--read"], "identity card");
    assert!(
        err.contains("lode id --card") && !err.contains("ask the dataset owner"),
        "{err}"
    );
}

#[test]
fn a_restarted_serve_keeps_its_port_and_tickets_come_from_files() {
    let env = TestEnv::new();
    let ds = env.init();
    env.commit_files(ds, &[("a.csv", b"1\n")], "one");
    // Restart: the same address, so the clone's remote still works.
    let first = serve(&env, "srv", ds);
    let ticket = first.ticket.clone();
    env.json_as("peer", "", &["clone", &first.ticket, "copy"]);
    drop(first);
    env.commit_files(ds, &[("b.csv", b"2\n")], "two");
    let second = serve(&env, "srv", ds);
    assert_eq!(second.ticket, ticket, "a restart changed the address");
    env.ok_as("peer", "copy", &["pull"]);
    assert_eq!(env.read("copy/b.csv"), b"2\n");
    // The port taken by someone else: a new one, and a note that says what to do.
    let port: u16 = String::from_utf8(env.read(&format!("{ds}/.lode/serve.port")))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    drop(second);
    let squatter = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    let out = env
        .cmd_as("srv", ds, &["serve"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = out.id();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status();
    let out = out.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("port {port}")) && err.contains("lode remote add"),
        "{err}"
    );
    drop(squatter);

    // grant --output FILE, then --ticket @FILE.
    let card = env.ok_as("reader", "", &["id", "--card"]);
    let file = env.path("reader-ticket.txt");
    env.ok(
        ds,
        &[
            "grant",
            card.trim(),
            "--read",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(String::from_utf8(env.read("reader-ticket.txt"))
        .unwrap()
        .starts_with("lodecap1"));
    let server = serve(&env, "srv", ds);
    let at = format!("@{}", file.display());
    env.json_as(
        "reader",
        "",
        &["clone", &server.ticket, "rclone", "--ticket", &at],
    );
    assert_eq!(env.read("rclone/a.csv"), b"1\n");
    let out = env
        .cmd_as(
            "reader",
            "",
            &["clone", &server.ticket, "x", "--ticket", "@/nonexistent/t"],
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot read the ticket file /nonexistent/t"),
        "{err}"
    );
}

#[test]
fn log_shows_tags_and_has_a_one_line_form() {
    let env = TestEnv::new();
    let ds = env.init();
    env.commit_files(ds, &[("a.csv", b"1\n")], "first day\n\nlonger text");
    env.ok(ds, &["tag", "v1"]);
    env.commit_files(ds, &[("a.csv", b"2\n")], "second day");
    let log = env.ok(ds, &["log"]);
    let mut lines = log.lines().filter(|l| l.starts_with("commit "));
    assert!(lines.next().unwrap().ends_with("(HEAD -> main)"), "{log}");
    assert!(lines.next().unwrap().ends_with("(tag: v1)"), "{log}");
    let one = env.ok(ds, &["log", "--oneline"]);
    let rows: Vec<&str> = one.lines().collect();
    assert_eq!(rows.len(), 2, "{one}");
    assert!(rows[0].ends_with(" (HEAD -> main) second day"), "{one}");
    assert!(rows[1].ends_with(" (tag: v1) first day"), "{one}");
    assert_eq!(rows[1].split(' ').next().unwrap().len(), 12);
}

#[test]
fn clone_never_merges_into_a_users_directory_and_a_failed_clone_leaves_nothing() {
    let env = TestEnv::new();
    let ds = env.init();
    env.commit_files(ds, &[("a.csv", b"1\n")], "one");
    let server = serve(&env, "srv", ds);
    // Into a directory holding the user's files: refused, the files untouched, no .lode.
    env.write("mine/a.csv", "my own edits");
    let err = env.fails_as("peer", "", &["clone", &server.ticket, "mine"], "not empty");
    assert!(err.contains("a.csv") && !err.contains("--force"), "{err}");
    assert_eq!(env.read("mine/a.csv"), b"my own edits");
    assert!(!env.path("mine/.lode").exists());
    // Into an empty directory: fine.
    std::fs::create_dir_all(env.path("empty")).unwrap();
    env.json_as("peer", "", &["clone", &server.ticket, "empty"]);
    assert_eq!(env.read("empty/a.csv"), b"1\n");

    // A clone refused by the peer leaves nothing: no directory it made, and in a directory
    // that was there (empty), no .lode.
    env.ok("", &["init", "--private", "secret"]);
    env.commit_files("secret", &[("s.csv", b"x\n")], "s");
    let private = serve(&env, "srv", "secret");
    env.fails_as(
        "peer",
        "",
        &["clone", &private.ticket, "made"],
        "not authorized",
    );
    assert!(!env.path("made").exists());
    std::fs::create_dir_all(env.path("there")).unwrap();
    env.fails_as(
        "peer",
        "",
        &["clone", &private.ticket, "there"],
        "not authorized",
    );
    assert!(env.path("there").is_dir());
    assert_eq!(std::fs::read_dir(env.path("there")).unwrap().count(), 0);
}

#[test]
fn get_never_replaces_an_edited_file_unless_forced() {
    let env = TestEnv::new();
    let ds = env.init();
    env.commit_files(ds, &[("neurons.csv", b"v1\n"), ("b.csv", b"b\n")], "one");
    env.ok(ds, &["tag", "v1"]);
    env.commit_files(ds, &[("neurons.csv", b"v2\n")], "two");
    let server = serve(&env, "srv", ds);
    env.ok_as(
        "peer",
        "",
        &["get", &server.ticket, "neurons.csv", "--to", "g"],
    );
    assert_eq!(env.read("g/neurons.csv"), b"v2\n");
    // An identical file is left as is (same inode, no rewrite).
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(env.path("g/neurons.csv")).unwrap().ino();
    env.ok_as(
        "peer",
        "",
        &["get", &server.ticket, "neurons.csv", "--to", "g"],
    );
    assert_eq!(
        std::fs::metadata(env.path("g/neurons.csv")).unwrap().ino(),
        ino
    );
    // An edited file: refused, naming it; nothing else written; kept.
    env.write("g/neurons.csv", "my edits");
    let err = env.fails_as(
        "peer",
        "",
        &["get", &server.ticket, "", "--to", "g"],
        "would replace",
    );
    assert!(
        err.contains("neurons.csv") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(env.read("g/neurons.csv"), b"my edits");
    assert!(!env.path("g/b.csv").exists());
    // --rev, and --force replaces when asked.
    env.ok_as(
        "peer",
        "",
        &[
            "get",
            &server.ticket,
            "neurons.csv",
            "--to",
            "g",
            "--rev",
            "v1",
            "--force",
        ],
    );
    assert_eq!(env.read("g/neurons.csv"), b"v1\n");
}

/// The sweep: every command that writes into a working tree, with a user's unsaved file in
/// its way. Each refuses with a clear message or keeps the file; none loses it.
#[test]
fn no_command_destroys_an_unsaved_file() {
    let env = TestEnv::new();
    let ds = env.init();
    env.commit_files(ds, &[("a.csv", b"1\n"), ("b.csv", b"b\n")], "one");
    env.ok(ds, &["tag", "v1"]);
    env.commit_files(ds, &[("a.csv", b"2\n"), ("c.csv", b"c\n")], "two");
    let keep = |path: &str, want: &[u8]| assert_eq!(env.read(path), want, "{path} lost");

    // checkout: over an edited tracked file; over an untracked file the target brings.
    env.write("ds/a.csv", "unsaved a");
    env.fails(ds, &["checkout", "v1"], "uncommitted changes");
    keep("ds/a.csv", b"unsaved a");
    env.ok(ds, &["checkout", "-f", "main", "a.csv"]);
    env.ok(ds, &["checkout", "v1"]);
    env.write("ds/c.csv", "my own c");
    env.fails(ds, &["checkout", "main"], "untracked");
    keep("ds/c.csv", b"my own c");
    std::fs::remove_file(env.path("ds/c.csv")).unwrap();
    env.ok(ds, &["checkout", "main"]);

    // rm: a staged file no commit holds.
    env.write("ds/new.csv", "only copy");
    env.ok(ds, &["add", "new.csv"]);
    env.fails(ds, &["rm", "new.csv"], "refusing to delete");
    keep("ds/new.csv", b"only copy");
    env.ok(ds, &["rm", "--cached", "new.csv"]);
    std::fs::remove_file(env.path("ds/new.csv")).unwrap();

    let server = serve(&env, "srv", ds);
    // clone: into a directory with the user's files.
    env.write("mine/a.csv", "mine");
    env.fails_as("peer", "", &["clone", &server.ticket, "mine"], "not empty");
    keep("mine/a.csv", b"mine");
    // get: over an edited file.
    env.write("g/a.csv", "edited");
    env.fails_as(
        "peer",
        "",
        &["get", &server.ticket, "a.csv", "--to", "g"],
        "would replace",
    );
    keep("g/a.csv", b"edited");

    // pull: an edited tracked file the pull changes; an untracked file where one arrives.
    env.json_as("peer", "", &["clone", &server.ticket, "copy"]);
    env.write("copy/a.csv", "peer's unsaved edit");
    env.write("copy/d.csv", "peer's own d");
    env.commit_files(ds, &[("a.csv", b"3\n"), ("d.csv", b"d\n")], "three");
    env.fails_as("peer", "copy", &["pull"], "uncommitted changes");
    keep("copy/a.csv", b"peer's unsaved edit");
    keep("copy/d.csv", b"peer's own d");

    // A push received by a serving peer whose owner has an unsaved edit of the same file.
    let writer = crate::common::peers::grant(&env, ds, "peer", &["--write"]);
    env.ok_as("peer", "copy", &["checkout", "-f", "HEAD", "a.csv"]);
    std::fs::remove_file(env.path("copy/d.csv")).unwrap();
    env.ok_as("peer", "copy", &["pull"]);
    env.write("copy/a.csv", "from the writer");
    env.ok_as("peer", "copy", &["add", "a.csv"]);
    env.ok_as("peer", "copy", &["commit", "-m", "w"]);
    env.write("ds/a.csv", "owner's unsaved edit");
    let err = env.fails_as(
        "peer",
        "copy",
        &["push", "--ticket", &writer],
        "uncommitted",
    );
    assert!(err.contains("a.csv"), "{err}");
    keep("ds/a.csv", b"owner's unsaved edit");
}
