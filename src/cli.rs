//! The command-line contract (see DESIGN.md, "Command line").

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "narfs",
    version,
    about = "Encode Nix NAR archives as IPFS UnixFS DAGs and back"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Work with NAR files directly: dump a directory, list or restore a NAR.
    #[command(subcommand)]
    Nar(NarCommand),
}

#[derive(Subcommand, Debug)]
pub enum NarCommand {
    /// Serialise DIR as a NAR on stdout, byte for byte as `nix-store --dump DIR`.
    Dump {
        /// The file, directory or symlink to serialise.
        path: PathBuf,
        /// Write the NAR here instead of stdout ('-' is stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Validate a NAR and list its entries (type, size, executable flag).
    Ls {
        /// The NAR file, or '-' for stdin.
        nar: PathBuf,
        /// List every entry, not just the root and its direct children.
        #[arg(short = 'R', long)]
        recursive: bool,
    },
    /// Restore a NAR into DIR, as `nix-store --restore DIR`.
    Restore {
        /// The NAR file, or '-' for stdin.
        nar: PathBuf,
        /// Where to create the tree; must not exist yet.
        dir: PathBuf,
    },
}
