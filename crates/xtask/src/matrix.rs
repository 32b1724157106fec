//! `cargo xtask matrix`: build both variants, run every cell, print the table, write the
//! reports (Markdown for a GitHub job summary, JSON, JUnit) under `target/uvfix/matrix/`.
//! Exits non-zero if any cell is FAIL. The cells are the test suite's cells
//! (`uvfix_scenario::plan`), run here on a small thread pool instead of by nextest.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use uvfix_pipeline::Paths;
use uvfix_pipeline::builder::{self, Variant};
use uvfix_sandbox::Sandbox;
use uvfix_scenario::Build;
use uvfix_scenario::cell::{
    CellOptions, CellResult, OFFICIAL_UV_ENV, UvUnderTest, new_store, run_cell_with,
};
use uvfix_scenario::plan::{self, Filter, Planned};
use uvfix_scenario::report::{self, Cost};
use uvfix_scenario::{CacheState, ScenarioId};

#[derive(Args, Clone)]
pub struct MatrixArgs {
    /// A uv to test instead of the built ones, as BUILD=PATH (repeatable; `uvx` must sit
    /// next to it). BUILD says what it is, and that decides its expectations: `patched`,
    /// `upstream` (a checkout with the series) and a whole stack `step-4-of-4` must pass;
    /// `pristine`, `official-<version>` and a partial `step-<n>-of-<m>` are unfixed.
    #[arg(long = "uv", value_name = "BUILD=PATH", value_parser = parse_uv)]
    uvs: Vec<UvUnderTest>,
    /// Also test the official binary at $UVFIX_UV (see ci/fetch-official-uv.sh).
    #[arg(long)]
    official: bool,
    /// Comma-separated sandbox names (default: all); the names of `--custom-sandbox`es too.
    #[arg(long, value_delimiter = ',')]
    sandbox: Option<Vec<String>>,
    /// A sandbox of your own: NAME[:ERRNO]=COMMAND PREFIX, with {workspace} {tmpdir} {home}
    /// {cache} for the cell's paths (repeatable; canary-proved like the others; see README).
    #[arg(long = "custom-sandbox", value_name = "NAME=PREFIX")]
    custom_sandboxes: Vec<String>,
    /// Comma-separated scenarios, S1…S7 (default: all).
    #[arg(long, value_enum, value_delimiter = ',', ignore_case = true)]
    scenario: Option<Vec<ScenarioId>>,
    /// Comma-separated cache states (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    state: Option<Vec<CacheState>>,
    /// Cells run at once (default: the number of CPUs).
    #[arg(long)]
    jobs: Option<usize>,
    /// Warm a cache in every cell, as before warm snapshots (slower; for comparison, or to
    /// rule the copies out when a cell looks wrong).
    #[arg(long)]
    warm_per_cell: bool,
    /// Print the full grid (scenario × state rows, sandbox columns) instead of the summary;
    /// it is always written to matrix.md and matrix.txt.
    #[arg(long)]
    grid: bool,
    /// Where to write the reports (default: target/uvfix/matrix; for another base than the
    /// default, target/uvfix/bases/<VERSION>/matrix).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Build pristine and every prefix of the stack, run the cells with each, and check what
    /// each step turns green (steps.md, steps/<id>.md, steps.json).
    #[arg(long, conflicts_with_all = ["uvs", "official", "grid"])]
    steps: bool,
    /// Run the matrix for every base, one after the other: patches/series.toml's release, then
    /// each patches/<VERSION>/. Each base's reports go to its own directory
    /// (target/uvfix/bases/<VERSION>/matrix for the others); the summaries are printed in turn,
    /// then the bases side by side (target/uvfix/matrix/bases.md). Fails if another base's
    /// patched build does not pass a cell the first base's patched build passes.
    #[arg(long, conflicts_with_all = ["uvs", "official", "out", "custom_sandboxes"])]
    all_bases: bool,
}

