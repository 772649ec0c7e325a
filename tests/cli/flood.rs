//! Denial of service and oracles on real processes: unauthenticated `Revoke` requests and
//! floods of `lode/2` requests against `lode serve` (sent with the library, as an attacker
//! would), and idle, slow and stalled HTTP clients against the gateway of a `lode serve`
//! whose open-file limit is 64.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use lode::keys::Home;
use lode::net::endpoint::{NetOptions, Relay};
use lode::net::fetch::Client;
use lode::net::proto::{self, Request, Response};
use lode::ticket::Ticket;
use lode::trust::{Revocation, Target};

use crate::common::peers::{serve, spawn_lines, Server};
use crate::common::*;

fn opts() -> NetOptions {
    NetOptions {
        bind: Some("127.0.0.1:0".parse().unwrap()),
        relay: Relay::Disabled,
        discovery: false,
        ..Default::default()
    }
}

/// The dataset key of `ds`, from the owner's home.
fn owner_key(env: &TestEnv, ds: &str) -> SigningKey {
    let id = env.dataset_id(ds);
    let text = std::fs::read_to_string(env.path(&format!("home/datasets/{id}.key"))).unwrap();
    let hex_part = text.trim().strip_prefix("lode-ed25519-secret-v1 ").unwrap();
    SigningKey::from_bytes(&hex::decode(hex_part).unwrap().try_into().unwrap())
}

/// A revocation of a made-up link of `dataset`, signed by `key`.
fn revocation(dataset: [u8; 32], key: &SigningKey, link: u8) -> Vec<u8> {
    Revocation::sign(
        &dataset,
        key,
        Target::Link([link; 32]),
        1_700_000_000,
        "test",
    )
    .unwrap()
    .encode()
}

/// The revocations stored in repository `ds` (read with the library).
fn stored_revocations(env: &TestEnv, ds: &str) -> usize {
    let repo = lode::Repo::discover(
        &env.path(ds),
        Home::new(env.path("home")),
        lode::RepoOptions::default(),
    )
    .unwrap();
    let n = lode::ops::access::revocations(&repo).unwrap().len();
    repo.release_db();
    n
}

/// Sends each request of `reqs` (concurrently, at most `lanes` at a time) to the server of
/// `ticket` as peer `home`; returns the answers in order (a transport error as `Err`).
fn send_all(
    env: &TestEnv,
    home: &str,
    ticket: &str,
    reqs: Vec<Request>,
    lanes: usize,
) -> Vec<Result<Response, String>> {
    use n0_future::{BufferedStreamExt, StreamExt};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let t: Ticket = ticket.parse().unwrap();
        let client = Client::new(&Home::new(env.path(home)), &t, None, &opts())
            .await
            .unwrap();
        let id = client.providers()[0];
        let client = &client;
        let out: Vec<(usize, Result<Response, String>)> =
            n0_future::stream::iter(reqs.into_iter().enumerate())
                .map(|(i, req)| async move {
                    let r = client
                        .request(id, &req, Duration::from_secs(20))
                        .await
                        .map_err(|e| e.to_string());
                    (i, r)
                })
                .buffered_unordered(lanes)
                .collect()
                .await;
        let mut out = out;
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, r)| r).collect()
    })
}

fn one(env: &TestEnv, home: &str, ticket: &str, req: Request) -> Response {
    send_all(env, home, ticket, vec![req], 1)
        .pop()
        .unwrap()
        .unwrap()
}

/// Encoded revocations, as a `Revoke` request carries them.
type Revocations = Vec<Vec<u8>>;

fn revoke(dataset: [u8; 32], revocations: Revocations) -> Request {
    Request::Revoke {
        dataset,
        revocations,
    }
}

/// Holds the writer lock of repository `ds` (as a running `lode add` would) until dropped.
fn hold_lock(env: &TestEnv, ds: &str) -> std::fs::File {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(env.path(&format!("{ds}/.lode/lock")))
        .unwrap();
    f.try_lock().unwrap();
    f
}

