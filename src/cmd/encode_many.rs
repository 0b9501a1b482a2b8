//! `narfs encode A.nar B.nar …`: many NARs into the store through one write session,
//! so that a commit carries many small NARs and their records instead of one sync per
//! NAR. Inputs are encoded one after the other (the session's packing threads and its
//! committer run beside the encoder); each input's line (its root, or `--json`'s
//! report with what was new) is printed once its record is durable, in input order.

use std::io::Write;
use std::sync::mpsc;

use anyhow::{bail, Context, Result};
use narfs_encoder::{encode_or_fallback, EncodeReport, NarInput};

use crate::cli::EncodeArgs;

pub fn run(args: EncodeArgs) -> Result<()> {
    let single = [
        (args.car.is_some(), "--car"),
        (args.name.is_some(), "--name"),
        (args.store_path.is_some(), "--store-path"),
        (args.entries.is_some(), "--entries"),
        (args.ipfs_api.is_some(), "--ipfs-api"),
    ];
    if let Some((_, flag)) = single.iter().find(|(set, _)| *set) {
        bail!("{flag} speaks of one NAR: give one input with it");
    }
    let layout = args.layout.layout();
    let profile = args.layout.profile.name();
    let store = super::store::open_writing(args.store.as_deref(), args.compression)?;
    let session = store
        .session()
        .with_context(|| format!("cannot write to the store {}", store.dir().display()))?;
    let (tx, rx) = mpsc::channel::<(usize, Result<String>)>();
    let json = args.json;
    // Lines are printed as roots become durable (commits keep the inputs' order).
    let printer = std::thread::spawn(move || -> Result<()> {
        let mut out = std::io::stdout().lock();
        for (_, line) in rx {
            writeln!(out, "{}", line?)?;
            out.flush()?;
        }
        Ok(())
    });
    let inputs: Vec<_> = std::iter::once(&args.input).chain(&args.more).collect();
    let mut failed = None;
    for (i, path) in inputs.iter().enumerate() {
        let one = || -> Result<()> {
            let mut input = NarInput::open(path)?;
            let encoded = encode_or_fallback(
                || input.reader().map_err(anyhow::Error::from),
                &layout,
                || Ok::<_, anyhow::Error>(session.sink()),
                args.fallback,
                None,
            );
            if encoded.is_err() {
                if let Some(cause) = input.dump_error() {
                    bail!("{cause}");
                }
            }
            let (encoded, sink) = encoded?;
            let mut report = EncodeReport::new(&encoded, &layout, profile);
            let rec = super::encode::record(&encoded, &layout, profile, None);
            let root = encoded.root;
            let tx = tx.clone();
            sink.finish_then(
                Some(rec),
                Box::new(move |written| {
                    let line = written.map_err(anyhow::Error::from).and_then(|w| {
                        if !json {
                            return Ok(root.to_string());
                        }
                        report.new_blocks = Some(w.new_blocks);
                        report.new_bytes = Some(w.new_bytes);
                        report.new_stored_bytes = Some(w.new_stored_bytes);
                        Ok(serde_json::to_string(&report)?)
                    });
                    let _ = tx.send((i, line));
                }),
            )?;
            Ok(())
        };
        if let Err(e) = one() {
            failed = Some(e.context(format!("cannot encode {}", path.display())));
            break;
        }
    }
    // What was encoded before a failure is still committed and printed.
    let closed = session
        .close()
        .context("cannot record the NARs in the store");
    drop(tx);
    let printed = printer
        .join()
        .unwrap_or_else(|_| bail!("the printing thread panicked"));
    if let Some(e) = failed {
        return Err(e);
    }
    closed?;
    printed
}
