//! `cargo xtask`: the fixture's automation, as a plain Rust program (see ARCHITECTURE.md).

#[cfg(unix)]
mod bench;
#[cfg(unix)]
mod bench_matrix;
mod fmt_check;
#[cfg(unix)]
mod matrix;
#[cfg(unix)]
mod steps;
mod unit_tests;
mod upstream;
mod user;

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use uvfix_pipeline::builder::{self, Variant};
use uvfix_pipeline::{Manifest, Paths, fetch, refresh};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Patched-uv fixture automation")]
struct Cli {
    /// The base to work on: a uv release with its own stack (`patches/<VERSION>/`)
    /// [default: $UVFIX_BASE, else patches/series.toml's release].
    #[arg(long, global = true, value_name = "VERSION")]
    base: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch and verify the pinned crates, extract them, apply the stack (every prefix).
    Vendor {
        /// Discard local edits in the extracted crates.
        #[arg(long)]
        force: bool,
    },
    /// Build uv (and uvx): `patched`, `pristine`, `step-N`, `all` (patched and pristine) or
    /// `steps` (pristine and every prefix of the stack).
    Build {
        #[arg(default_value = "all")]
        variant: String,
    },
    /// Print the absolute path of a variant's `uv`, building it first if needed.
    UvPath { variant: String },
    /// Build the sandbox helper (Landlock wrapper, canary) and print its path; under a
    /// nextest setup script, hand it to the tests as $UVFIX_SANDBOX_HELPER.
    SandboxHelper,
    /// Patch maintenance.
    Patch {
        #[command(subcommand)]
        command: PatchCommand,
    },
    /// Run the unit tests of the patched crates (the ones the stack adds included), as a
    /// non-root user: permission bits do not bind root.
    TestPatched,
    /// Create a store of warm caches for one test run and print its path; under a nextest
    /// setup script, hand it to the tests as $UVFIX_CELL_STORE. The store lives as long as the
    /// nextest run (run by hand: the calling shell); a keeper process holds it and removes it
    /// then. Stores that runs killed earlier left behind are cleaned first.
    #[cfg(unix)]
    CellStore {
        /// Only clean the stores runs that died left behind (this user's), and create none. A
        /// store a live run holds is left alone and named. A store is ~0.8 GB.
        #[arg(long)]
        clear: bool,
    },
    /// The keeper of a store handed over by `cell-store` (internal): holds its lock until
    /// the process `--watch` is gone, then cleans it.
    #[cfg(unix)]
    #[command(hide = true)]
    KeepStore {
        #[arg(long)]
        watch: u32,
        #[arg(long)]
        start: Option<u64>,
        store: std::path::PathBuf,
    },
    /// The main job: build patched + pristine uv, run the sandbox matrix, print the table.
    #[cfg(unix)]
    Matrix(matrix::MatrixArgs),
    /// Benchmarks: warm-run time patched vs pristine, and write syscalls on the cache.
    #[cfg(unix)]
    Bench(bench::BenchArgs),
    /// Take the stack upstream: export it, check it against astral-sh/uv, forward-port it.
    Upstream {
        #[command(subcommand)]
        command: upstream::UpstreamCommand,
    },
}

#[derive(Subcommand)]
enum PatchCommand {
    /// Regenerate a step's patch from the crates of its build
    /// (`target/uvfix/build/step-N/crates-step-N/`, `patched/` for the last step).
    Refresh {
        /// A step id (`markers`) or number (`1`).
        step: String,
    },
    /// Print where to edit a step: the crates directory of the build that ends with it.
    Edit { step: String },
    /// Check that every Rust file the stack touches is as rustfmt leaves it (uv's CI runs
    /// `cargo fmt --check`), in the vendored patched tree.
    Fmt,
}