#[test]
fn unauthenticated_revoke_reveals_nothing_and_takes_no_lock() {
    let env = TestEnv::new();
    env.ok("", &["init", "--private", "secret"]);
    env.commit_files("secret", &[("tables/a.csv", b"a,b\n")], "one");
    let srv = serve(&env, "srv", "secret");
    let hosted = srv.ticket.parse::<Ticket>().unwrap().dataset;
    let unknown = [0x5a; 32];
    let owner = owner_key(&env, "secret");
    let eve = SigningKey::from_bytes(&[3; 32]);
    let before = stored_revocations(&env, "secret");

    // Each request is sent for the hosted restricted dataset and for an unknown one: the
    // answers are the same bytes, and none is a success.
    // (what, revocations for the hosted dataset, for the unknown one, expected refusal)
    let cases: Vec<(&str, Revocations, Revocations, &str)> = vec![
        ("no revocations", vec![], vec![], "carries no revocation"),
        (
            "garbage",
            vec![vec![7u8; 120]],
            vec![vec![7u8; 120]],
            "bad revocation",
        ),
        (
            "signed by another key",
            vec![revocation(hosted, &eve, 1)],
            vec![revocation(unknown, &eve, 1)],
            "bad revocation",
        ),
    ];
    for (what, for_hosted, for_unknown, needle) in cases {
        let a = one(&env, "eve", &srv.ticket, revoke(hosted, for_hosted));
        let b = one(&env, "eve", &srv.ticket, revoke(unknown, for_unknown));
        assert_eq!(
            proto::encode(&a),
            proto::encode(&b),
            "{what}: the answers differ: {a:?} / {b:?}"
        );
        match a {
            Response::Denied(msg) => assert!(msg.contains(needle), "{what}: {msg}"),
            other => panic!("{what}: expected a refusal, got {other:?}"),
        }
    }

    // While the owner holds the writer lock, unauthenticated requests are answered at once
    // (they used to wait for the lock on the server's runtime threads), and an owner-signed
    // revocation is not waited for without bound: the peer is told to send it again.
    let lock = hold_lock(&env, "secret");
    let start = Instant::now();
    let answers = send_all(
        &env,
        "eve",
        &srv.ticket,
        (0..8).map(|_| revoke(hosted, vec![])).collect(),
        8,
    );
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "8 requests took {took:?}");
    for a in answers {
        assert!(matches!(a, Ok(Response::Denied(_))), "{a:?}");
    }
    let valid = revocation(hosted, &owner, 9);
    let start = Instant::now();
    match one(
        &env,
        "eve",
        &srv.ticket,
        revoke(hosted, vec![valid.clone()]),
    ) {
        Response::Error(msg) => assert!(msg.contains("send them again later"), "{msg}"),
        other => panic!("expected the lock to be busy, got {other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    drop(lock);
    assert_eq!(stored_revocations(&env, "secret"), before, "nothing stored");

    // The baseline: the owner's signed revocation is stored once, whoever relays it, and an
    // unknown dataset is named only to a peer that proved it holds one.
    match one(
        &env,
        "eve",
        &srv.ticket,
        revoke(hosted, vec![valid.clone()]),
    ) {
        Response::Revoked { new } => assert_eq!(new, 1),
        other => panic!("expected the revocation to be stored, got {other:?}"),
    }
    match one(&env, "eve", &srv.ticket, revoke(hosted, vec![valid])) {
        Response::Revoked { new } => assert_eq!(new, 0),
        other => panic!("expected a known revocation, got {other:?}"),
    }
    let stranger = SigningKey::from_bytes(&[4; 32]);
    let elsewhere = stranger.verifying_key().to_bytes();
    match one(
        &env,
        "eve",
        &srv.ticket,
        revoke(elsewhere, vec![revocation(elsewhere, &stranger, 1)]),
    ) {
        Response::Denied(msg) => assert!(msg.contains("does not serve that dataset"), "{msg}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(stored_revocations(&env, "secret"), before + 1);
}

#[test]
fn a_request_flood_does_not_fail_the_owners_commits() {
    let env = TestEnv::new();
    env.ok("", &["init", "ds"]);
    let files: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| (format!("t/{i}.csv"), format!("{i}\n").into_bytes()))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, d)| (p.as_str(), d.as_slice()))
        .collect();
    env.commit_files("ds", &refs, "base");
    // The server serves the owner's own working repository.
    let srv = serve(&env, "srv", "ds");
    let dataset = srv.ticket.parse::<Ticket>().unwrap().dataset;
    let known = revocation(dataset, &owner_key(&env, "ds"), 1);
    assert!(matches!(
        one(
            &env,
            "mallory",
            &srv.ticket,
            revoke(dataset, vec![known.clone()])
        ),
        Response::Revoked { new: 1 }
    ));

    // 200 requests (unauthenticated revocations, a known revocation, listings), 8 at a time,
    // while the owner adds and commits five times.
    let reqs: Vec<Request> = (0..200)
        .map(|i| match i % 3 {
            0 => revoke(dataset, vec![]),
            1 => revoke(dataset, vec![known.clone()]),
            _ => Request::ListRefs {
                dataset,
                ticket: None,
            },
        })
        .collect();
    let start = Instant::now();
    let answers = std::thread::scope(|s| {
        let flood = s.spawn(|| send_all(&env, "mallory", &srv.ticket, reqs, 8));
        for round in 0..5 {
            env.write(&format!("ds/new/{round}.txt"), format!("round {round}\n"));
            env.ok("ds", &["add", "."]);
            env.ok("ds", &["commit", "-m", &format!("round {round}")]);
        }
        flood.join().unwrap()
    });
    let took = start.elapsed();
    assert!(took < Duration::from_secs(60), "{took:?}");
    let mut limited = 0;
    for a in &answers {
        match a {
            Ok(Response::Revoked { new }) => assert_eq!(*new, 0),
            Ok(Response::Denied(msg)) => assert!(msg.contains("carries no revocation"), "{msg}"),
            Ok(Response::Refs(_)) => {}
            Ok(Response::Error(msg)) if msg.contains("too many requests") => limited += 1,
            // The owner's command held the database longer than the server waits for it.
            Ok(Response::Error(msg)) if msg.contains("is busy") => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(limited < answers.len(), "every request was refused");
    eprintln!(
        "flood: {} requests in {took:?}, {limited} refused by the rate limit",
        answers.len()
    );

    // A burst of cheap requests from a new peer: beyond the bucket (64) and what refills
    // meanwhile (16 a second), they are refused.
    let start = Instant::now();
    let burst = send_all(
        &env,
        "trudy",
        &srv.ticket,
        (0..150).map(|_| revoke(dataset, vec![])).collect(),
        8,
    );
    let took = start.elapsed().as_secs_f64();
    let limited = burst
        .iter()
        .filter(|a| matches!(a, Ok(Response::Error(m)) if m.contains("too many requests")))
        .count();
    let least = 150.0 - 64.0 - 16.0 * (took + 0.5);
    eprintln!(
        "burst: 150 requests in {took:.2} s, {limited} refused (at least {least:.0} expected)"
    );
    assert!(
        limited as f64 >= least,
        "only {limited} of 150 refused in {took:.2} s"
    );
    assert!(limited < 150 - 60, "more than the burst refused: {limited}");

    // Another peer is served as before, and sees the owner's last commit.
    env.ok_as("bob", "", &["clone", &srv.ticket, "copy"]);
    assert_eq!(env.read("copy/new/4.txt"), b"round 4\n");
    assert_eq!(stored_revocations(&env, "ds"), 1);
}

/// `lode serve -q --http 127.0.0.1:0 ds` as peer `home` (the owner: it signs heads) under an open-file limit of 64,
/// with `vars` set; returns the server and the gateway's address.
fn gateway_with_64_files(env: &TestEnv, home: &str, vars: &[(&str, &str)]) -> (Server, String) {
    let inner = env.cmd_as(home, "", &["serve", "-q", "--http", "127.0.0.1:0", "ds"]);
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "ulimit -n 64 && exec \"$0\" \"$@\"", lode_bin()])
        .args(inner.get_args())
        .current_dir(env.path(""))
        .env_clear()
        .stdin(std::process::Stdio::null());
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let (child, lines) = spawn_lines(cmd);
    let mut server = Server {
        child,
        ticket: String::new(),
    };
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("serve output");
        if let Some(t) = line.strip_prefix("ticket: ") {
            server.ticket = t.to_string();
        }
        if let Some(u) = line.strip_prefix("http: http://") {
            let limits =
                std::fs::read_to_string(format!("/proc/{}/limits", server.child.id())).unwrap();
            assert!(
                limits
                    .lines()
                    .any(|l| l.starts_with("Max open files") && l.contains(" 64 ")),
                "{limits}"
            );
            return (server, u.trim_end_matches('/').to_string());
        }
    }
}

