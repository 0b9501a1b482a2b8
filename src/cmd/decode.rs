//! `narfs decode`: root NAME or CID → verified blocks (from the store, the default, or
//! a CAR file) → the byte-exact NAR, on stdout, in a file, or restored as a tree. A
//! root the store has a record of is checked against the record's NarSize, and its
//! NarHash when the record is not sealed (or with `--check-nar-hash`), as it streams:
//! a mismatch fails (no output file appears, the restored tree is removed, stdout is
//! left one byte short at least).

use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};
use narfs_core::block::BlockSource;
use narfs_core::car::CarFile;
use narfs_core::nar::{restore, RestoreOptions};
use narfs_core::Encoding;
use narfs_decoder::{Expect, Limits};

use crate::cli::DecodeArgs;
use crate::io::Output;

/// The read-ahead of a decode whose output copies into aligned pieces.
const COPYING_READAHEAD: u64 = 8 << 20;

pub fn run(args: DecodeArgs) -> Result<()> {
    one_malloc_arena();
    let mut encoding = if args.fallback {
        Encoding::ZstdNar
    } else {
        Encoding::UnixFs
    };
    let mut _lock = None;
    let mut expect = None;
    let mut stats_of = None;
    let (source, cid): (Box<dyn BlockSource + Sync>, narfs_core::Cid) = match &args.car {
        Some(car) => {
            let cid = args
                .root
                .parse()
                .with_context(|| format!("{:?} is not a CID", args.root))?;
            let source =
                CarFile::open(car).with_context(|| format!("cannot read {}", car.display()))?;
            (Box::new(source), cid)
        }
        None => {
            let store = super::store::open(args.store.as_deref())?;
            // Held while decoding, so that `gc` cannot collect the DAG under us.
            _lock = Some(store.lock_shared()?);
            let cid = match super::store::resolve(&store, &args.root)? {
                Some(rec) => {
                    if rec.encoding == Encoding::ZstdNar {
                        encoding = Encoding::ZstdNar;
                    }
                    expect = Some(
                        Expect::from_record(&rec.nar_hash, rec.nar_size)
                            .with_context(|| format!("the record of {}", args.root))?
                            .with_stream_hash(args.check_nar_hash || !rec.sealed),
                    );
                    rec.cid()?
                }
                None => args.root.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "no root named {:?} in the store {}",
                        args.root,
                        store.dir().display()
                    )
                })?,
            };
            stats_of = args.pack_stats.then(|| store.clone());
            // The packs its decode reads, in the order `repack` recorded, read ahead.
            store.will_decode(&cid);
            (Box::new(store), cid)
        }
    };
    let limits = Limits {
        max_output: args.max_output,
        ..Limits::default()
    };
    // Either way the output is written behind the decoder, on its own thread, in
    // pieces of the size the output writes best, gathered from whole leaves unless
    // the output wants aligned copies (`Output::gathers`).
    let decode = |out: &mut (dyn Write + Send), piece: usize, gather: bool| -> Result<()> {
        // An output that copies into aligned pieces holds up to three of them behind
        // the decoder (two of 4 MiB): it reads ahead two parts of leaves (8 MiB), not
        // three, so that a decode's peak memory stays within 64 MiB.
        let readahead = match gather {
            true => limits.readahead,
            false => limits.readahead.min(COPYING_READAHEAD),
        };
        let limits = Limits {
            output_piece: piece,
            output_gather: gather,
            readahead,
            ..limits
        };
        match &expect {
            Some(e) => {
                narfs_decoder::decode_checked(&source, &cid, encoding, e, out, &limits)?;
            }
            None => {
                let (decoded, out) = narfs_decoder::write_behind(
                    out,
                    limits.output_piece,
                    limits.output_gather,
                    |w| narfs_decoder::decode_to(&source, &cid, encoding, w, &limits).map(drop),
                );
                decoded?;
                out?;
            }
        }
        Ok(())
    };
    match &args.to {
        Some(dir) => to_dir(dir, |out| decode(out, limits.output_piece, true))?,
        None => {
            let mut out = Output::create(args.output.as_deref())?;
            let (piece, gather) = (out.write_size(), out.gathers());
            decode(&mut out, piece, gather)?;
            out.commit()?
        }
    }
    if let Some(store) = stats_of {
        let (packs, bytes) = store.packs_read();
        let (missed, waited) = store.pack_waits();
        // One line, the figures disk.sh and the tests read first.
        eprintln!(
            "packs decompressed: {packs} ({bytes} bytes); by readers {missed}, waited for {waited}"
        );
    }
    Ok(())
}

/// Makes glibc's malloc keep one arena for all threads, before decode starts any.
///
/// Decode's threads (rayon's, the writer behind, the store's pack read-ahead) each
/// got an arena of their own, and every arena keeps the leaf buffers freed in it:
/// heaptrack saw a heap peak of 57 MiB where RssAnon peaked at 65 MiB (small-file NAR
/// from the store). With one arena the peak RssAnon fell by ~5 MiB and the CPU time did
/// not change measurably (docs/BENCHMARKS.md, branch `pipe`): the threads allocate a
/// few large buffers each, not many small ones, so they hardly contend.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning; it is called before this
    // command starts any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Decodes into a pipe read by `restore`, so the tree is built as the NAR streams.
pub(crate) fn to_dir<T: Send>(
    dir: &Path,
    decode: impl FnOnce(&mut (dyn Write + Send)) -> Result<T> + Send,
) -> Result<T> {
    // Refuse an existing target before decoding anything (restore checks again).
    if dir.symlink_metadata().is_ok() {
        anyhow::bail!("cannot restore into {}: already exists", dir.display());
    }
    let (reader, mut writer) = io::pipe()?;
    std::thread::scope(|scope| {
        let restorer = scope.spawn(move || restore(reader, dir, RestoreOptions::default()));
        let decoded = decode(&mut writer);
        drop(writer);
        let restored = restorer.join().expect("restore does not panic");
        let context = || format!("cannot restore into {}", dir.display());
        match (decoded, restored) {
            // Restore refused first (e.g. DIR exists) and closed the pipe: its error
            // is the cause, not the decoder's broken pipe.
            (Err(d), Err(r)) if crate::io::is_broken_pipe(&d) => Err(r).with_context(context),
            // Otherwise the decode error is the cause (restore then saw a cut NAR).
            (Err(d), _) => Err(d),
            (Ok(t), r) => r.with_context(context).map(|_| t),
        }
    })
}
