//! One module per subcommand; `run` dispatches.

use anyhow::Result;

use crate::cli::{Cli, Command, StoreCommand};

pub mod car;
mod decode;
mod encode;
mod encode_many;
mod experiment;
pub mod fetch;
pub mod import;
pub mod key;
mod nar;
pub mod publish;
pub mod serve;
mod store;

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Nar(c) => nar::run(c),
        Command::Encode(a) => encode::run(a),
        Command::Decode(a) => decode::run(a),
        Command::Store(c) => store::run(c),
        Command::Ls(a) => store::run(StoreCommand::Ls(a)),
        Command::Stats(a) => store::run(StoreCommand::Stats(a)),
        Command::Verify(a) => store::run(StoreCommand::Verify(a)),
        Command::Gc(a) => store::run(StoreCommand::Gc(a)),
        Command::Rm(a) => store::run(StoreCommand::Rm(a)),
        Command::Experiment(a) => experiment::run(a),
        Command::Import(a) => import::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Car(c) => car::run(c),
        Command::Publish(a) => publish::run(a),
        Command::Fetch(a) => fetch::run(a),
        Command::Key(c) => key::run(c),
    }
}
