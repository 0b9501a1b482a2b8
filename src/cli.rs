//! The command-line contract: every subcommand and flag (the README lists them).

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
    /// The blockstore: list roots, figures, verify, gc, remove a root.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Same as `narfs store ls` (kept for older scripts).
    #[command(hide = true)]
    Ls(StoreArgs),
    /// Same as `narfs store stats`.
    #[command(hide = true)]
    Stats(StoreArgs),
    /// Same as `narfs store verify`.
    #[command(hide = true)]
    Verify(VerifyArgs),
    /// Same as `narfs store gc`.
    #[command(hide = true)]
    Gc(GcArgs),
    /// Same as `narfs store rm`.
    #[command(hide = true)]
    Rm(RmArgs),
    /// Measure chunking strategies (stored bytes, dedup, throughput) over a corpus of NARs.
    Experiment(ExperimentArgs),
    /// Import a binary cache into the store: a directory (`nix copy --to file://DIR`,
    /// `guix publish --cache`) or over HTTP (`narfs serve`, `guix publish`, ...).
    Import(crate::cmd::import::ImportArgs),
    /// Serve the store read-only over HTTP: Nix binary cache and IPFS trustless gateway.
    Serve(crate::cmd::serve::ServeArgs),
    /// Exchange DAGs as CAR files: import (verified) into the store, export from it.
    #[command(subcommand)]
    Car(crate::cmd::car::CarCommand),
    /// Publish roots into an IPFS node (Kubo's RPC API): each DAG streamed as a CAR into
    /// `dag/import`, and pinned.
    Publish(crate::cmd::publish::PublishArgs),
    /// Fetch roots through an IPFS trustless gateway (Kubo's, `narfs serve`'s): only the
    /// blocks the store lacks, each verified, kept in the store for the next fetch.
    Fetch(crate::cmd::fetch::FetchArgs),
    /// Signing keys for `narfs serve --sign-key`, in Nix's or Guix's file format.
    #[command(subcommand)]
    Key(crate::cmd::key::KeyCommand),
}

/// What fixes the CIDs: shared by `encode` and `import`.
#[derive(clap::Args, Debug)]
pub struct LayoutArgs {
    /// CID profile: kubo-v1 (ipfs add -r --cid-version=1) or unixfs-v1-2025 (IPIP-499).
    #[arg(long, default_value = "kubo-v1")]
    pub profile: narfs_encoder::Profile,
    /// Chunker, overriding the profile's: fixed:SIZE or fastcdc:MIN:AVG:MAX.
    #[arg(long)]
    pub chunker: Option<narfs_encoder::chunker::Chunker>,
    /// Hash of the CIDs: sha2-256 or blake3.
    #[arg(long, default_value = "sha2-256")]
    pub hash: narfs_core::block::HashAlg,
}

impl LayoutArgs {
    /// The profile's layout with the hash and, if given, the chunker replaced.
    pub fn layout(&self) -> narfs_encoder::Layout {
        let mut layout = self.profile.layout();
        layout.hash = self.hash;
        if let Some(c) = self.chunker {
            layout.chunker = c;
        }
        layout
    }
}