/// Opens `n` TCP connections to `addr` that send nothing.
fn idle(addr: &str, n: usize) -> Vec<TcpStream> {
    let addr = addr.parse().unwrap();
    (0..n)
        .map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap())
        .collect()
}

/// Whether the server closed `s` (EOF or reset) within `wait`.
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn get(addr: &str, path: &str) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}"])
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("curl is installed");
    let mut body = out.stdout;
    let nl = body.iter().rposition(|b| *b == b'\n').unwrap_or(0);
    let code = String::from_utf8_lossy(&body[nl + 1..])
        .trim()
        .parse()
        .unwrap_or(0);
    body.truncate(nl);
    (code, body)
}

/// CPU seconds (user + system) process `pid` has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the whole line: the 12th and 13th after the name.
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn big_dataset(env: &TestEnv) -> Vec<u8> {
    env.ok("", &["init", "ds"]);
    let big: Vec<u8> = (0..24u32 << 20).map(|i| (i % 251) as u8).collect();
    env.commit_files("ds", &[("big.bin", &big), ("small.txt", b"hello\n")], "one");
    big
}

#[test]
fn gateway_drops_idle_slow_and_stalled_clients() {
    let env = TestEnv::new();
    let big = big_dataset(&env);
    let (srv, addr) = gateway_with_64_files(&env, "home", &[("LODE_HTTP_TIMEOUT_MS", "1500")]);
    let id = env.dataset_id("ds");

    // A client that sends its headers a byte at a time is cut off after the timeout,
    // without an answer.
    let mut slow = TcpStream::connect(&addr).unwrap();
    let start = Instant::now();
    let request = format!("GET /d/{id}/small.txt HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    slow.write_all(request.as_bytes()).unwrap();
    let mut cut = false;
    while start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(200));
        if slow.write_all(b"a").is_err() {
            cut = true;
            break;
        }
        slow.set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        let mut buf = [0u8; 64];
        match slow.read(&mut buf) {
            Ok(0) => {
                cut = true;
                break;
            }
            Ok(n) => panic!(
                "the slow client got an answer: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                cut = true;
                break;
            }
            Err(_) => {}
        }
    }
    assert!(cut, "a slow client kept its connection for 15 s");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "cut after {took:?}");

    // A client that asks for a 24 MiB file and reads nothing is cut off too: it gets only
    // what the socket buffers held.
    let mut stalled = TcpStream::connect(&addr).unwrap();
    write!(
        stalled,
        "GET /d/{id}/big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let mut got = Vec::new();
    stalled
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = stalled.read_to_end(&mut got);
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&got[..got.len().min(100)])
    );
    assert!(
        got.len() < big.len(),
        "a client that read nothing for 5 s still got the whole file"
    );

    // 120 idle connections, more than the process may open files: a new request is still
    // answered (idle connections are closed after the timeout, and at most 16 are open).
    let mut sockets = idle(&addr, 120);
    let start = Instant::now();
    let (code, body) = get(&addr, &format!("/d/{id}/small.txt"));
    assert_eq!((code, body.as_slice()), (200, &b"hello\n"[..]));
    eprintln!(
        "a request behind 120 idle connections took {:?}",
        start.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    for (i, s) in sockets.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            closed_within(s, left.max(Duration::from_millis(1))),
            "idle connection {i} still open after 30 s"
        );
    }
    let (code, body) = get(&addr, &format!("/d/{id}/big.bin"));
    assert_eq!(code, 200);
    assert!(body == big, "the file served after the attack differs");
    drop(srv);
}

