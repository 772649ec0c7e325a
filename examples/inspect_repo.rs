//! Opens the repository around the current directory with the library and prints the
//! files of HEAD with their BLAKE3 ids: `cargo run --example inspect_repo` inside a dataset.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let home = std::env::var_os("LODE_HOME")
        .map(PathBuf::from)
        .or_else(|| dirs::config_dir().map(|d| d.join("lode")))
        .ok_or("no config directory; set LODE_HOME")?;
    let repo = lode::Repo::discover(
        &std::env::current_dir()?,
        lode::keys::Home::new(home),
        lode::RepoOptions::default(),
    )?;
    for entry in lode::ops::history::ls(&repo, None, "")? {
        println!("{}  {}", entry.id, entry.path);
    }
    Ok(())
}
