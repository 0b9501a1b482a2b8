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
    /// Encode a NAR (file, '-' or a directory) as a UnixFS DAG; prints the root CID.
    Encode(EncodeArgs),
    /// Decode the DAG under CID back into the byte-exact NAR (stdout by default).
    Decode(DecodeArgs),
}

#[derive(clap::Args, Debug)]
pub struct EncodeArgs {
    /// CID profile: kubo-v1 (ipfs add -r --cid-version=1) or unixfs-v1-2025 (IPIP-499).
    #[arg(long, default_value = "kubo-v1")]
    pub profile: narfs_encoder::Profile,
    /// Chunker, overriding the profile's: fixed:SIZE or fastcdc:MIN:AVG:MAX.
    #[arg(long)]
    pub chunker: Option<narfs_encoder::chunker::Chunker>,
    /// Hash of the CIDs: sha2-256 or blake3.
    #[arg(long, default_value = "sha2-256")]
    pub hash: narfs_core::block::HashAlg,
    /// Write the blocks to this CARv1 file (root = the NAR's root CID).
    #[arg(long)]
    pub car: Option<PathBuf>,
    /// Print one JSON object (root, NarHash, NarSize, blocks, bytes) instead of the CID.
    #[arg(long)]
    pub json: bool,
    /// Publish the zstd-compressed NAR as one UnixFS file instead of a tree.
    #[arg(long)]
    pub fallback: bool,
    /// Write the CID of every entry to this file, one JSON object per line.
    #[arg(long)]
    pub entries: Option<PathBuf>,
    /// A .nar file, '-' for stdin, or a directory (read as `nix-store --dump` would).
    pub input: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct DecodeArgs {
    /// Read blocks from this CAR file.
    #[arg(long)]
    pub car: PathBuf,
    /// Write the NAR to this file instead of stdout.
    #[arg(short, long, conflicts_with = "to")]
    pub output: Option<PathBuf>,
    /// Restore the tree into this directory (which must not exist) instead.
    #[arg(long)]
    pub to: Option<PathBuf>,
    /// The CID is a fallback encoding (`"compression": "zstd"` in `encode --json`).
    #[arg(long)]
    pub fallback: bool,
    /// Refuse to produce more than this many NAR bytes.
    #[arg(long, default_value_t = 1 << 40)]
    pub max_output: u64,
    /// Root CID of the NAR's DAG.
    pub cid: narfs_core::Cid,
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
