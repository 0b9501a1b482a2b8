//! One module per subcommand; `run` dispatches.

use anyhow::Result;

use crate::cli::{Cli, Command};

pub mod car;
mod decode;
mod encode;
mod experiment;
pub mod import;
mod nar;
pub mod serve;
mod store;

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Nar(c) => nar::run(c),
        Command::Encode(a) => encode::run(a),
        Command::Decode(a) => decode::run(a),
        Command::Ls(a) => store::ls(a),
        Command::Stats(a) => store::stats(a),
        Command::Verify(a) => store::verify(a),
        Command::Gc(a) => store::gc(a),
        Command::Rm(a) => store::rm(a),
        Command::Experiment(a) => experiment::run(a),
        Command::Import(a) => import::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Car(c) => car::run(c),
    }
}
