//! The peer harness: `lode serve` started as a child process of a test peer (its own
//! `LODE_HOME`), its ticket lines read, tickets joined, device ids and grants.

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use lode::ticket::Ticket;

use super::TestEnv;

/// A running `lode serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub ticket: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `lode serve` in `cwd` as peer `home` and waits for its ticket line. Peers "srv…"
/// are the owner's servers: they get the dataset keys of the owner (peer "home"), so they
/// can sign heads, as the owner's own machines would.
pub fn serve(env: &TestEnv, home: &str, cwd: &str) -> Server {
    serve_repos(env, home, cwd, &[]).0
}

/// Like [`serve`], serving `repos` (paths relative to `cwd`); returns one ticket per repo.
pub fn serve_repos(env: &TestEnv, home: &str, cwd: &str, repos: &[&str]) -> (Server, Vec<String>) {
    serve_args(env, home, cwd, repos, repos.len().max(1))
}

/// `lode serve -q ARGS...` as peer `home`; waits for `tickets` ticket lines.
pub fn serve_args(
    env: &TestEnv,
    home: &str,
    cwd: &str,
    extra: &[&str],
    tickets: usize,
) -> (Server, Vec<String>) {
    let repos = extra;
    if home.starts_with("srv") {
        let from = env.path("home/datasets");
        let to = env.path(&format!("{home}/datasets"));
        fs::create_dir_all(&to).unwrap();
        for e in fs::read_dir(&from).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    let mut args = vec!["serve", "-q"];
    args.extend_from_slice(repos);
    let (child, rx) = spawn_lines(env.cmd_as(home, cwd, &args));
    let want = tickets;
    let mut tickets = Vec::new();
    for _ in 0..want {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("serve printed a ticket");
        tickets.push(
            line.strip_prefix("ticket: ")
                .expect("ticket line")
                .to_string(),
        );
    }
    let ticket = tickets[0].clone();
    (Server { child, ticket }, tickets)
}

/// Starts `cmd` with stdout piped (stderr inherited) and returns it with a channel of its
/// stdout lines.
pub fn spawn_lines(mut cmd: std::process::Command) -> (Child, mpsc::Receiver<String>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start lode");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// One ticket naming the providers of all `tickets` (of one dataset), in order.
pub fn joined(tickets: &[&str]) -> String {
    let all: Vec<Ticket> = tickets.iter().map(|t| t.parse().unwrap()).collect();
    Ticket {
        dataset: all[0].dataset,
        providers: all.iter().flat_map(|t| t.providers.clone()).collect(),
    }
    .to_string()
}

/// The device id of peer `home`.
pub fn device_id(env: &TestEnv, home: &str) -> String {
    env.json_as(home, "", &["id"])["device"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The owner (peer "home") grants peer `holder` a ticket for the dataset in `ds`.
pub fn grant(env: &TestEnv, ds: &str, holder: &str, flags: &[&str]) -> String {
    let id = device_id(env, holder);
    let mut args = vec!["grant", id.as_str()];
    args.extend_from_slice(flags);
    env.json(ds, &args)["ticket"].as_str().unwrap().to_string()
}

/// The owner grants peer `holder` a ticket bound to its identity card (needed to read a
/// restricted dataset: the keyring is encrypted to the card's age recipient).
pub fn grant_card(env: &TestEnv, ds: &str, holder: &str, flags: &[&str]) -> String {
    let card = env.ok_as(holder, "", &["id", "--card"]).trim().to_string();
    let mut args = vec!["grant", card.as_str()];
    args.extend_from_slice(flags);
    env.json(ds, &args)["ticket"].as_str().unwrap().to_string()
}

/// Clones `ticket` into `copy`, which must fail naming peer `home` (a server that sends bad
/// data) as having sent bad data or as the peer an object could not be fetched from;
/// returns the error output. iroh-blobs' provider checks what it reads against its
/// outboard on some paths and then aborts the stream instead of sending the bad bytes:
/// either way the peer is named.
pub fn clone_fails_naming(env: &TestEnv, home: &str, ticket: &str, copy: &str) -> String {
    let server_id =
        String::from_utf8(env.cmd_as(home, "", &["id"]).output().unwrap().stdout).unwrap();
    let err = env.fails("", &["clone", ticket, copy], &server_id.trim()[..10]);
    assert!(
        err.contains("sent bad data") || err.contains("could not be fetched"),
        "{err}"
    );
    err
}
