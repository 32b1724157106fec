//! `cargo xtask matrix`: build both variants, run every cell, print the table, write the
//! reports (Markdown for a GitHub job summary, JSON, JUnit) under `target/uvfix/matrix/`.
//! Exits non-zero if any cell is FAIL. The cells are the test suite's cells
//! (`uvfix_scenario::plan`), run here on a small thread pool (`uvfix_scenario::pool`) instead
//! of by nextest.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use uvfix_pipeline::Manifest;
use uvfix_pipeline::Paths;
use uvfix_pipeline::builder::{self, Variant};
use uvfix_sandbox::Sandbox;
use uvfix_scenario::Build;
use uvfix_scenario::cell::{OFFICIAL_UV_ENV, UvUnderTest};
use uvfix_scenario::explicit::Explicit;
use uvfix_scenario::plan::{self, Filter};
use uvfix_scenario::pool::{jobs, run_cells};
use uvfix_scenario::report;
use uvfix_scenario::stepwise::{self, StackStep};
use uvfix_scenario::{CacheState, ScenarioId};

#[derive(Args, Clone)]
#[command(after_help = "\
Exit status: 0 when no cell FAILs. A run that names what to test (--sandbox, --custom-sandbox,
--scenario, --state, --uv, --official) and in which every cell is skipped exits 1 with the skip
reasons: it tested nothing. The default run (every sandbox) exits 0 with its skips listed.
Interrupted (SIGINT, SIGTERM, SIGHUP): the running cells are stopped, what they prepared is
undone (immutable bits, ownership, containers), the run's store is removed, and the exit status
is 128 + the signal. A run killed with SIGKILL is cleaned up by the next one.")]
pub(crate) struct MatrixArgs {
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
    /// Comma-separated scenarios, S1–S10 (default: all).
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
fn run_bases(paths: &Paths, args: MatrixArgs, helper: &Path) -> Result<()> {
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

pub(crate) fn run(paths: &Paths, args: MatrixArgs, helper: &Path) -> Result<()> {
    if args.all_bases {
        return run_bases(paths, args, helper);
    }
    let explicit = explicit(&args);
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
        let manifest = Manifest::load(&paths.patches())?;
        let steps = stack_steps(&manifest);
        // A stack the per-step data does not know stops the run before anything is built.
        stepwise::check_stack(&steps)?;
        let uvs = stack_under_test(paths, &manifest)?;
        let pristine = builder::given(Variant::Pristine);
        let running = stepwise::Running {
            jobs: jobs(args.jobs),
            helper,
            pristine: pristine.as_deref(),
        };
        return stepwise::run(&steps, &uvs, &filter, &running, &out, &explicit);
    }
    let mut uvs = Vec::new();
    if args.uvs.is_empty() {
        // As `cargo xtask build` and the test suite: a build given in UVFIX_UV_PATCHED /
        // UVFIX_UV_PRISTINE is used as it is, the others are built.
        let given = builder::given;
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
    let pristine = builder::given(Variant::Pristine);
    let (results, cost) = run_cells(
        &cells,
        jobs(args.jobs),
        helper,
        args.warm_per_cell,
        pristine.as_deref(),
    )?;

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

/// What the user named on the command line ([`Explicit`]).
fn explicit(args: &MatrixArgs) -> Explicit {
    Explicit::of([
        ("--sandbox", args.sandbox.is_some()),
        ("--custom-sandbox", !args.custom_sandboxes.is_empty()),
        ("--scenario", args.scenario.is_some()),
        ("--state", args.state.is_some()),
        ("--uv", !args.uvs.is_empty()),
        ("--official", args.official),
    ])
}

/// The stack's steps, as `--steps` compares them.
fn stack_steps(manifest: &Manifest) -> Vec<StackStep> {
    manifest
        .steps
        .iter()
        .map(|step| StackStep {
            number: step.number,
            id: step.id.clone(),
            proposed: step.status == uvfix_pipeline::manifest::Status::Proposed,
        })
        .collect()
}

/// Pristine, every prefix of the stack and the whole stack, as builds under test. A build
/// already in `UVFIX_UV_<VARIANT>` (`UVFIX_UV_STEP_3`, …) is used as it is, as `cargo xtask
/// build` does; the rest are built.
fn stack_under_test(paths: &Paths, manifest: &Manifest) -> Result<Vec<UvUnderTest>> {
    let variants = Variant::stack(manifest);
    let given: Vec<Option<PathBuf>> = variants
        .iter()
        .map(|v| std::env::var_os(builder::env_var(*v)).map(PathBuf::from))
        .collect();
    let missing: Vec<Variant> = variants
        .iter()
        .zip(&given)
        .filter(|(_, g)| g.is_none())
        .map(|(v, _)| *v)
        .collect();
    let mut built = builder::ensure(paths, &missing)?.into_iter().map(|b| b.uv);
    let of = manifest.steps.len();
    Ok(variants
        .iter()
        .zip(given)
        .map(|(variant, given)| {
            let build = match *variant {
                Variant::Pristine => Build::Pristine,
                Variant::Patched => Build::Patched,
                Variant::Step(applied) => Build::Step { applied, of },
            };
            let uv = given.unwrap_or_else(|| built.next().expect("one build per missing one"));
            UvUnderTest::new(build, uv)
        })
        .collect())
}
