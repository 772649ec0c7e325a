//! People, not hex keys (issue 13, item 6): an identity names its holder (`lode id --name
//! --email --orcid`), signed into its identity card and recorded in new commits; `log`,
//! `show`, `grants` and a clone on another peer show `Ana Lee <ana@lab.org> (604a738c)`.
//! Commits made before a name was set keep decoding and verifying, shown by their key.

use crate::common::peers::serve;
use crate::common::{assert_error_line, TestEnv};

#[test]
fn an_identity_names_its_person_in_cards_commits_log_show_and_grants() {
    let env = TestEnv::new();
    let ds = env.init();
    // Before any name: a version-1 commit, shown by its key as before.
    env.commit_files(ds, &[("a.csv", b"1\n")], "unnamed");
    let key = env.ok("", &["id"]).lines().next().unwrap().to_string();
    assert_eq!(key.len(), 64);
    let short = &key[..8];

    // Mistakes are refused, one line each, and change nothing.
    let err = env.fails("", &["id", "--email", "ana@lab.org"], "no name yet");
    assert_error_line(&err);
    let err = env.fails(
        "",
        &["id", "--name", "Ana Lee", "--orcid", "0000-0002-1825-0098"],
        "check digit",
    );
    assert!(err.contains("nothing was changed"), "{err}");
    env.fails("", &["id", "--name", "Ana <b>Lee</b>"], "`<` or `>`");
    env.fails(
        "",
        &["id", "--name", "Ana", "--email", "ana at lab"],
        "email",
    );
    assert!(!env.ok("", &["id"]).contains("name:"));

    let out = env.ok(
        "",
        &[
            "id",
            "--name",
            "Ana Lee",
            "--email",
            "ana@lab.org",
            "--orcid",
            "https://orcid.org/0000-0002-1825-0097",
        ],
    );
    let label = format!("Ana Lee <ana@lab.org> ({short})");
    assert!(out.contains(&format!("name: {label}")), "{out}");
    assert!(
        out.contains("orcid: https://orcid.org/0000-0002-1825-0097"),
        "{out}"
    );
    let id = env.json("", &["id"]);
    assert_eq!(id["person"]["name"], "Ana Lee");
    assert_eq!(id["person"]["orcid"], "0000-0002-1825-0097");
    // Only the email changes; name and ORCID are kept.
    env.ok("", &["id", "--email", "ana.lee@lab.org"]);
    let id = env.json("", &["id"]);
    assert_eq!(id["person"]["email"], "ana.lee@lab.org");
    assert_eq!(id["person"]["orcid"], "0000-0002-1825-0097");
    env.ok("", &["id", "--email", "ana@lab.org"]);

    env.commit_files(ds, &[("b.csv", b"2\n")], "named");
    let log = env.ok(ds, &["log"]);
    assert!(log.contains(&format!("Author: {label}\n")), "{log}");
    assert!(log.contains(&format!("Author: {key}\n")), "{log}");
    assert!(!log.contains("BAD SIGNATURE"), "{log}");
    let show = env.ok(ds, &["show"]);
    assert!(show.contains(&format!("author  {label}\n")), "{show}");
    assert!(
        show.contains("orcid   https://orcid.org/0000-0002-1825-0097"),
        "{show}"
    );
    let j = env.json(ds, &["log"]);
    assert_eq!(j[0]["person"]["name"], "Ana Lee");
    assert_eq!(j[0]["author"], key.as_str());
    assert_eq!(j[0]["author_label"], label.as_str());
    assert!(j[1]["person"].is_null());
    // Both versions of commit verify.
    env.ok(ds, &["verify"]);

    // A peer that clones sees the name too: the commit travelled and verified there.
    let srv = serve(&env, "home", ds);
    env.ok_as("bob", "", &["clone", &srv.ticket, "copy"]);
    let log = env.ok_as("bob", "copy", &["log"]);
    assert!(log.contains(&format!("Author: {label}\n")), "{log}");
    drop(srv);

    // Bob names himself; his card carries the name; a grant to the card lists it.
    env.ok_as("bob", "", &["id", "--name", "Ben Ortiz"]);
    let bob_key = env
        .ok_as("bob", "", &["id"])
        .lines()
        .next()
        .unwrap()
        .to_string();
    let card = env.ok_as("bob", "", &["id", "--card"]).trim().to_string();
    assert!(card.starts_with("lodeid1"));
    env.ok(ds, &["grant", &card, "--read", "--note", "Ortiz lab"]);
    let grants = env.ok(ds, &["grants"]);
    assert!(
        grants.contains(&format!("Ben Ortiz ({})", &bob_key[..8])),
        "{grants}"
    );
    let g = env.json(ds, &["grants"]);
    assert_eq!(g[0]["holder_person"]["name"], "Ben Ortiz");
    assert_eq!(g[0]["holder"], bob_key.as_str());

    // Removing the name: new cards and commits are unnamed again.
    env.ok("", &["id", "--name", ""]);
    assert!(!env.ok("", &["id"]).contains("name:"));
}
