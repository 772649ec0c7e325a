//! A first week of real use (issue 13): mistakes a new user makes, and what lode says.

use crate::common::{assert_error_line, TestEnv};
use crate::sync::serve;

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
