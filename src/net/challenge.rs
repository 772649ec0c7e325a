//! Honesty challenges: does a storage manager still serve the copy its holding record
//! claims? The challenger connects to where the record says the copy is served, under the
//! storage manager's own endpoint key (the device that signed the record), asks for the
//! dataset's signed head (it must be the head claimed or a newer one), lists that head's
//! tree from it (commits and trees, each checked against its id) and asks for one random
//! 16 KiB chunk group of one random file of that tree through iroh-blobs' range request,
//! whose BAO proof is checked against the file's BLAKE3 id as it arrives. All of it within a
//! time limit. What passing proves, and what it does not, is in docs/SECURITY.md.
//!
//! Registries challenge the holding records they keep (dropping a record that fails), and
//! anyone can with `lode copies DATASET --check`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use serde::Serialize;

use crate::catalog::Holding;
use crate::error::{Error, Result};
use crate::net::endpoint::Net;
use crate::net::fetch::{self, Client};
use crate::net::pieces;
use crate::object::EntryKind;
use crate::ticket::{Provider, Ticket};

/// How long one challenge may take, from dialling to the last byte of the range.
pub const LIMIT: Duration = Duration::from_secs(30);

/// The outcome of one challenge.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// The storage manager challenged (device id, hex).
    pub device: String,
    /// The head its record claims.
    pub seq: u64,
    /// Whether it served what was asked, verified.
    pub ok: bool,
    /// The file asked for (BLAKE3 id, hex) and its byte range, once chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<(u64, u64)>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Challenges the storage manager of holding record `h` from endpoint `net`, within
/// `limit`. A manager that cannot be reached, does not answer in time, serves an older head
/// than it claims, or sends a range that does not verify fails.
pub async fn challenge(net: &Net, h: &Holding, limit: Duration) -> Verdict {
    let mut v = Verdict {
        device: hex::encode(h.body.device),
        seq: h.body.seq,
        ok: false,
        object: None,
        range: None,
        error: None,
    };
    match tokio::time::timeout(limit, ask(net, h, &mut v)).await {
        Ok(Ok(())) => v.ok = true,
        Ok(Err(e)) => v.error = Some(e.to_string()),
        Err(_) => v.error = Some(format!("no full answer within {}s", limit.as_secs())),
    }
    v
}

async fn ask(net: &Net, h: &Holding, v: &mut Verdict) -> Result<()> {
    // Only the device that signed the record answers for it: its endpoint key.
    let provider = (h.body.provider.clone())
        .filter(|p| p.id == h.body.device)
        .unwrap_or(Provider {
            id: h.body.device,
            addrs: vec![],
            relay: None,
        });
    let ticket = Ticket {
        dataset: h.body.dataset,
        providers: vec![provider.clone()],
    };
    let mut client = Client::with_net(net.clone(), &ticket, None)?;
    let r = async {
        let published = client.list_refs().await?;
        let seq = published.head.body.seq;
        let main = published.refs.head;
        if seq < h.body.seq || (seq == h.body.seq && main.map(|m| m.0) != Some(h.body.commit)) {
            return Err(Error::Other(format!(
                "it serves head {seq}, not the head {} it claims",
                h.body.seq
            )));
        }
        let Some(main) = main else {
            return Ok(None);
        };
        let entries = fetch::list_commit(&mut client, main, &published.peer).await?;
        let files: Vec<_> = (entries.iter())
            .filter(|e| matches!(e.kind, EntryKind::File | EntryKind::Executable) && e.size > 0)
            .collect();
        if files.is_empty() {
            return Ok(None);
        }
        let mut rng = rand::thread_rng();
        let file = files[rng.gen_range(0..files.len())];
        let group = rng.gen_range(0..file.size.div_ceil(pieces::GROUP));
        let start = group * pieces::GROUP;
        Ok(Some((
            file.id,
            start,
            (start + pieces::GROUP).min(file.size),
        )))
    }
    .await;
    client.close().await;
    let Some((id, start, end)) = r? else {
        return Ok(());
    };
    v.object = Some(id.to_hex());
    v.range = Some((start, end));
    let id_key = net.learn(&provider)?;
    let conn = pieces::connect(net, id_key).await?;
    let got = AtomicU64::new(0);
    let sink = |_: u64, b: bytes::Bytes| {
        got.fetch_add(b.len() as u64, Ordering::Relaxed);
        Ok(())
    };
    let r = pieces::stream_range(&conn, id, start, Some(end), &sink, &|_| {}).await;
    conn.close(iroh::endpoint::VarInt::from_u32(0), b"done");
    r.map_err(|e| {
        Error::Other(format!(
            "it did not serve bytes {start}..{end} of {id}: {e}"
        ))
    })?;
    if got.load(Ordering::Relaxed) != end - start {
        return Err(Error::Other(format!(
            "it sent {} of the {} bytes asked of {id}",
            got.load(Ordering::Relaxed),
            end - start
        )));
    }
    Ok(())
}
