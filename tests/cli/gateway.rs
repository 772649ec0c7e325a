//! The HTTP gateway (`lode serve --http`), driven with curl: listing pages, byte-exact
//! downloads and Range requests, BLAKE3 headers, restricted datasets never served, hostile
//! paths refused; and the listing pages rendered by headless Chromium.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;

pub(crate) struct Gateway {
    child: Child,
    pub(crate) url: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start(env: &TestEnv, repos: &[&str]) -> Gateway {
    let mut args = vec!["serve", "-q", "--http", "127.0.0.1:0"];
    args.extend_from_slice(repos);
    launch(env.cmd("", &args))
}

/// Starts a `lode serve --http` command and waits for the URL it prints.
fn launch(cmd: Command) -> Gateway {
    let (child, lines) = crate::common::peers::spawn_lines(cmd);
    // Owned by the guard at once: killed and reaped even if the wait below fails.
    let mut gw = Gateway {
        child,
        url: String::new(),
    };
    while gw.url.is_empty() {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("serve output");
        if let Some(u) = line.strip_prefix("http: ") {
            gw.url = u.trim_end_matches('/').to_string();
        }
    }
    gw
}

/// curl: returns (status, headers lowercased, body).
pub(crate) fn curl(args: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let hdr = dir.path().join("h");
    let body = dir.path().join("b");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-D"])
        .arg(&hdr)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("curl is installed");
    let code: u16 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let headers = std::fs::read_to_string(&hdr)
        .unwrap_or_default()
        .to_lowercase();
    (code, headers, std::fs::read(&body).unwrap_or_default())
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

#[test]
fn gateway_serves_public_datasets_read_only_with_ranges() {
    let env = TestEnv::new();
    env.ok("", &["init", "pub"]);
    env.ok("pub", &["meta", "title", "Worm <tracks>"]);
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    env.write("pub/tables/neurons.csv", "name,type\nAVAL,inter\n");
    env.write("pub/video/day 1.bin", &big);
    env.ok("pub", &["add", "."]);
    env.ok("pub", &["commit", "-m", "one"]);
    env.ok("pub", &["tag", "v1"]);
    env.write(
        "pub/tables/neurons.csv",
        "name,type\nAVAL,inter\nAVAR,inter\n",
    );
    env.ok("pub", &["add", "."]);
    env.ok("pub", &["commit", "-m", "two"]);
    env.ok("", &["init", "--private", "secret"]);
    env.write("secret/s.csv", "secret\n");
    env.ok("secret", &["add", "."]);
    env.ok("secret", &["commit", "-m", "s"]);
    let ds = env.json("pub", &["show"])["dataset"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = env.json("secret", &["show"])["dataset"]
        .as_str()
        .unwrap()
        .to_string();
    let gw = start(&env, &["pub", "secret"]);
    let base = format!("{}/d/{ds}", gw.url);

    // The index lists the public dataset (title escaped), not the restricted one.
    let (code, _, body) = curl(&[&format!("{}/", gw.url)]);
    let page = String::from_utf8(body).unwrap();
    assert_eq!(code, 200);
    assert!(
        page.contains(&ds) && page.contains("Worm &lt;tracks&gt;"),
        "{page}"
    );
    assert!(!page.contains(&secret));
    // A directory listing links each entry with its BLAKE3 id.
    let (code, headers, body) = curl(&[&format!("{base}/")]);
    let page = String::from_utf8(body).unwrap();
    assert_eq!(code, 200);
    assert!(header(&headers, "content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(
        page.contains("href=\"tables/\"") && page.contains("href=\"video/\""),
        "{page}"
    );
    let (_, _, body) = curl(&[&format!("{base}/video/")]);
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains("href=\"day%201.bin\""), "{page}");
    assert!(page.contains(&b3(&env.path("pub/video/day 1.bin"))));
    // A directory without its slash redirects to it.
    let (code, headers, _) = curl(&[&format!("{base}/video")]);
    assert_eq!(code, 301);
    assert!(header(&headers, "location").unwrap().ends_with("/video/"));

    // Whole file: byte-exact, typed, with its BLAKE3 id.
    let (code, headers, body) = curl(&[&format!("{base}/video/day%201.bin")]);
    assert_eq!(code, 200);
    assert_eq!(body, big);
    let id = blake3::hash(&big).to_hex().to_string();
    assert_eq!(header(&headers, "x-lode-blake3"), Some(id.as_str()));
    assert_eq!(header(&headers, "etag").unwrap(), format!("\"{id}\""));
    assert_eq!(header(&headers, "accept-ranges"), Some("bytes"));
    let (_, headers, body) = curl(&[&format!("{base}/tables/neurons.csv")]);
    assert_eq!(body, b"name,type\nAVAL,inter\nAVAR,inter\n");
    assert!(header(&headers, "content-type")
        .unwrap()
        .starts_with("text/csv"));
    // An older revision, by tag.
    let (_, _, body) = curl(&[&format!("{base}/tables/neurons.csv?rev=v1")]);
    assert_eq!(body, b"name,type\nAVAL,inter\n");

    // Ranges: byte-exact slices, suffixes, open ends; unsatisfiable ones get 416.
    for (range, lo, hi) in [
        ("0-0", 0usize, 0usize),
        ("100-199", 100, 199),
        ("2999990-", 2_999_990, 2_999_999),
        ("-10", 2_999_990, 2_999_999),
        ("1048570-1048580", 1_048_570, 1_048_580),
        ("2999999-5000000", 2_999_999, 2_999_999),
    ] {
        let (code, headers, body) = curl(&["-r", range, &format!("{base}/video/day%201.bin")]);
        assert_eq!(code, 206, "{range}");
        assert_eq!(body, &big[lo..=hi], "{range}");
        assert_eq!(
            header(&headers, "content-range").unwrap(),
            format!("bytes {lo}-{hi}/3000000")
        );
    }
    let (code, headers, _) = curl(&["-r", "3000000-", &format!("{base}/video/day%201.bin")]);
    assert_eq!(code, 416);
    assert_eq!(header(&headers, "content-range"), Some("bytes */3000000"));
    // HEAD: headers only.
    let (code, headers, body) = curl(&["-I", &format!("{base}/video/day%201.bin")]);
    assert_eq!(code, 200);
    assert_eq!(header(&headers, "content-length"), Some("3000000"));
    assert!(body.is_empty() || String::from_utf8_lossy(&body).contains("HTTP/1.1 200"));

    // Read-only; restricted and unknown datasets are not found; hostile paths refused.
    let (code, _, _) = curl(&[
        "-X",
        "PUT",
        "--data",
        "x",
        &format!("{base}/tables/neurons.csv"),
    ]);
    assert_eq!(code, 405);
    for url in [
        format!("{}/d/{secret}/", gw.url),
        format!("{}/d/{secret}/s.csv", gw.url),
        format!("{}/d/{}/", gw.url, "ab".repeat(32)),
        format!("{base}/nope.csv"),
        format!("{base}/tables/neurons.csv/x"),
        format!("{base}/tables/neurons.csv?rev=nonexistent"),
    ] {
        let (code, _, body) = curl(&[&url]);
        assert_eq!(code, 404, "{url}: {}", String::from_utf8_lossy(&body));
    }
    for path in ["/tables/%2e%2e/%2e%2e/x", "/tables/..%2f..%2fx", "/%00"] {
        let (code, _, _) = curl(&["--path-as-is", &format!("{base}{path}")]);
        assert_eq!(code, 400, "{path}");
    }
    let (code, _, body) = curl(&["--path-as-is", &format!("{base}/../../etc/passwd")]);
    assert!(code == 400 || code == 404, "{code}");
    assert!(!String::from_utf8_lossy(&body).contains("root:"));

    // A damaged stored object is never passed off as the file: the transfer is cut.
    let hex = blake3::hash(&big).to_hex().to_string();
    let obj = env.object("pub", &hex);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&obj, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bad = big.clone();
    bad[2_000_000] ^= 1;
    std::fs::write(&obj, &bad).unwrap();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-o", "/dev/null"])
        .arg(format!("{base}/video/day%201.bin"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "curl must see a cut transfer");
}

/// The first of these browsers that is installed (Debian: `chromium-headless-shell` or
/// `chromium`).
fn chromium() -> Option<&'static str> {
    ["chromium-headless-shell", "chromium"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// A gateway (`lode serve --http` of `repos`) in a new network namespace (`unshare -n`, lo
/// up) that a browser joins with `nsenter`, so the browser can reach nothing else. `None`
/// (after `cannot_run`) without a browser or without root.
fn gateway_for_browser(env: &TestEnv, repos: &str) -> Option<(Gateway, &'static str)> {
    let Some(browser) = chromium() else {
        crate::common::cannot_run("no chromium-headless-shell or chromium (apt-get install chromium-headless-shell; .ci/run does)");
        return None;
    };
    if !is_root() {
        crate::common::cannot_run("the browser test needs root for a private network namespace");
        return None;
    }
    let script = format!(
        "ip link set lo up && exec {} serve -q --http 127.0.0.1:0 {repos}",
        lode_bin()
    );
    let mut unshare = Command::new("unshare");
    unshare.env_clear().current_dir(env.path(""));
    for (k, v) in env.cmd("", &[]).get_envs() {
        if let Some(v) = v {
            unshare.env(k, v);
        }
    }
    unshare
        .args(["-n", "--", "sh", "-c", &script])
        .stdin(Stdio::null());
    Some((launch(unshare), browser))
}

/// Runs headless `browser` inside the gateway's network namespace with `args` (a URL last);
/// returns its standard output.
fn browse(gw: &Gateway, browser: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let pid = gw.child.id().to_string();
    let out = Command::new("timeout")
        .args(["60", "nsenter", "-t", &pid, "-n", browser])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the browser");
    assert!(
        out.status.success(),
        "{browser}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The listing pages in a real browser engine: headless Chromium renders them and its DOM
/// holds the dataset, the directories and the files as working links.
#[test]
fn listing_pages_render_in_headless_chromium() {
    let env = TestEnv::new();
    env.ok("", &["init", "pub"]);
    env.ok("pub", &["meta", "title", "Worm <tracks>"]);
    env.commit_files(
        "pub",
        &[
            ("tables/neurons.csv", b"name\nAVAL\n"),
            ("video/day 1.bin", b"frames"),
        ],
        "one",
    );
    let ds = env.dataset_id("pub");
    let Some((gw, browser)) = gateway_for_browser(&env, "pub") else {
        return;
    };
    let dump = |url: &str| browse(&gw, browser, &["--dump-dom", url]);
    let index = dump(&format!("{}/", gw.url));
    assert!(index.contains("<h1>Datasets</h1>"), "{index}");
    assert!(
        index.contains(&format!("<a href=\"/d/{ds}/\">Worm &lt;tracks&gt;</a>")),
        "{index}"
    );
    let top = dump(&format!("{}/d/{ds}/", gw.url));
    assert!(top.contains("<h1>Worm &lt;tracks&gt;</h1>"), "{top}");
    assert!(
        top.contains("tables/</a>") && top.contains("video/</a>"),
        "{top}"
    );
    let video = dump(&format!("{}/d/{ds}/video/", gw.url));
    assert!(video.contains("day 1.bin</a>"), "{video}");
    assert!(
        video.contains(&b3(&env.path("pub/video/day 1.bin"))),
        "{video}"
    );
}

/// The dataset page in headless Chromium (issue 13, item 10): a screenshot kept as a test
/// artefact (`target/tmp/gateway-dataset-page.png`), and the DOM the browser built holds the
/// title, license, human sizes, the author's name and the README's text (its raw `<script>`
/// only as text: the browser ran nothing, the document title is the page's own).
#[test]
fn dataset_page_renders_in_headless_chromium() {
    let env = TestEnv::new();
    let ds = dataset_with_a_readme(&env);
    let Some((gw, browser)) = gateway_for_browser(&env, "pub") else {
        return;
    };
    let url = format!("{}/d/{ds}/", gw.url);
    let dom = browse(&gw, browser, &["--dump-dom", &url]);
    for want in [
        "<title>C. elegans locomotion /</title>",
        "<h1>C. elegans locomotion</h1>",
        "<dd>CC-BY-4.0</dd>",
        "1.50 MiB</td>",
        "2.01 KiB</td>",
        "Ana Lee &lt;ana@lab.org&gt;",
        "<h1>Worm tracks</h1>",
        "Recorded at <em>20 °C</em>",
        "&lt;script&gt;document.title",
        "lode clone lode1",
        "<summary>Revision: main",
    ] {
        assert!(dom.contains(want), "{want:?} missing from the DOM:\n{dom}");
    }
    // The README's script is text: the browser ran nothing (the title is still the page's).
    assert!(
        !dom.contains("<script") && !dom.contains("<title>owned"),
        "{dom}"
    );
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("gateway-dataset-page.png");
    let _ = std::fs::remove_file(&shot);
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("page.png");
    browse(
        &gw,
        browser,
        &[
            "--hide-scrollbars",
            "--window-size=1280,1500",
            &format!("--screenshot={}", tmp.display()),
            &url,
        ],
    );
    let png = std::fs::read(&tmp).expect("the browser wrote a screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // A blank page compresses to almost nothing; a drawn one does not.
    assert!(
        png.len() > 40_000,
        "screenshot of {} bytes: blank?",
        png.len()
    );
    std::fs::write(&shot, &png).unwrap();
}

/// `?rev=` names only what the dataset publishes (the commits reachable from `main` and its
/// tags): a commit made and left behind, objects written into the store directly (as a
/// refused push would leave them) and a staged blob are never found, by full id or by a
/// prefix, and nothing of them is served. A rev that names a big blob is answered without
/// reading it.
#[test]
fn gateway_rev_resolves_only_published_commits() {
    let env = TestEnv::new();
    env.ok("", &["init", "pub"]);
    env.commit_files("pub", &[("tables/a.csv", b"x,y\n1,2\n")], "one");
    env.ok("pub", &["tag", "v1"]);
    let one = env.head("pub").unwrap();
    env.commit_files("pub", &[("tables/a.csv", b"x,y\n3,4\n")], "two");
    let two = env.head("pub").unwrap();
    // A commit made on a detached HEAD, then left: in the store, on no published ref.
    env.ok("pub", &["checkout", &one]);
    env.commit_files(
        "pub",
        &[("video/inject.html", b"<script>alert(1)</script>")],
        "stray",
    );
    let stray = env.head("pub").unwrap();
    env.ok("pub", &["checkout", "-f", "main"]);
    assert_eq!(env.head("pub").unwrap(), two);
    // A commit written straight into the store with the library, as an attacker's refused
    // push would leave it: signed by some key, parent `two`, serving HTML.
    let forged = {
        use lode::object::{Commit, CommitBody, EntryKind, Tree, TreeEntry};
        let repo = lode::Repo::discover(
            &env.path("pub"),
            lode::keys::Home::new(env.path("home")),
            lode::RepoOptions::default(),
        )
        .unwrap();
        let html = b"<script>alert(2)</script>";
        let blob = repo.store().put_bytes(html).unwrap();
        let entry = |name: &str, kind, size, id| TreeEntry {
            name: name.into(),
            kind,
            size,
            id,
            chunks: None,
        };
        let video = Tree {
            entries: vec![entry(
                "inject.html",
                EntryKind::File,
                html.len() as u64,
                blob,
            )],
        };
        let video = repo.store().put_bytes(&video.encode()).unwrap();
        let root = Tree {
            entries: vec![entry("video", EntryKind::Dir, html.len() as u64, video)],
        };
        let root = repo.store().put_bytes(&root.encode()).unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let c = Commit::sign(
            CommitBody {
                dataset: repo.dataset_id().unwrap().to_bytes(),
                tree: root,
                parents: vec![two.parse().unwrap()],
                author: key.verifying_key().to_bytes(),
                time: 1_800_000_000,
                message: "inject".into(),
                metadata: Default::default(),
                person: None,
            },
            &key,
        );
        repo.store().put_bytes(&c.encode()).unwrap().to_hex()
    };
    // A big staged blob, never committed (added with --link: stored whole, one object file).
    let big: Vec<u8> = (0..60u32 << 20).map(|i| (i % 253) as u8).collect();
    env.write("pub/big.bin", &big);
    env.ok("pub", &["add", "--link", "big.bin"]);
    let big_id = blake3::hash(&big).to_hex().to_string();
    drop(big);
    assert!(env.object("pub", &big_id).exists());

    let ds = env.dataset_id("pub");
    let gw = start(&env, &["pub"]);
    let base = format!("{}/d/{ds}", gw.url);

    // Published revisions resolve, by name, id, prefix and ancestry.
    for rev in [
        "main".to_string(),
        "HEAD".into(),
        "v1".into(),
        "main~1".into(),
        "HEAD^".into(),
        one.clone(),
        one[..6].to_string(),
        two[..4].to_string(),
    ] {
        let (code, headers, body) = curl(&[&format!("{base}/tables/a.csv?rev={rev}")]);
        assert_eq!(code, 200, "{rev}: {}", String::from_utf8_lossy(&body));
        let want = if rev == "v1" || rev.contains(['~', '^']) || one.starts_with(&rev) {
            &one
        } else {
            &two
        };
        assert_eq!(
            header(&headers, "x-lode-commit"),
            Some(want.as_str()),
            "{rev}"
        );
    }
    // What is in the store but not published is not found, and nothing of it is served.
    for rev in [&stray, &forged] {
        for r in [rev.as_str(), &rev[..4], &rev[..8]] {
            for path in ["/video/inject.html", "/video/", "/", "/tables/a.csv"] {
                let (code, _, body) = curl(&[&format!("{base}{path}?rev={r}")]);
                let body = String::from_utf8_lossy(&body);
                assert_eq!(code, 404, "{path}?rev={r}: {body}");
                assert!(
                    !body.contains("script") && !body.contains("inject"),
                    "{body}"
                );
            }
        }
    }
    // Too far back: a short 404, not an internal error.
    for rev in [
        "HEAD~100000",
        "v1~1",
        "main^^^",
        "HEAD~99999999999999999999999",
    ] {
        let (code, _, body) = curl(&[&format!("{base}/tables/a.csv?rev={rev}")]);
        assert_eq!(code, 404, "{rev}");
        assert_eq!(body, b"unknown revision\n", "{rev}");
    }

    // A rev naming a 60 MiB blob answers 404 without reading it: 30 requests at once, and
    // then with the object replaced by a FIFO, which a read would wait on forever.
    let started = std::time::Instant::now();
    let handles: Vec<_> = (0..30)
        .map(|i| {
            let url = format!(
                "{base}/?rev={}",
                if i % 2 == 0 {
                    &big_id[..]
                } else {
                    &big_id[..10]
                }
            );
            std::thread::spawn(move || curl(&[&url]).0)
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 404);
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let obj = env.object("pub", &big_id);
    std::fs::remove_file(&obj).unwrap();
    let made = Command::new("mkfifo").arg(&obj).status().unwrap();
    assert!(made.success());
    let (code, _, _) = curl(&["--max-time", "10", &format!("{base}/?rev={big_id}")]);
    assert_eq!(code, 404);
    std::fs::remove_file(&obj).unwrap();

    // The published set follows the refs: a new commit on main, and the stray commit once
    // it is tagged, resolve while the gateway runs.
    env.commit_files("pub", &[("tables/a.csv", b"x,y\n5,6\n")], "three");
    let three = env.head("pub").unwrap();
    let (code, headers, _) = curl(&[&format!("{base}/tables/a.csv?rev={}", &three[..8])]);
    assert_eq!(code, 200);
    assert_eq!(header(&headers, "x-lode-commit"), Some(three.as_str()));
    let (code, _, _) = curl(&[&format!("{base}/video/inject.html?rev={stray}")]);
    assert_eq!(code, 404);
    env.ok("pub", &["tag", "kept", &stray]);
    let (code, _, body) = curl(&[&format!("{base}/video/inject.html?rev={}", &stray[..8])]);
    assert_eq!(code, 200);
    assert_eq!(body, b"<script>alert(1)</script>");
    let (code, _, _) = curl(&[&format!("{base}/video/inject.html?rev={forged}")]);
    assert_eq!(code, 404);
}

/// Every answer carries `X-Content-Type-Options: nosniff`; a dataset's files are served
/// with `Content-Security-Policy: sandbox` (an author's HTML runs no script on the
/// gateway's origin), the gateway's own pages with a policy that loads nothing.
#[test]
fn gateway_sandboxes_dataset_files() {
    let env = TestEnv::new();
    env.ok("", &["init", "pub"]);
    env.commit_files(
        "pub",
        &[
            ("index.html", b"<script>document.cookie</script>"),
            (
                "img/x.svg",
                b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>1</script></svg>",
            ),
            ("data.csv", b"a\n<html><script>1</script>\n"),
        ],
        "one",
    );
    let ds = env.dataset_id("pub");
    let gw = start(&env, &["pub"]);
    let base = format!("{}/d/{ds}", gw.url);
    for (path, ctype) in [
        ("/index.html", "text/html"),
        ("/img/x.svg", "image/svg+xml"),
        ("/data.csv", "text/csv"),
    ] {
        for method in [&[][..], &["-I"][..]] {
            let mut args = method.to_vec();
            let url = format!("{base}{path}");
            args.push(&url);
            let (code, headers, _) = curl(&args);
            assert_eq!(code, 200, "{path}");
            assert!(header(&headers, "content-type").unwrap().starts_with(ctype));
            assert_eq!(header(&headers, "content-security-policy"), Some("sandbox"));
            assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
        }
    }
    let (code, headers, _) = curl(&["-r", "0-3", &format!("{base}/index.html")]);
    assert_eq!(code, 206);
    assert_eq!(header(&headers, "content-security-policy"), Some("sandbox"));
    for url in [
        format!("{}/", gw.url),
        format!("{base}/"),
        format!("{base}/img/"),
        format!("{base}/nope"),
        format!("{base}/?rev=ffff"),
    ] {
        let (_, headers, _) = curl(&[&url]);
        let csp = header(&headers, "content-security-policy").unwrap_or_default();
        assert!(
            csp.starts_with("default-src 'none'") && csp.contains("style-src 'unsafe-inline'"),
            "{url}: {csp}"
        );
        assert!(!csp.contains("script-src"), "{csp}");
        assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    }
}

/// A dataset made as a scientist would: metadata, a README with a table, a figure link and
/// raw HTML (some of it hostile), files of several sizes in folders, two commits, a tag,
/// and an author with a name.
fn dataset_with_a_readme(env: &TestEnv) -> String {
    env.ok("", &["id", "--name", "Ana Lee", "--email", "ana@lab.org"]);
    env.ok("", &["init", "pub"]);
    env.ok("pub", &["meta", "title", "C. elegans locomotion"]);
    env.ok(
        "pub",
        &[
            "meta",
            "description",
            "Tracks of N2 worms on agar, 2026 <lab>",
        ],
    );
    env.ok("pub", &["meta", "license", "CC-BY-4.0"]);
    env.ok("pub", &["meta", "authors", "Lee, Ana", "Ortiz, Ben"]);
    env.commit_files(
        "pub",
        &[("tables/neurons.csv", b"name\nAVAL\n")],
        "first tables",
    );
    env.ok("pub", &["tag", "v1"]);
    let readme = "# Worm tracks\n\nRecorded at *20 °C*; see [the paper](https://doi.org/10.1000/182).\n\n\
        | file | what |\n|---|---|\n| tables/ | neuron tables |\n\n\
        <script>document.title='owned'</script>\n\n[click](javascript:alert(1)) ![figure](figs/a.png)\n";
    env.commit_files(
        "pub",
        &[
            ("README.md", readme.as_bytes()),
            ("video/day 1.bin", &vec![7u8; 1_572_864]),
            ("tables/extra.csv", &vec![b'x'; 2048]),
        ],
        "Add the videos and a README\n\nWith a body.",
    );
    env.dataset_id("pub")
}

/// The dataset page (issue 13, item 10) over plain HTTP, and the JSON form of every
/// listing: metadata, README rendered and sanitized, human sizes, the last commit with its
/// author's name, tags and recent commits, the ticket, the `lode://` URI and a curl line,
/// BLAKE3 ids; the page keeps its policy (nothing loaded or run) and `nosniff`.
#[test]
fn dataset_page_and_json_listings() {
    let env = TestEnv::new();
    let ds = dataset_with_a_readme(&env);
    let key = env.ok("", &["id"]).lines().next().unwrap().to_string();
    let label = format!("Ana Lee &lt;ana@lab.org&gt; ({})", &key[..8]);
    let gw = start(&env, &["pub"]);
    let base = format!("{}/d/{ds}", gw.url);

    let (code, headers, body) = curl(&[&format!("{base}/")]);
    assert_eq!(code, 200);
    let page = String::from_utf8(body).unwrap();
    let csp = header(&headers, "content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    for want in [
        "<h1>C. elegans locomotion</h1>",
        "Tracks of N2 worms on agar, 2026 &lt;lab&gt;",
        "<dd>CC-BY-4.0</dd>",
        "<dd>Lee, Ana; Ortiz, Ben</dd>",
        "Add the videos and a README",
        label.as_str(),
        "<h1>Worm tracks</h1>",
        "<em>20 °C</em>",
        "<a href=\"https://doi.org/10.1000/182\">the paper</a>",
        "<table>",
        "&lt;script&gt;document.title=",
        "<a href=\"figs/a.png\">figure</a>",
        "lode clone lode1",
        &format!("<pre class=\"uri\">lode://{ds}</pre>"),
        &format!("curl -O &#39;{}/d/{ds}/README.md&#39;", gw.url),
        "?format=json",
        "href=\"./?rev=v1\"",
        "1.50 MiB</td>",
        "tables/</a>",
        &b3(&env.path("pub/README.md")),
    ] {
        assert!(page.contains(want), "{want:?} missing from\n{page}");
    }
    assert!(!page.contains("<script"), "{page}");
    assert!(!page.contains("javascript:"), "{page}");
    assert!(!page.contains("<img"), "{page}");

    // A folder's page, and an older revision by tag: its own commit and files.
    let (_, _, body) = curl(&[&format!("{base}/video/")]);
    let page = String::from_utf8(body).unwrap();
    assert!(
        page.contains("1.50 MiB") && page.contains("day 1.bin</a>"),
        "{page}"
    );
    assert!(
        page.contains(&format!("lode get lode://{ds}/video")),
        "{page}"
    );
    let (code, headers, body) = curl(&[&format!("{base}/?rev=v1")]);
    assert_eq!(code, 200);
    let page = String::from_utf8(body).unwrap();
    assert!(
        page.contains("first tables") && !page.contains("video/</a>"),
        "{page}"
    );
    assert!(page.contains("href=\"tables/?rev=v1\""), "{page}");
    let v1 = header(&headers, "x-lode-commit").unwrap().to_string();

    // JSON: the index and every listing.
    let json = |url: &str| -> serde_json::Value {
        let (code, headers, body) = curl(&[url]);
        assert_eq!(code, 200, "{url}");
        assert_eq!(header(&headers, "content-type"), Some("application/json"));
        assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
        serde_json::from_slice(&body).expect("valid JSON")
    };
    let idx = json(&format!("{}/?format=json", gw.url));
    assert_eq!(idx["datasets"][0]["id"], ds.as_str());
    assert_eq!(idx["datasets"][0]["title"], "C. elegans locomotion");
    assert_eq!(idx["datasets"][0]["license"], "CC-BY-4.0");
    let top = json(&format!("{base}/?format=json"));
    assert_eq!(top["metadata"]["license"], "CC-BY-4.0");
    assert_eq!(top["metadata"]["authors"][1], "Ortiz, Ben");
    assert_eq!(top["commit"]["person"]["name"], "Ana Lee");
    assert_eq!(top["commit"]["author"], key.as_str());
    assert_eq!(top["tags"][0]["name"], "v1");
    assert_eq!(top["tags"][0]["commit"], v1.as_str());
    assert_eq!(top["recent"].as_array().unwrap().len(), 2);
    assert!(top["get"]["ticket"].as_str().unwrap().starts_with("lode1"));
    assert_eq!(top["get"]["uri"], format!("lode://{ds}"));
    assert_eq!(top["readme"]["name"], "README.md");
    assert!(top["readme"].get("html").is_none());
    let names: Vec<&str> = top["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["README.md", "tables", "video"]);
    assert_eq!(
        top["entries"][0]["blake3"],
        b3(&env.path("pub/README.md")).as_str()
    );
    assert!(top["entries"][1]["blake3"].is_null());
    assert_eq!(top["entries"][1]["href"], "tables/");
    let video = json(&format!("{base}/video/?format=json"));
    assert_eq!(video["entries"][0]["size"], 1_572_864);
    assert_eq!(video["entries"][0]["href"], "day%201.bin");
    let old = json(&format!("{base}/tables/?format=json&rev=v1"));
    assert_eq!(old["rev"], "v1");
    assert_eq!(old["commit"]["id"], v1.as_str());
    assert_eq!(old["entries"].as_array().unwrap().len(), 1);
    assert_eq!(old["entries"][0]["href"], "neurons.csv?rev=v1");
    // A file is still a file (no JSON wrapper), and an unpublished rev is still a 404.
    let (code, headers, body) = curl(&[&format!("{base}/README.md?format=json")]);
    assert_eq!(code, 200);
    assert_eq!(body, env.read("pub/README.md"));
    assert_eq!(header(&headers, "content-security-policy"), Some("sandbox"));
    let (code, _, _) = curl(&[&format!("{base}/?format=json&rev=ffff")]);
    assert_eq!(code, 404);
}
