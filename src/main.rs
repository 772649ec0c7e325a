//! The `lode` binary: parses arguments, runs the command, prints, exits.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