#[test]
fn running_out_of_files_backs_off_and_says_so() {
    let env = TestEnv::new();
    big_dataset(&env);
    // No connection cap: the idle connections use up every file descriptor.
    let (mut srv, addr) = gateway_with_64_files(
        &env,
        "home",
        &[
            ("LODE_HTTP_TIMEOUT_MS", "8000"),
            ("LODE_HTTP_MAX_CONNECTIONS", "1000"),
        ],
    );
    let mut sockets = idle(&addr, 150);
    std::thread::sleep(Duration::from_millis(500));
    let pid = srv.child.id();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    assert!(
        fds >= 60,
        "the server holds only {fds} files: not exhausted"
    );
    // The accept loop waits instead of spinning on EMFILE.
    let cpu = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_seconds(pid) - cpu;
    assert!(
        used < 0.5,
        "the server used {used} s of CPU in 2 s while out of files"
    );
    eprintln!("out of files ({fds} open): {used:.2} s of CPU in 2 s");
    // A peer cloning meanwhile is told what is wrong and what to do, not that the database
    // is corrupt.
    let err = env.fails_as(
        "bob",
        "",
        &["clone", &srv.ticket, "copy"],
        "too many open files",
    );
    eprintln!("clone while out of files: {}", err.trim());
    assert!(err.contains("ulimit -n"), "{err}");
    assert!(!err.contains("corrupt"), "{err}");
    assert!(srv.child.try_wait().unwrap().is_none(), "the server died");
    // Once the idle clients are gone, everything works again.
    sockets.clear();
    std::thread::sleep(Duration::from_secs(2));
    env.ok_as("bob", "", &["clone", &srv.ticket, "copy2"]);
    assert_eq!(env.read("copy2/small.txt"), b"hello\n");
    let id = env.dataset_id("ds");
    assert_eq!(get(&addr, &format!("/d/{id}/small.txt")).0, 200);
}
