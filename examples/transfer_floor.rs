//! The floor under `lode clone` on this machine: iroh-blobs over QUIC between two processes,
//! the provider serving from memory (iroh-blobs' `MemStore`) and the receiver dropping what
//! iroh-blobs verified: no files, no repository, no refs. Endpoints are set up by lode's
//! `net::endpoint::bind` (relays and address lookup off) and the receiver asks exactly as
//! `lode clone` does (`pieces::get_many` in batches of 256 for objects up to 1 MiB,
//! `pieces::stream_range` for bigger ones). `bench/floor.sh` runs it beside `lode clone`.
//!
//! ```text
//! transfer_floor serve COUNT SIZE SECONDS HASHFILE   # prints "floor: ENDPOINT_ID ADDRESS"
//! transfer_floor fetch ENDPOINT_ID ADDRESS HASHFILE  # prints "seconds BYTES"
//! ```
//! `serve` makes COUNT random blobs of SIZE bytes, writes their hashes to HASHFILE and
//! serves for at most SECONDS. `FLOOR_LANES=N` has `fetch` keep N batches in flight.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use iroh::protocol::Router;
use iroh_blobs::store::mem::MemStore;
use iroh_blobs::{BlobsProtocol, Hash};
use lode::net::endpoint::{bind, NetOptions, Relay};
use lode::net::pieces;
use lode::ticket::Provider;
use n0_future::{BufferedStreamExt, StreamExt};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Objects up to this size travel in `GetMany` batches, as in `lode clone`.
const SMALL: u64 = 1 << 20;
const BATCH: usize = 256;

fn options() -> NetOptions {
    NetOptions {
        bind: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        relay: Relay::Disabled,
        discovery: false,
        ..Default::default()
    }
}

fn key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>())
}

async fn serve(count: usize, size: usize, seconds: u64, hashfile: &str) -> Res<()> {
    let store = MemStore::new();
    let mut hashes = String::new();
    for _ in 0..count {
        let mut data = vec![0u8; size];
        rand::Rng::fill(&mut rand::thread_rng(), &mut data[..]);
        let tag = store.add_bytes(data).with_tag().await?;
        hashes.push_str(&format!("{} {size}\n", tag.hash));
    }
    std::fs::write(hashfile, hashes)?;
    let net = bind(&key(), &options()).await?;
    let router = Router::builder(net.endpoint.clone())
        .accept(iroh_blobs::ALPN, BlobsProtocol::new(&store, None))
        .spawn();
    let addr = net.provider().addrs.first().copied().ok_or("no address")?;
    println!("floor: {} {addr}", net.endpoint.id());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    router.shutdown().await?;
    Ok(())
}

async fn fetch(id: &str, addr: &str, hashfile: &str) -> Res<()> {
    let mut wanted = Vec::new();
    for line in std::fs::read_to_string(hashfile)?.lines() {
        let (h, s) = line.split_once(' ').ok_or("bad hash file")?;
        wanted.push((h.parse::<Hash>()?, s.parse::<u64>()?));
    }
    let id: iroh::EndpointId = id.parse()?;
    let start = Instant::now();
    let net = bind(&key(), &options()).await?;
    net.learn(&Provider {
        id: *id.as_bytes(),
        addrs: vec![addr.parse()?],
        relay: None,
    })?;
    let conn = pieces::connect(&net, id).await?;
    let received = std::sync::atomic::AtomicU64::new(0);
    let counted = |n: u64| {
        received.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    };
    let (small, big): (Vec<_>, Vec<_>) = wanted.into_iter().partition(|(_, s)| *s <= SMALL);
    let small: Vec<Hash> = small.into_iter().map(|(h, _)| h).collect();
    // FLOOR_LANES (default 1, as lode): batches in flight at once, each on its own stream.
    let lanes: usize = std::env::var("FLOOR_LANES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut batches = n0_future::stream::iter(small.chunks(BATCH))
        .map(|batch| pieces::get_many(&conn, batch, &counted))
        .buffered_unordered(lanes.max(1));
    while let Some(blobs) = batches.next().await {
        drop(blobs?);
    }
    let discard = |_: u64, _: bytes::Bytes| Ok(());
    for (h, _) in big {
        let object = lode::ObjectId(*h.as_bytes());
        pieces::stream_range(&conn, object, 0, None, &discard, &counted).await?;
    }
    conn.close(0u32.into(), b"done");
    net.endpoint.close().await;
    let bytes = received.load(std::sync::atomic::Ordering::Relaxed);
    println!("{:.6} {bytes}", start.elapsed().as_secs_f64());
    Ok(())
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["serve", count, size, seconds, hashfile] => {
            serve(count.parse()?, size.parse()?, seconds.parse()?, hashfile).await
        }
        ["fetch", id, addr, hashfile] => fetch(id, addr, hashfile).await,
        _ => Err("usage: transfer_floor serve COUNT SIZE SECONDS HASHFILE | \
                  fetch ENDPOINT_ID ADDRESS HASHFILE"
            .into()),
    }
}
