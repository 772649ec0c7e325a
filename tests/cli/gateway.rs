//! The HTTP gateway (`lode serve --http`), driven with curl: listing pages, byte-exact
//! downloads and Range requests, BLAKE3 headers, restricted datasets never served, hostile
//! paths refused; and the listing pages rendered by headless Chromium.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;

struct Gateway {
    child: Child,
    url: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(env: &TestEnv, repos: &[&str]) -> Gateway {
    let mut args = vec!["serve", "-q", "--http", "127.0.0.1:0"];
    args.extend_from_slice(repos);
    launch(env.cmd("", &args))
}

/// Starts a `lode serve --http` command and waits for the URL it prints.
fn launch(cmd: Command) -> Gateway {
    let (child, lines) = crate::sync::spawn_lines(cmd);
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
fn curl(args: &[&str]) -> (u16, String, Vec<u8>) {
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

/// The listing pages in a real browser engine: headless Chromium renders them and its DOM
/// holds the dataset, the directories and the files as working links. The gateway and the
/// browser share a private network namespace (loopback only), so the browser can reach
/// nothing else.
#[test]
fn listing_pages_render_in_headless_chromium() {
    let Some(browser) = chromium() else {
        eprintln!("skipped: no chromium-headless-shell or chromium (apt-get install chromium-headless-shell; .ci/run does)");
        return;
    };
    if !is_root() {
        eprintln!("skipped: needs root for a private network namespace");
        return;
    }
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
    // The gateway runs in a new network namespace (`unshare -n`, lo up); the browser joins it.
    let script = format!(
        "ip link set lo up && exec {} serve -q --http 127.0.0.1:0 pub",
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
    let gw = launch(unshare);
    let pid = gw.child.id().to_string();
    let dump = |url: &str| -> String {
        let profile = tempfile::tempdir().unwrap();
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
            .args(["--dump-dom", url])
            .stdin(Stdio::null())
            .output()
            .expect("run the browser");
        assert!(
            out.status.success(),
            "{browser}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
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