/// `--all-bases`: the matrix of each base in turn, then the bases side by side
/// (`bases.md` beside the default base's reports). Fails if any base had a FAIL cell, or if
/// another base's patched build does not pass a cell the default base's patched build passes.
pub fn run_bases(paths: &Paths, args: MatrixArgs, helper: &Path) -> Result<()> {
    let mut failed = Vec::new();
    let mut side_by_side = Vec::new();
    for base in paths.bases()? {
        let paths = paths.with_base(Some(&base))?;
        println!("\n== base {base} ==");
        let json = paths.base_work().join("matrix").join("matrix.json");
        // A base that stops before its cells ran must not be compared by an older run's cells.
        match fs_err::remove_file(&json) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
            _ => {}
        }
        let args = MatrixArgs {
            all_bases: false,
            ..args.clone()
        };
        if let Err(err) = run(&paths, args, helper) {
            eprintln!("uvfix: base {base}: {err:#}");
            failed.push(base.clone());
        }
        match fs_err::read_to_string(&json) {
            Ok(text) => side_by_side.push(report::BaseResults {
                base,
                results: serde_json::from_str(&text)
                    .with_context(|| format!("reading {}", json.display()))?,
            }),
            Err(_) => eprintln!("uvfix: base {base}: no cells ran; not in the side-by-side table"),
        }
    }
    let lost = report::cells_lost_by_other_bases(&side_by_side);
    if side_by_side.len() > 1 {
        let table = report::render_bases(&side_by_side);
        let file = paths
            .with_base(None)?
            .work()
            .join("matrix")
            .join("bases.md");
        fs_err::create_dir_all(file.parent().expect("a file in a directory"))?;
        let mut text = format!("# The bases side by side\n\n{table}");
        if !lost.is_empty() {
            text.push_str("\nCells the first base's patched build passes and these do not:\n\n");
            text.extend(lost.iter().map(|cell| format!("- {cell}\n")));
        }
        fs_err::write(&file, &text)?;
        println!("\n== the bases side by side ==\n{table}");
        eprintln!("uvfix: wrote {}", file.display());
    }
    for cell in &lost {
        eprintln!("uvfix: passes on the first base, not here: {cell}");
    }
    if !failed.is_empty() {
        bail!("the matrix failed for base(s) {}", failed.join(", "));
    }
    if !lost.is_empty() {
        bail!(
            "{} cell(s) the first base's patched build passes do not pass on another base",
            lost.len()
        );
    }
    Ok(())
}

/// `BUILD=PATH` → a checked uv under test.
fn parse_uv(spec: &str) -> Result<UvUnderTest, String> {
    let (build, path) = spec
        .split_once('=')
        .ok_or("--uv takes BUILD=PATH, e.g. official-0.13.9=/path/to/uv")?;
    let build: Build = build.parse().map_err(|e| format!("{e}"))?;
    let path = fs_err::canonicalize(path).map_err(|e| e.to_string())?;
    let uv = UvUnderTest::new(build, path);
    uv.check()?;
    Ok(uv)
}

/// Cells run at once: `--jobs`, else the number of CPUs.
pub fn jobs(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
        .max(1)
}