#[derive(clap::Args, Debug)]
pub struct EncodeArgs {
    #[command(flatten)]
    pub layout: LayoutArgs,
    /// Write the blocks to this CARv1 file (root = the NAR's root CID); the store is
    /// then left alone unless --store is given too. A CARv1 names its root before its
    /// blocks: into a pipe or device (`/dev/stdout`) from a NAR file or stdin, the NAR
    /// is encoded twice (the first pass finds the root, the second streams the CAR);
    /// from a directory, whose tree could change between two reads, the CAR is
    /// spooled to $TMPDIR and copied at the end. `/dev/null` writes nothing.
    #[arg(long)]
    pub car: Option<PathBuf>,
    /// The blockstore (default: $NARFS_STORE, else the platform data dir).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// How new blocks are stored: pack (default: LZ4 over 1 MiB packs of an item's new
    /// blocks; `narfs store repack` rewrites them at zstd -19), pack:lz4[:BYTES[:ACCELERATION]],
    /// pack:LEVEL[:BYTES] (zstd packs), block[:LEVEL] (zstd per block), none.
    #[arg(long, value_name = "MODE")]
    pub compression: Option<narfs_store::Compression>,
    /// Record the root in the store under this name (e.g. the store path).
    #[arg(long)]
    pub name: Option<String>,
    /// The store path this NAR is (in /nix/store or /gnu/store): recorded with narinfo
    /// fields, so that `narfs serve` publishes it (signed with --sign-key); the name
    /// too, unless --name says otherwise.
    #[arg(long, value_name = "PATH")]
    pub store_path: Option<String>,
    /// A path the store path refers to, as a base name `<hash>-<name>` (repeatable;
    /// with --store-path).
    #[arg(long = "reference", value_name = "BASE", requires = "store_path")]
    pub references: Vec<String>,
    /// Print one JSON object (root, NarHash, NarSize, blocks, bytes) instead of the CID.
    #[arg(long)]
    pub json: bool,
    /// Publish the zstd-compressed NAR as one UnixFS file instead of a tree.
    #[arg(long)]
    pub fallback: bool,
    /// Write the CID of every entry to this file, one JSON object per line.
    #[arg(long)]
    pub entries: Option<PathBuf>,
    /// Then publish the root into this IPFS node's RPC API (as `narfs publish`).
    #[arg(long, value_name = "URL")]
    pub ipfs_api: Option<String>,
    /// A .nar file, '-' for stdin, or a directory (read as `nix-store --dump` would).
    pub input: PathBuf,
    /// More inputs: all go into the store through one write session (a commit carries
    /// many small NARs), one line (root, or --json's object) per input, printed once
    /// its root is durable; not with --car, --name, --store-path, --entries or
    /// --ipfs-api, which speak of one NAR.
    #[arg(value_name = "MORE")]
    pub more: Vec<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct DecodeArgs {
    /// Read blocks from this CAR file instead of the store.
    #[arg(long, conflicts_with = "store")]
    pub car: Option<PathBuf>,
    /// The blockstore (default: $NARFS_STORE, else the platform data dir).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Write the NAR to this file instead of stdout.
    #[arg(short, long, conflicts_with = "to")]
    pub output: Option<PathBuf>,
    /// Restore the tree into this directory (which must not exist) instead.
    #[arg(long)]
    pub to: Option<PathBuf>,
    /// The CID is a fallback encoding (`"compression": "zstd"` in `encode --json`);
    /// implied for a root the store recorded as such.
    #[arg(long)]
    pub fallback: bool,
    /// Refuse to produce more than this many NAR bytes.
    #[arg(long, default_value_t = 1 << 40)]
    pub max_output: u64,
    /// Then say on standard error how many packs of the store were decompressed and
    /// their bytes (the read amplification of packs; `benches/disk.sh`), how many of
    /// them the readers decompressed themselves (not read ahead), and how often a
    /// reader waited for a pack another thread was decompressing.
    #[arg(long, conflicts_with = "car")]
    pub pack_stats: bool,
    /// Hash the NAR against the record's NarHash as it streams even when the record is
    /// sealed (its stored checksum held, so its NarHash is the one its writer computed
    /// from this DAG's NAR); records of older narfs versions are always hashed.
    #[arg(long, conflicts_with = "car")]
    pub check_nar_hash: bool,
    /// Root of the NAR's DAG: a name recorded in the store, or a CID.
    #[arg(value_name = "NAME|CID")]
    pub root: String,
}

#[derive(clap::Args, Debug)]
pub struct ExperimentArgs {
    /// Directory of NARs (order from its MANIFEST.tsv, else by name); default `corpus/`.
    #[arg(long, conflicts_with_all = ["cache", "nix_store"])]
    pub corpus: Option<PathBuf>,
    /// A binary cache to measure instead: a directory (`nix copy --to file://DIR`,
    /// `guix publish --cache`) or http://HOST[:PORT][/PREFIX] (with --paths). Its NARs
    /// are written to a temporary corpus first; each package's versions (the store
    /// path's name up to the first `-` followed by a digit) form a series.
    #[arg(long, value_name = "DIR|URL", conflicts_with = "nix_store")]
    pub cache: Option<String>,
    /// With --cache: only these store paths (one a line: /nix/store/HASH-NAME,
    /// HASH-NAME or HASH; `-` reads stdin), and what they reference.
    #[arg(long, value_name = "FILE", requires = "cache")]
    pub paths: Option<PathBuf>,
    /// With --paths: not their closure through References.
    #[arg(long, requires = "paths")]
    pub no_closure: bool,
    /// Store paths (or any paths) on this machine to measure, dumped as NARs.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub nix_store: Vec<PathBuf>,
    /// Comma-separated strategies: nar-zstd, nar-fixed:SIZE, nar-fastcdc:MIN:AVG:MAX,
    /// file-fixed:SIZE, file-fastcdc:MIN:AVG:MAX (default: a sweep of them).
    #[arg(long, value_delimiter = ',')]
    pub strategies: Vec<narfs_experiment::Strategy>,
    /// Size of the packs of new blocks measured (zstd frames over consecutive blocks).
    #[arg(long, value_name = "BYTES", default_value_t = narfs_experiment::DEFAULT_PACK_SIZE)]
    pub pack_size: usize,
    /// zstd level of the repack option (measured on the strategy packing smallest);
    /// 0: not measured.
    #[arg(long, value_name = "LEVEL", default_value_t = narfs_experiment::SEED_LEVEL,
          value_parser = clap::value_parser!(i32).range(0..=22))]
    pub repack_level: i32,
    /// Write every figure to this JSON file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw the chart into this SVG file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
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
        /// Print one JSON object, as `nix nar ls --json` does.
        #[arg(long)]
        json: bool,
    },
    /// Restore a NAR into DIR, as `nix-store --restore DIR`.
    Restore {
        /// The NAR file, or '-' for stdin.
        nar: PathBuf,
        /// Where to create the tree; must not exist yet.
        dir: PathBuf,
    },
}

