//! The `lode mirror` commands: keep copies of other datasets, follow them, obey the taint
//! notices of registries.

pub mod add;
pub mod follow;
pub mod list;
pub mod remove;
pub mod sync;
pub mod unfollow;
pub mod volunteer;

use clap::{Args, Subcommand};

use crate::cli::output::Ui;
use crate::cli::{CliResult, Ctx};

/// Mirror datasets: keep a copy of what they publish, follow them, serve them
/// (`lode serve --mirrors`).
#[derive(Args)]
#[command(
    after_help = "Examples:\n  lode mirror add lode1…\n  lode mirror add lode1… --ticket lodecap1…   # a restricted dataset, with a relay ticket\n  lode mirror volunteer --registry lodereg1… --subject elegans --quota 500G\n  lode mirror list\n  lode serve --mirrors --follow 60"
)]
pub struct MirrorArgs {
    #[command(subcommand)]
    action: MirrorAction,
}

#[derive(Subcommand)]
enum MirrorAction {
    Add(add::AddArgs),
    /// List the mirrors.
    List,
    Sync(sync::SyncArgs),
    Remove(remove::RemoveArgs),
    Follow(follow::FollowArgs),
    Unfollow(unfollow::UnfollowArgs),
    Volunteer(volunteer::VolunteerArgs),
}

pub fn cmd_mirror(ctx: &Ctx, ui: &mut Ui, args: MirrorArgs) -> CliResult {
    match args.action {
        MirrorAction::Add(args) => add::cmd_add(ctx, ui, args),
        MirrorAction::List => list::cmd_list(ctx, ui),
        MirrorAction::Sync(args) => sync::cmd_sync(ctx, ui, args),
        MirrorAction::Remove(args) => remove::cmd_remove(ctx, ui, args),
        MirrorAction::Follow(args) => follow::cmd_follow(ctx, ui, args),
        MirrorAction::Unfollow(args) => unfollow::cmd_unfollow(ctx, ui, args),
        MirrorAction::Volunteer(args) => volunteer::cmd_volunteer(ctx, ui, args),
    }
}
