//! One module per command (a folder per command group): its clap arguments and its
//! `cmd_NAME(ctx, ui, args)`.

pub mod add;
pub mod cat;
pub mod checkout;
pub mod clone;
pub mod commit;
pub mod config;
pub mod copies;
pub mod diff;
pub mod drop;
pub mod fetch;
pub mod gc;
pub mod get;
pub mod grant;
pub mod grants;
pub mod id;
pub mod init;
pub mod log;
pub mod ls;
pub mod meta;
pub mod mirror;
pub mod publish;
pub mod pull;
pub mod push;
pub mod registry;
pub mod remote;
pub mod revoke;
pub mod rm;
pub mod search;
pub mod serve;
pub mod show;
pub mod status;
pub mod tag;
pub mod ticket;
pub mod verify;
