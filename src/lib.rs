//! lode version-controls datasets the way git versions code: files are BLAKE3
//! content-addressed blobs in `.lode/`, directories are trees, and signed commits record
//! history and dataset metadata.
//!
//! A short tour: [`Repo`] opens a repository (the redb database in [`db`], the object
//! [`store`]); [`ops`] holds the operations behind the commands (`add`, `status`, `commit`,
//! `checkout`, `log`, `verify`, `gc`...); [`object`] defines trees and commits and their
//! canonical encoding; [`keys`] holds the device and dataset keys. The library never prints:
//! the `cli` module of the binary does. See docs/ARCHITECTURE.md.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod catalog;
pub mod config;
pub mod daemon;
pub mod db;
pub mod error;
pub mod gateway;
pub mod id;
pub mod keys;
pub mod leftover;
pub mod net;
pub mod object;
pub mod ops;
pub mod person;
pub mod progress;
pub mod repo;
pub mod store;
pub mod text;
pub mod ticket;
pub mod trust;
pub mod worktree;

pub use error::{Error, Result};
pub use id::ObjectId;
pub use repo::{Repo, RepoOptions};
