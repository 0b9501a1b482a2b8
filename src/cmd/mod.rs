//! One module per subcommand; `run` dispatches.

use anyhow::Result;

use crate::cli::{Cli, Command};

mod decode;
mod encode;
mod nar;

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Nar(c) => nar::run(c),
        Command::Encode(a) => encode::run(a),
        Command::Decode(a) => decode::run(a),
    }
}