/// `narfs store …`, as `ipfs repo …`/`nix store …` group theirs.
#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// List the roots (encoded NARs) recorded in the store.
    Ls(StoreArgs),
    /// Store figures: roots, unique blocks, logical NAR bytes vs stored bytes.
    Stats(StoreArgs),
    /// Re-hash every block and check every root's DAG is complete and decodes to its
    /// NarHash (non-zero exit on a problem).
    ///
    /// The whole store is checked in two streaming passes: every block of the table
    /// re-hashed (in key order, chunks in parallel), then every root's DAG walked and
    /// its NAR decoded against its NarHash and NarSize (roots in parallel). The
    /// position reached is saved every few seconds in DIR/verify-checkpoint.json;
    /// `--resume` continues an interrupted run from there (a finished run removes it).
    /// With `--root`, only those roots and the blocks they reach are checked.
    Verify(VerifyArgs),
    /// Remove the blocks no root reaches (waits for running encodes).
    ///
    /// Bounded memory: the CIDs the roots reach are sorted on disk (DIR/gc-tmp/, runs
    /// of at most --memory-mib) and merge-joined with the block table; nothing is
    /// deleted when a root's DAG is incomplete or damaged. The table's file keeps its
    /// size (freed pages are reused); `narfs store compact` shrinks it.
    Gc(GcArgs),
    /// Rewrite the block table's file without its free pages (after a large gc).
    ///
    /// Needs the store to itself: refused while another process (a `narfs serve`,
    /// encode, import...) has it open; narfs processes starting meanwhile wait.
    Compact(StoreArgs),
    /// Remove a root (by NAME or CID) from the store; its blocks go at the next `gc`.
    Rm(RmArgs),
    /// Rewrite the packs (LZ4 ones, and zstd ones below the level) at a higher zstd
    /// level, dropping blocks `gc` removed (safe while others read and write; resumable).
    Repack(RepackArgs),
}

#[derive(clap::Args, Debug)]
pub struct RepackArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// zstd level of the rewritten packs.
    #[arg(long, value_name = "N", default_value_t = 19, value_parser = clap::value_parser!(i32).range(-7..=22))]
    pub level: i32,
    /// Bytes of block data per rewritten pack (a block read decompresses its whole pack).
    #[arg(long, value_name = "BYTES", default_value_t = narfs_store::REPACK_BYTES,
          value_parser = clap::value_parser!(u64).range(65536..=16777216))]
    pub pack_bytes: u64,
    /// Where blocks go: `grouped` puts the blocks the same items use together, in
    /// their DAG order (an item's decode reads packs nearly all its own); `write-order`
    /// merges consecutive packs as they were written.
    #[arg(long, value_enum, default_value_t = RepackLayout::Grouped)]
    pub layout: RepackLayout,
    /// Grouped: keep the packs an earlier repack wrote (every block alive, at the
    /// level) and place only the rest (new items' blocks, packs `gc` left partly
    /// dead), while decoding the items decompresses at most `--max-amplification` ×
    /// the bytes they use; past it the packs wasting most are rewritten too.
    #[arg(long)]
    pub incremental: bool,
    /// The read amplification an incremental repack lets the layout drift to.
    #[arg(long, value_name = "X", default_value_t = narfs_store::MAX_AMPLIFICATION,
          requires = "incremental", value_parser = amplification)]
    pub max_amplification: f64,
}

/// A read amplification bound: a number of at least 1.
fn amplification(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 1.0 => Ok(x),
        _ => Err(format!("expected a number of at least 1, got {s:?}")),
    }
}

/// `store repack --layout`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepackLayout {
    Grouped,
    WriteOrder,
}

#[derive(clap::Args, Debug)]
pub struct StoreArgs {
    /// The blockstore (default: $NARFS_STORE, else the platform data dir).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Check only this root and what it reaches: a name, a root CID, a store path or
    /// its hash part (repeatable).
    #[arg(long = "root", value_name = "NAME|CID|STORE-PATH|HASH")]
    pub roots: Vec<String>,
    /// Continue the interrupted run whose checkpoint is in the store (same --root
    /// selection), instead of starting over.
    #[arg(long)]
    pub resume: bool,
}

#[derive(clap::Args, Debug)]
pub struct GcArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Memory for the mark's sort buffer and seen cache, in MiB (more spills more
    /// sorted runs to disk; the result is the same).
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub memory_mib: u64,
}

#[derive(clap::Args, Debug)]
pub struct RmArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The root to remove: a recorded name, or a root CID (all its records).
    #[arg(value_name = "NAME|CID")]
    pub root: String,
}
