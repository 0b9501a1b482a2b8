//! The `narfs` command line: a thin layer over the library crates. Errors are
//! reported once, here, with their context, as one line on stderr.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod cmd;
mod io;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cmd::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if io::is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("narfs: {}", one_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// An error and its sources on one line: "context: cause: cause" (see
/// [`narfs_core::error_chain`]).
fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    narfs_core::error_chain(e)
}
