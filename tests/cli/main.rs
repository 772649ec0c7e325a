//! One integration binary that drives the real `lode` executable (see common/mod.rs; the peer harness is common/peers.rs).

mod access;
mod chunks;
mod common;
mod control;
mod crash;
mod faults;
mod firstweek;
mod flood;
mod gateway;
mod history;
mod lazy;
mod local;
mod many;
mod mirror;
mod people;
mod progress;
mod registry;
mod startup;
mod swarm;
mod sync;
mod volunteer;
