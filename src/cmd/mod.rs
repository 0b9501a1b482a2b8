//! One module per subcommand; `run` dispatches.

use anyhow::Result;

use crate::cli::{Cli, Command};

mod nar;

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Nar(c) => nar::run(c),
    }
}
