//! The `lode mirror` commands: keep copies of other datasets, follow them, obey the taint
//! notices of registries.

pub mod add;
pub mod follow;
pub mod list;
pub mod remove;
pub mod sync;
pub mod unfollow;

use clap::{Args, Subcommand};

use crate::cli::output::Ui;
use crate::cli::{CliResult, Ctx};

#[derive(Args)]
pub struct MirrorArgs {
    #[command(subcommand)]
    action: MirrorAction,
}

#[derive(Subcommand)]
enum MirrorAction {
    /// Start mirroring the dataset of TICKET (under $LODE_HOME/mirrors/).
    Add(add::AddArgs),
    /// List the mirrors.
    List,
    /// Fetch every mirror from its origin now and keep each within its quota (what
    /// `lode serve --mirrors --follow` does periodically).
    Sync(sync::SyncArgs),
    /// Stop mirroring a dataset (by id or unique prefix) and delete its copy.
    Remove(remove::RemoveArgs),
    /// Obey the taint notices (takedowns) of a registry: at each sync round, mirrors delete
    /// what its notices name, and say so.
    Follow(follow::FollowArgs),
    /// Stop obeying a registry's taint notices (by registry id or unique prefix, as
    /// `lode mirror list` shows); what was deleted stays deleted.
    Unfollow(unfollow::UnfollowArgs),
}

pub fn cmd_mirror(ctx: &Ctx, ui: &mut Ui, args: MirrorArgs) -> CliResult {
    match args.action {
        MirrorAction::Add(args) => add::cmd_add(ctx, ui, args),
        MirrorAction::List => list::cmd_list(ctx, ui),
        MirrorAction::Sync(args) => sync::cmd_sync(ctx, ui, args),
        MirrorAction::Remove(args) => remove::cmd_remove(ctx, ui, args),
        MirrorAction::Follow(args) => follow::cmd_follow(ctx, ui, args),
        MirrorAction::Unfollow(args) => unfollow::cmd_unfollow(ctx, ui, args),
    }
}
