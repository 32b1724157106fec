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
use uvfix_run::RunStore;
use uvfix_sandbox::Sandbox;
use uvfix_scenario::Build;
use uvfix_scenario::cell::{
    CellOptions, CellResult, OFFICIAL_UV_ENV, UvUnderTest, run_cell_with, store_peak,
};
use uvfix_scenario::plan::{self, Filter, Planned};
use uvfix_scenario::report::{self, Cost};
use uvfix_scenario::{CacheState, ScenarioId};

#[derive(Args, Clone)]
#[command(after_help = "\
Exit status: 0 when no cell FAILs. A run that names what to test (--sandbox, --custom-sandbox,
--scenario, --state, --uv, --official) and in which every cell is skipped exits 1 with the skip
reasons: it tested nothing. The default run (every sandbox) exits 0 with its skips listed.
Interrupted (SIGINT, SIGTERM, SIGHUP): the running cells are stopped, what they prepared is
undone (immutable bits, ownership, containers), the run's store is removed, and the exit status
is 128 + the signal. A run killed with SIGKILL is cleaned up by the next one.")]
pub struct MatrixArgs {
    /// A uv to test instead of the built ones, as BUILD=PATH (repeatable; `uvx` must sit
    /// next to it). BUILD says what it is, and that decides its expectations: `patched`,
    /// `upstream` (a checkout with the series) and a whole stack `step-4-of-4` must pass;
    /// `pristine`, `official-<version>` and a partial `step-<n>-of-<m>` are unfixed.
    #[arg(long = "uv", value_name = "BUILD=PATH", value_parser = parse_uv, help_heading = "Builds")]
    uvs: Vec<UvUnderTest>,
    /// Also test the official binary at $UVFIX_UV (see ci/fetch-official-uv.sh).
    #[arg(long, help_heading = "Builds")]
    official: bool,
    /// Comma-separated sandboxes (default: all), the names of `--custom-sandbox`es included.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "NAME",
        value_parser = SandboxName,
        help_heading = "Cells"
    )]
    sandbox: Option<Vec<String>>,
    /// A sandbox of your own: NAME[:ERRNO]=COMMAND PREFIX, with {workspace} {tmpdir} {home}
    /// {cache} for the cell's paths (repeatable; canary-proved like the others; see
    /// docs/matrix.md).
    #[arg(
        long = "custom-sandbox",
        value_name = "NAME=PREFIX",
        help_heading = "Cells"
    )]
    custom_sandboxes: Vec<String>,
    /// Comma-separated scenarios, S1–S9 (default: all).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        ignore_case = true,
        help_heading = "Cells"
    )]
    scenario: Option<Vec<ScenarioId>>,
    /// Comma-separated cache states (default: all).
    #[arg(long, value_enum, value_delimiter = ',', help_heading = "Cells")]
    state: Option<Vec<CacheState>>,
    /// Cells run at once (default: the number of CPUs).
    #[arg(short, long, value_name = "N", help_heading = "Running")]
    jobs: Option<usize>,
    /// Warm a cache in every cell instead of once per (uv, scenario, state) and a copy per
    /// cell (slower; for comparison, or to rule the copies out when a cell looks wrong).
    #[arg(long, help_heading = "Running")]
    warm_per_cell: bool,
    /// Print the full grid (scenario × state rows, sandbox columns) instead of the summary;
    /// it is always written to matrix.md and matrix.txt.
    #[arg(long, help_heading = "Reports")]
    grid: bool,
    /// Where to write the reports (default: target/uvfix/matrix; for another base than the
    /// default, target/uvfix/bases/<VERSION>/matrix).
    #[arg(long, value_name = "DIR", help_heading = "Reports")]
    out: Option<PathBuf>,
    /// Build pristine and every prefix of the stack, run the cells with each, and check what
    /// each step turns green (steps.md, steps/<id>.md, steps.json).
    #[arg(long, conflicts_with_all = ["uvs", "official", "grid"], help_heading = "Modes")]
    steps: bool,
    /// Run the matrix for every base, one after the other: patches/series.toml's release, then
    /// each patches/<VERSION>/. Each base's reports go to its own directory
    /// (target/uvfix/bases/<VERSION>/matrix for the others); the summaries are printed in turn,
    /// then the bases side by side (target/uvfix/matrix/bases.md). Fails if another base's
    /// patched build does not pass a cell the first base's patched build passes.
    #[arg(
        long,
        conflicts_with_all = ["uvs", "official", "out", "custom_sandboxes"],
        help_heading = "Modes"
    )]
    all_bases: bool,
}

