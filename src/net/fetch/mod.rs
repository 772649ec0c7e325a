//! Fetching datasets: `clone`, `fetch`, `pull` and `get`; and, for library users, a
//! revision's tree listed, one file streamed, and a cache of fetched blobs (`list`, `cache`).
//!
//! The client lists the refs of a provider over `lode/2`, then walks the commit closure level
//! by level (commits, then their trees, then the trees' children), asking only for objects it
//! does not have. Objects travel over iroh-blobs: every 16 KiB chunk group is verified
//! against the BLAKE3 id while it streams, several providers serve one fetch (the iroh-blobs
//! downloader tries the next provider when one fails, resuming mid-blob), and a fetch that was
//! interrupted resumes from the partial data in `.lode/fetch-store`.
//!
//! Received trees and commits are checked before anything is written to the working tree:
//! strict tree decoding (no `..`, `/`, empty, duplicate names), no names that collide when case
//! is folded, symlink targets that are relative and stay inside the tree, commits signed and
//! belonging to the dataset. Remote refs move only when the whole closure is present.

mod cache;
mod client;
mod commands;
mod get;
mod lazy;
mod list;
mod remotes;
mod share;
mod small;
mod store;
mod walk;

pub use cache::Cache;
pub use client::{verify_listing, Client, FetchReport, Published};
pub use commands::{clone, fetch, pull, receive, CloneOptions, Want};
pub use get::{get, GetOptions, GetReport};
pub use lazy::{drop_here, get_here, GotHere};
pub use list::{fetch_blobs, list, list_commit, pick_rev, select, stream, Entry, Listing};
pub use remotes::{
    remote, remotes, remove_remote, resolve_ticket, served_ticket, set_remote, use_capability,
};
pub use share::Seeder;
pub use walk::{link_stays_inside, Leaf};

pub use crate::ops::history::is_ancestor;