/// Resolve a variant argument against the stack.
fn variants(manifest: &Manifest, arg: &str) -> Result<Vec<Variant>> {
    let len = manifest.steps.len();
    match arg {
        "all" => Ok(Variant::ALL.to_vec()),
        "steps" => Ok(Variant::stack(manifest)),
        _ => match Variant::from_name(arg) {
            Some(Variant::Step(n)) if n >= len => bail!(
                "the stack has {len} steps: `step-{n}` is `patched`, and steps are 1 to {}",
                len.saturating_sub(1)
            ),
            Some(variant) => Ok(vec![variant]),
            None => bail!(
                "unknown variant `{arg}`: expected patched, pristine, step-1 … step-{}, all or steps",
                len.saturating_sub(1)
            ),
        },
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            // Interrupted: 128 + the signal, as a shell reports it.
            #[cfg(unix)]
            if let Some(interrupted) = err.downcast_ref::<uvfix_run::Interrupted>() {
                return ExitCode::from(interrupted.exit_code());
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    #[cfg(unix)]
    match &cli.command {
        Command::KeepStore {
            watch,
            start,
            store,
        } => return Ok(uvfix_run::keeper::keep(store, *watch, *start)?),
        // The runs that put things on the host: a signal stops them cleanly (`uvfix_run`).
        Command::Matrix(_) | Command::Bench(_) => uvfix_run::interrupt::install()?,
        _ => {}
    }
    let mut paths = Paths::discover()?;
    if let Some(base) = cli.base.as_deref() {
        paths = paths.with_base(Some(base))?;
    }
    match cli.command {
        Command::Vendor { force } => {
            let _lock = uvfix_pipeline::lock(&paths)?;
            let manifest = Manifest::load(&paths.patches())?;
            let located = fetch::locate(&paths, &manifest)?;
            for variant in Variant::stack(&manifest) {
                let outcome = builder::prepare(&paths, &manifest, &located, variant, force)?;
                builder::report_outcome(variant, outcome);
            }
        }
        Command::Build { variant } => build(&paths, &variant)?,
        Command::SandboxHelper => {
            let helper = builder::build_helper(&paths)?;
            println!("{}", helper.display());
            hand_to_tests(&format!("{}={}\n", builder::HELPER_ENV, helper.display()))?;
        }
        Command::UvPath { variant } => {
            let variant = variants(&Manifest::load(&paths.patches())?, &variant)?;
            let [variant] = variant[..] else {
                bail!("uv-path takes one variant: patched, pristine or step-N");
            };
            println!("{}", builder::uv_path(&paths, variant)?.display());
        }
        Command::Patch { command } => patch(&paths, command)?,
        Command::TestPatched => unit_tests::run(&paths)?,
        #[cfg(unix)]
        Command::CellStore { clear } => cell_store(clear)?,
        #[cfg(unix)]
        Command::KeepStore { .. } => unreachable!("handled above"),
        #[cfg(unix)]
        Command::Matrix(args) => matrix::run(&paths, args, &builder::build_helper(&paths)?)?,
        #[cfg(unix)]
        Command::Bench(args) => bench::run(&paths, &args, &builder::build_helper(&paths)?)?,
        Command::Upstream { command } => upstream::run(&paths, command)?,
    }
    Ok(())
}

/// `cargo xtask build`: build the variants not substituted through `UVFIX_UV_<VARIANT>`,
/// print each variant's uv and hand the paths to the tests.
fn build(paths: &Paths, variant: &str) -> Result<()> {
    let variant = variants(&Manifest::load(&paths.patches())?, variant)?;
    // A path already in UVFIX_UV_PATCHED / UVFIX_UV_PRISTINE substitutes that build
    // (e.g. the pristine binary as "patched", to see the suite fail, or an upstream
    // checkout's uv); the rest are built.
    let given = |v: &Variant| {
        std::env::var_os(builder::env_var(*v))
            .filter(|p| !p.is_empty())
            .map(std::path::PathBuf::from)
    };
    let to_build: Vec<Variant> = variant
        .iter()
        .copied()
        .filter(|v| given(v).is_none())
        .collect();
    let mut built = builder::ensure(paths, &to_build)?.into_iter().map(|b| b.uv);
    let mut lines = String::new();
    for v in &variant {
        let uv = match given(v) {
            Some(path) => {
                eprintln!("uvfix: {} uv substituted by {}", v.name(), path.display());
                path
            }
            None => built.next().expect("one build per variant"),
        };
        println!("{}\t{}", v.name(), uv.display());
        lines.push_str(&format!("{}={}\n", builder::env_var(*v), uv.display()));
    }
    hand_to_tests(&lines)
}

/// `cargo xtask cell-store`: a fresh store of warm caches for this run, handed to a keeper
/// that holds it for the nextest run's lifetime (`uvfix_run::keeper`); stores of runs that
/// died are cleaned first. With `clear`: only that cleaning.
#[cfg(unix)]
fn cell_store(clear: bool) -> Result<()> {
    use uvfix_scenario::cell::CELL_STORE_ENV;
    let temp = std::env::temp_dir();
    if clear {
        let swept = uvfix_run::sweep(&temp)?;
        for swept in &swept {
            eprintln!("uvfix: {}", swept.line);
        }
        if swept.is_empty() {
            eprintln!("uvfix: no store of a dead run in {}", temp.display());
        }
        return Ok(());
    }
    let store = uvfix_run::RunStore::create(&temp)?;
    let store = uvfix_run::keeper::hand_over(
        store,
        &std::env::current_exe()?,
        &["keep-store"],
        uvfix_run::keeper::owner(),
    )?;
    println!("{}", store.display());
    hand_to_tests(&format!("{CELL_STORE_ENV}={}\n", store.display()))
}

fn patch(paths: &Paths, command: PatchCommand) -> Result<()> {
    let _lock = uvfix_pipeline::lock(paths)?;
    let manifest = Manifest::load(&paths.patches())?;
    let len = manifest.steps.len();
    match command {
        PatchCommand::Fmt => fmt_check::run(paths, &manifest)?,
        PatchCommand::Edit { step } => {
            let step = refresh::select(&manifest, &step)?;
            let dir = paths.crates_dir(Variant::prefix(step.number, len));
            if !dir.is_dir() {
                bail!(
                    "{} does not exist; run `cargo xtask vendor` first",
                    dir.display()
                );
            }
            println!("{}", dir.display());
        }
        PatchCommand::Refresh { step } => {
            // A forwarded base's stack is generated: an edit recorded here would be lost on
            // the next `forward`, so it is recorded as that step's hand work instead.
            if manifest.forward.is_some() {
                bail!(
                    "the stack of this base is written by `cargo xtask upstream forward --base …`; \
                     record the edit with `cargo xtask upstream forward --base … --record {step}`"
                );
            }
            let step = refresh::select(&manifest, &step)?;
            let variant = Variant::prefix(step.number, len);
            let located = fetch::locate(paths, &manifest)?;
            let edited = paths.crates_dir(variant);
            let changed =
                refresh::refresh(&manifest, &located.sources, step, &edited, &paths.work())?;
            eprintln!(
                "uvfix: {} {}",
                step.path.display(),
                if changed { "regenerated" } else { "unchanged" }
            );
            // The edited tree is now exactly what the stack produces: record that. The builds
            // above this step pick up the new patch when they are next prepared.
            let manifest = Manifest::load(&paths.patches())?;
            builder::prepare(paths, &manifest, &located, variant, true)?;
        }
    }
    Ok(())
}

/// Under a nextest setup script, hand `NAME=VALUE` lines to every test process.
fn hand_to_tests(lines: &str) -> Result<()> {
    if let Some(path) = std::env::var_os("NEXTEST_ENV") {
        use std::io::Write as _;
        fs_err::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)?
            .write_all(lines.as_bytes())?;
    }
    Ok(())
}
