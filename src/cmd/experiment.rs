//! `narfs experiment`: runs the chunking strategies over a corpus of NARs and prints
//! the table; optionally writes every figure as JSON and the chart as SVG.

use std::io::Write;

use anyhow::{Context, Result};

use crate::cli::ExperimentArgs;
use crate::experiment::{self, strategy};
use crate::io::Output;

pub fn run(args: ExperimentArgs) -> Result<()> {
    let dir = args.corpus.unwrap_or_else(experiment::default_corpus);
    let strategies = if args.strategies.is_empty() {
        strategy::default_sweep()
    } else {
        args.strategies
    };
    let report = experiment::run(&dir, &strategies)
        .with_context(|| format!("experiment on {}", dir.display()))?;
    if let Some(path) = &args.json {
        let mut out = Output::create(Some(path))?;
        serde_json::to_writer_pretty(&mut out, &report.json())?;
        writeln!(out)?;
        out.commit()?;
    }
    if let Some(path) = &args.svg {
        let mut out = Output::create(Some(path))?;
        out.write_all(experiment::svg::render(&report).as_bytes())?;
        out.commit()?;
    }
    let mut stdout = Output::create(None)?;
    stdout.write_all(report.table().as_bytes())?;
    stdout.commit()
}