/// `--sandbox` values: a built-in sandbox, which the help lists, or the name of a
/// `--custom-sandbox`, which only the run can check (it depends on the other flag), so any name
/// parses here and an unknown one is refused by [`run`], naming it.
#[derive(Clone)]
struct SandboxName;

impl clap::builder::TypedValueParser for SandboxName {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            Sandbox::ALL
                .iter()
                .map(|s| clap::builder::PossibleValue::new(s.name())),
        ))
    }
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
            if err.downcast_ref::<uvfix_run::Interrupted>().is_some() {
                return Err(err);
            }
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
    // `build` and `uv-path` still take the old `step-N` (they know the stack); here the build
    // must say how large its stack is, or its expectations are unknown.
    if build.starts_with("step-") && !build.contains("-of-") {
        return Err(format!(
            "`{build}`: a step build is spelled step-<n>-of-<m> (m: the steps in its stack), as \
             in the reports, e.g. {build}-of-8 for a stack of 8"
        ));
    }
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
    let explicit = Explicit::of(&args);
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
    explicit.check_sandboxes(&filter)?;
    let out = args.out.unwrap_or_else(|| paths.base_work().join("matrix"));
    if args.steps {
        return crate::steps::run(paths, &filter, jobs(args.jobs), &out, helper, &explicit);
    }
    let mut uvs = Vec::new();
    if args.uvs.is_empty() {
        // As `cargo xtask build` and the test suite: a build given in UVFIX_UV_PATCHED /
        // UVFIX_UV_PRISTINE is used as it is, the others are built.
        let given = |v: Variant| {
            std::env::var_os(builder::env_var(v))
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
        };
        let missing: Vec<Variant> = Variant::ALL
            .iter()
            .copied()
            .filter(|v| given(*v).is_none())
            .collect();
        let mut built = if missing.is_empty() {
            Vec::new()
        } else {
            builder::ensure(paths, &missing)?
        }
        .into_iter();
        for &variant in &Variant::ALL {
            let build: Build = variant.name().parse()?;
            let uv = match given(variant) {
                Some(path) => {
                    eprintln!("uvfix: {variant} uv substituted by {}", path.display());
                    let uv = UvUnderTest::new(build, path);
                    uv.check()
                        .map_err(|err| anyhow::anyhow!("${}: {err}", builder::env_var(variant)))?;
                    uv
                }
                None => {
                    UvUnderTest::new(build, built.next().expect("one build per missing one").uv)
                }
            };
            uvs.push(uv);
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
    explicit.check_ran(&results)
}

/// What the user named on the command line. A run they asked for by name that tests nothing
/// is an error (like nextest's `--no-tests=fail`): a script or CI job naming a sandbox that is
/// missing must not go green. The implicit default run, every sandbox, most of them skipped on
/// a bare machine, is not.
pub struct Explicit(Vec<&'static str>);

impl Explicit {
    fn of(args: &MatrixArgs) -> Self {
        let named = [
            ("--sandbox", args.sandbox.is_some()),
            ("--custom-sandbox", !args.custom_sandboxes.is_empty()),
            ("--scenario", args.scenario.is_some()),
            ("--state", args.state.is_some()),
            ("--uv", !args.uvs.is_empty()),
            ("--official", args.official),
        ];
        Self(
            named
                .into_iter()
                .filter_map(|(flag, given)| given.then_some(flag))
                .collect(),
        )
    }

    fn asked(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.0.join(", "))
    }

    /// Before anything is built: every sandbox named is unavailable here.
    fn check_sandboxes(&self, filter: &Filter) -> Result<()> {
        let (Some(asked), Some(sandboxes)) = (self.asked(), &filter.sandboxes) else {
            return Ok(());
        };
        let reasons: Vec<String> = sandboxes
            .iter()
            .map(|s| s.skip_reason())
            .collect::<Option<_>>()
            .unwrap_or_default();
        if reasons.is_empty() || reasons.len() < sandboxes.len() {
            return Ok(());
        }
        bail!(
            "nothing to test: every sandbox asked for ({asked}) is unavailable here:\n  {}",
            reasons.join("\n  ")
        )
    }

    /// After the run: no cell of an explicit request ran.
    pub fn check_ran(&self, results: &[CellResult]) -> Result<()> {
        self.check_outcomes(results.iter().map(|r| &r.outcome))
    }

    fn check_outcomes<'a>(
        &self,
        outcomes: impl IntoIterator<Item = &'a uvfix_scenario::Outcome>,
    ) -> Result<()> {
        let Some(asked) = self.asked() else {
            return Ok(());
        };
        let mut reasons: Vec<&str> = Vec::new();
        for outcome in outcomes {
            match outcome {
                uvfix_scenario::Outcome::Skip(why) => {
                    if !reasons.contains(&why.as_str()) {
                        reasons.push(why);
                    }
                }
                _ => return Ok(()),
            }
        }
        if reasons.is_empty() {
            bail!("nothing to test: the cells asked for ({asked}) are none");
        }
        bail!(
            "nothing was tested: every cell asked for ({asked}) was skipped:\n  {}",
            reasons.join("\n  ")
        )
    }
}