pub fn run(paths: &Paths, args: MatrixArgs, helper: &Path) -> Result<()> {
    if args.all_bases {
        return run_bases(paths, args, helper);
    }
    let mut custom = Vec::new();
    for spec in &args.custom_sandboxes {
        custom.push(uvfix_sandbox::custom::register(spec)?);
    }
    let sandboxes = match args.sandbox {
        Some(names) => Some(
            names
                .iter()
                .map(|name| {
                    Sandbox::from_name(name).with_context(|| format!("unknown sandbox `{name}`"))
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        None => (!custom.is_empty()).then(|| [Sandbox::ALL, &custom].concat()),
    };
    let filter = Filter {
        sandboxes,
        scenarios: args.scenario,
        states: args.state,
    };
    let out = args.out.unwrap_or_else(|| paths.base_work().join("matrix"));
    if args.steps {
        return crate::steps::run(paths, &filter, jobs(args.jobs), &out, helper);
    }
    let mut uvs = Vec::new();
    if args.uvs.is_empty() {
        for (variant, bins) in Variant::ALL
            .iter()
            .zip(builder::ensure(paths, &Variant::ALL)?)
        {
            let build: Build = variant.name().parse()?;
            uvs.push(UvUnderTest::new(build, bins.uv));
        }
    }
    uvs.extend(args.uvs);
    if args.official {
        uvs.push(
            UvUnderTest::official()
                .map_err(anyhow::Error::msg)?
                .with_context(|| format!("--official needs ${OFFICIAL_UV_ENV}"))?,
        );
    }
    let cells = plan::cells(&uvs, &filter);
    // As in the test suite: a required sandbox that cannot run fails the job, not a column of skips.
    let required = Sandbox::required();
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
    let (results, cost) = run_cells(&cells, jobs(args.jobs), helper, args.warm_per_cell)?;

    let files = report::write_reports(&results, &out)?;
    if args.grid {
        print!("{}", report::render_table(&results));
    } else {
        print!("{}", report::render_summary(&results));
    }
    println!("{}", cost.line());
    let summary = report::Summary::of(&results);
    // Relative to the repository, so the line fits the summary's width.
    let dir = files.markdown.parent().unwrap_or(&out);
    let dir = dir.strip_prefix(&paths.root).unwrap_or(dir).display();
    eprintln!("uvfix: reports in {dir} (matrix.md for a job summary, matrix.json, junit.xml)");
    if summary.fail > 0 {
        bail!("{} cell(s) FAIL", summary.fail);
    }
    Ok(())
}

/// Run `cells` on `jobs` threads; the results in the cells' order, and what they cost.
///
/// Unless `warm_per_cell`, the cells share a store of warm snapshots for this run (see
/// `uvfix_scenario::cell::CellOptions::store`), removed afterwards.
pub fn run_cells(
    cells: &[Planned],
    jobs: usize,
    helper: &Path,
    warm_per_cell: bool,
) -> Result<(Vec<CellResult>, Cost)> {
    let store = if warm_per_cell {
        None
    } else {
        Some(new_store(&std::env::temp_dir()).context("creating the store of warm caches")?)
    };
    let opts = CellOptions {
        store: store.as_ref().map(|s| s.path().to_owned()),
        reference: reference(cells),
        ..CellOptions::default()
    };
    eprintln!(
        "uvfix: running {} cells, {jobs} at a time, {}",
        cells.len(),
        if warm_per_cell {
            "each warming its own cache"
        } else {
            "each (uv, scenario, state) warmed once and copied per cell"
        }
    );
    let order = execution_order(cells);
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(cells.len()));
    // Claude Code's sandbox runtime starts two socat bridges per run and waits at most
    // ~0.6 s for them; its cells take turns to keep that margin on a small machine.
    let one_at_a_time = Mutex::new(());
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let done = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&index) = order.get(done) else { break };
                    let cell = &cells[index];
                    let _turn = (cell.sandbox == Sandbox::SandboxRuntime
                        && cell.unavailable.is_none())
                    .then(|| one_at_a_time.lock().unwrap_or_else(|e| e.into_inner()));
                    let result = run_cell_with(
                        &cell.uv,
                        cell.sandbox,
                        cell.scenario,
                        cell.state,
                        helper,
                        &opts,
                    );
                    eprintln!(
                        "[{}/{}] {} {} {:.1}s",
                        done + 1,
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
    let wall = start.elapsed();
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(index, _)| *index);
    let results: Vec<CellResult> = results.into_iter().map(|(_, r)| r).collect();
    let cost = Cost::of(&results, wall);
    Ok((results, cost))
}

/// The build every writable cell's writes are compared with (see `uvfix_scenario::writeset`):
/// the run's pristine build, else the one `$UVFIX_UV_PRISTINE` names (a job that tests one
/// build, `ci/job.sh none patched`, still has pristine's binary at hand).
fn reference(cells: &[Planned]) -> Option<UvUnderTest> {
    cells
        .iter()
        .map(|c| &c.uv)
        .find(|uv| uv.build == Build::Pristine)
        .cloned()
        .or_else(|| {
            let path = std::env::var_os(builder::env_var(Variant::Pristine))?;
            let uv = UvUnderTest::new(Build::Pristine, path);
            uv.check().is_ok().then_some(uv)
        })
}

/// The order to run `cells` in: cells of one (uv, scenario, state) share a slot and take
/// turns, so they are spread out. Round `r` runs the `r`-th cell of every key, each key's
/// cells rotated by its position, so that a round mixes sandboxes (srt's cells, which run one
/// at a time, do not bunch up) and the first round warms every key.
pub fn execution_order(cells: &[Planned]) -> Vec<usize> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (index, cell) in cells.iter().enumerate() {
        let key = format!("{}/{}/{}", cell.uv.build, cell.scenario, cell.state);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(index),
            None => groups.push((key, vec![index])),
        }
    }
    let rounds = groups.iter().map(|(_, m)| m.len()).max().unwrap_or(0);
    let mut order = Vec::with_capacity(cells.len());
    for round in 0..rounds {
        for (position, (_, members)) in groups.iter().enumerate() {
            if round < members.len() {
                order.push(members[(round + position) % members.len()]);
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_of_one_key_are_spread_and_every_key_warms_in_the_first_round() {
        let uvs = [UvUnderTest::new(Build::Patched, "/nonexistent/uv")];
        let filter = Filter {
            sandboxes: Some(vec![Sandbox::None, Sandbox::RoHome, Sandbox::Landlock]),
            scenarios: Some(vec![ScenarioId::S1, ScenarioId::S2]),
            states: Some(vec![CacheState::Warm, CacheState::LockMissing]),
        };
        let cells = plan::cells(&uvs, &filter);
        let order = execution_order(&cells);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..cells.len()).collect::<Vec<_>>(),
            "each cell once"
        );
        let key = |i: usize| (cells[i].scenario, cells[i].state);
        for pair in order.windows(2) {
            assert_ne!(key(pair[0]), key(pair[1]), "neighbours share a slot");
        }
        let first_round: Vec<_> = order[..4].iter().map(|&i| key(i)).collect();
        assert_eq!(first_round.len(), 4);
        let sandboxes: std::collections::BTreeSet<_> =
            order[..4].iter().map(|&i| cells[i].sandbox).collect();
        assert!(sandboxes.len() > 1, "a round mixes sandboxes");
    }
}
