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

/// An error and its sources on one line: "context: cause: cause". Our errors never
/// repeat their source in `Display`; a cause some other crate's error already printed
/// (its message ends with the cause's) is left out, so nothing is said twice.
fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    for cause in std::iter::successors(Some(e), |e| e.source()).map(|c| c.to_string()) {
        if line.is_empty() {
            line = cause;
        } else if !line.ends_with(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}