/// Run `cells` on `jobs` threads; the results in the cells' order, and what they cost.
///
/// Everything the cells put on disk lives in this run's store (`uvfix_run::RunStore`): unless
/// `warm_per_cell`, the warm snapshots and slots the cells share (see
/// `uvfix_scenario::cell::CellOptions::store`), else every cell's own root. The store is
/// removed before this returns, also when the run was interrupted (then the result is
/// `uvfix_run::Interrupted`) or a cell failed.
pub fn run_cells(
    cells: &[Planned],
    jobs: usize,
    helper: &Path,
    warm_per_cell: bool,
) -> Result<(Vec<CellResult>, Cost)> {
    uvfix_run::interrupt::check()?;
    let store = RunStore::create(&std::env::temp_dir()).context("creating the run's store")?;
    let opts = if warm_per_cell {
        CellOptions {
            temp_parent: Some(store.path().to_owned()),
            store: None,
            reference: reference(cells),
            ..CellOptions::default()
        }
    } else {
        CellOptions {
            store: Some(store.path().to_owned()),
            reference: reference(cells),
            ..CellOptions::default()
        }
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
                    // Interrupted: no new cell (the running ones were stopped).
                    if uvfix_run::interrupt::interrupted().is_some() {
                        break;
                    }
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
    let mut cost = Cost::of(&results, wall);
    cost.store_peak_bytes = store_peak(store.path());
    let closed = store.close();
    uvfix_run::interrupt::check()?;
    closed?;
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
    use uvfix_scenario::Outcome;

    #[test]
    fn an_explicit_request_that_ran_nothing_fails_with_its_reasons() {
        let skipped = [
            Outcome::Skip("sandbox `x` unavailable here: no x".into()),
            Outcome::Skip("sandbox `x` unavailable here: no x".into()),
        ];
        let named = Explicit(vec!["--sandbox"]);
        let err = named.check_outcomes(&skipped).unwrap_err().to_string();
        assert!(err.contains("nothing was tested"), "{err}");
        assert!(err.contains("(--sandbox)"), "{err}");
        assert_eq!(err.matches("no x").count(), 1, "reasons once each: {err}");
        let err = named.check_outcomes(&[]).unwrap_err().to_string();
        assert!(err.contains("are none"), "{err}");
        // One cell that ran is enough; the default run is never held to it.
        let ran = [skipped[0].clone(), Outcome::ExpectedFail];
        assert!(named.check_outcomes(&ran).is_ok());
        assert!(Explicit(Vec::new()).check_outcomes(&skipped).is_ok());
    }

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
