//! `cargo xtask matrix`: build both variants, run every cell, print the table, write the
//! reports (Markdown for a GitHub job summary, JSON, JUnit) under `target/uvfix/matrix/`.
//! Exits non-zero if any cell is FAIL. The cells are the test suite's cells
//! (`uvfix_scenario::plan`), run here on a small thread pool instead of by nextest.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use clap::Args;
use uvfix_pipeline::Paths;
use uvfix_pipeline::builder::{self, Variant};
use uvfix_sandbox::Sandbox;
use uvfix_scenario::cell::{CellResult, UvUnderTest, run_cell};
use uvfix_scenario::plan::{self, Filter};
use uvfix_scenario::report;
use uvfix_scenario::{CacheState, ScenarioId};

#[derive(Args)]
pub struct MatrixArgs {
    /// A uv to test instead of the built ones, as LABEL=PATH (repeatable; `uvx` must sit
    /// next to it). The label `patched` gets the patched expectations; any other label
    /// (`pristine`, `official-0.13.9`, …) gets the unpatched ones.
    #[arg(long = "uv", value_name = "LABEL=PATH")]
    uvs: Vec<String>,
    /// Also test the official binary at $UVFIX_UV (see ci/fetch-official-uv.sh).
    #[arg(long)]
    official: bool,
    /// Comma-separated sandbox names (default: all).
    #[arg(long, value_delimiter = ',')]
    sandbox: Option<Vec<String>>,
    /// A sandbox of your own: NAME[:ERRNO]=COMMAND PREFIX, with {workspace} {tmpdir} {home}
    /// {cache} for the cell's paths (repeatable; canary-proved like the others; see README).
    #[arg(long = "custom-sandbox", value_name = "NAME=PREFIX")]
    custom_sandboxes: Vec<String>,
    /// Comma-separated scenarios, S1…S7 (default: all).
    #[arg(long, value_delimiter = ',')]
    scenario: Option<Vec<String>>,
    /// Comma-separated cache states (default: all).
    #[arg(long, value_delimiter = ',')]
    state: Option<Vec<String>>,
    /// Cells run at once (default: the number of CPUs).
    #[arg(long)]
    jobs: Option<usize>,
    /// Where to write the reports (default: target/uvfix/matrix).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn names<T>(
    list: Option<Vec<String>>,
    parse: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Result<Option<Vec<T>>> {
    list.map(|names| {
        names
            .iter()
            .map(|n| parse(n).with_context(|| format!("unknown {what} `{n}`")))
            .collect()
    })
    .transpose()
}

pub fn run(paths: &Paths, args: MatrixArgs, helper: &Path) -> Result<()> {
    let mut uvs = Vec::new();
    if args.uvs.is_empty() {
        for (variant, bins) in Variant::ALL
            .iter()
            .zip(builder::ensure(paths, &Variant::ALL)?)
        {
            uvs.push(UvUnderTest::new(variant.name(), bins.uv));
        }
    }
    for spec in &args.uvs {
        let (label, path) = spec.split_once('=').context("--uv takes LABEL=PATH")?;
        let uv = UvUnderTest::new(label, fs_err::canonicalize(path)?);
        uv.check().map_err(anyhow::Error::msg)?;
        uvs.push(uv);
    }
    if args.official {
        uvs.push(UvUnderTest::official().map_err(anyhow::Error::msg)?);
    }
    let mut custom = Vec::new();
    for spec in &args.custom_sandboxes {
        custom.push(uvfix_sandbox::custom::register(spec)?);
    }
    let sandboxes = names(args.sandbox, Sandbox::from_name, "sandbox")?
        .or_else(|| (!custom.is_empty()).then(|| [&Sandbox::ALL[..], &custom].concat()));
    let filter = Filter {
        sandboxes,
        scenarios: names(args.scenario, ScenarioId::from_name, "scenario")?,
        states: names(args.state, CacheState::from_name, "cache state")?,
    };
    let cells = plan::cells(&uvs, &filter);
    // As in the test suite: a required sandbox that cannot run fails the job, not a column of skips.
    let required = plan::required_sandboxes();
    if let Some(c) = cells
        .iter()
        .find(|c| c.unavailable.is_some() && required.contains(&c.sandbox))
    {
        bail!(
            "sandbox `{}` is required (UVFIX_REQUIRE_SANDBOXES) but unavailable: {}",
            c.sandbox,
            c.unavailable.as_deref().unwrap_or_default()
        );
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
        .max(1);
    eprintln!("uvfix: running {} cells, {jobs} at a time", cells.len());

    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(cells.len()));
    // Claude Code's sandbox runtime starts two socat bridges per run and waits at most
    // ~0.6 s for them; its cells take turns to keep that margin on a small machine.
    let one_at_a_time = Mutex::new(());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(cell) = cells.get(index) else { break };
                    let _turn = (cell.sandbox == Sandbox::SandboxRuntime
                        && cell.unavailable.is_none())
                    .then(|| one_at_a_time.lock().unwrap_or_else(|e| e.into_inner()));
                    let result =
                        run_cell(&cell.uv, cell.sandbox, cell.scenario, cell.state, helper);
                    eprintln!(
                        "[{}/{}] {} {} {:.1}s",
                        index + 1,
                        cells.len(),
                        cell.name(),
                        result.outcome.word(),
                        result.duration_ms as f64 / 1000.0
                    );
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((index, result));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(index, _)| *index);
    let results: Vec<CellResult> = results.into_iter().map(|(_, r)| r).collect();

    let out = args.out.unwrap_or_else(|| paths.work().join("matrix"));
    let files = report::write_reports(&results, &out)?;
    print!("{}", report::render_table(&results));
    let summary = report::Summary::of(&results);
    eprintln!(
        "uvfix: reports in {} (matrix.md for a job summary, matrix.json, junit.xml)",
        files.markdown.parent().unwrap_or(&out).display()
    );
    if summary.fail > 0 {
        bail!("{} cell(s) FAIL", summary.fail);
    }
    Ok(())
}
