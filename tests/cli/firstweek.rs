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
