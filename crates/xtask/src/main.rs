//! `cargo xtask`: the fixture's automation, as a plain Rust program (see ARCHITECTURE.md).

#[cfg(unix)]
mod bench;
#[cfg(unix)]
mod matrix;
#[cfg(unix)]
mod report;
mod unit_tests;

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use uvfix_pipeline::builder::{self, Variant};
use uvfix_pipeline::{Manifest, Paths, fetch, refresh};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "The patched-uv fixture: build uv with the stack, prove it in real sandboxes, take it upstream",
    long_about = "The patched-uv fixture: build uv with the stack, prove it in real sandboxes, take it \
                  upstream.\n\nThe main job is `cargo xtask matrix`; the test suite is `cargo nextest \
                  run --workspace`. Everything generated goes under target/uvfix/ ($UVFIX_WORK_DIR)."
)]
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
    /// Build uv (and uvx) from the stack.
    ///
    /// A build already given in $UVFIX_UV_PATCHED / $UVFIX_UV_PRISTINE is used instead of
    /// building it. Prints each variant's uv; under a nextest setup script, hands the paths to
    /// the tests.
    Build {
        /// `patched`, `pristine`, `step-N-of-M` (the first N of the stack's M steps), `all`
        /// (patched and pristine) or `steps` (pristine and every prefix of the stack).
        #[arg(default_value = "all", value_name = "VARIANT")]
        variant: String,
    },
    /// Print the absolute path of a variant's `uv`, building it first if needed.
    UvPath {
        /// `patched`, `pristine` or `step-N-of-M`.
        #[arg(value_name = "VARIANT")]
        variant: String,
    },
    /// Plumbing for the nextest setup script: build the sandbox helper and print its path.
    ///
    /// Under a nextest setup script, hands it to the tests as $UVFIX_SANDBOX_HELPER.
    #[command(hide = true)]
    SandboxHelper,
    /// Patch maintenance: where to edit a step, regenerate its patch, check its formatting.
    Patch {
        #[command(subcommand)]
        command: PatchCommand,
    },
    /// Run the unit tests of the patched crates, as a non-root user.
    ///
    /// The ones the stack adds included; as a non-root user because permission bits do not
    /// bind root.
    TestPatched,
    /// Plumbing for the nextest setup script: create a store of warm caches for one test run.
    ///
    /// Prints its path; under a nextest setup script, hands it to the tests as
    /// $UVFIX_CELL_STORE. The store lives as long as the nextest run (run by hand: the calling
    /// shell); a keeper process holds it and removes it then. Stores that runs killed earlier
    /// left behind are cleaned first.
    #[cfg(unix)]
    #[command(hide = true)]
    CellStore {
        /// Only clean the stores runs that died left behind (this user's), and create none. A
        /// store a live run holds is left alone and named. A store holds warm uv caches, so a
        /// dead run's can hold much disk.
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
    /// The main job: build patched + pristine uv, run the sandbox matrix, print a summary.
    ///
    /// Every cell (uv × sandbox × scenario × cache state) proves its sandbox denies before it
    /// counts. The summary has a line per sandbox × build (pass, xfail, FAIL, skip), every FAIL
    /// with the command that reruns it, and why sandboxes were skipped; the reports go to
    /// target/uvfix/matrix/ (matrix.md, matrix.txt, matrix.json, junit.xml). Exits non-zero if
    /// any cell FAILs.
    #[cfg(unix)]
    Matrix(matrix::MatrixArgs),
    /// Benchmarks: what the stack and the fixture cost, as ratios against a noise floor.
    ///
    /// Warm-run time and instructions executed, patched vs pristine; write syscalls on the
    /// cache; the matrix's cost per cell, warmed per cell and copied. The report goes to
    /// target/uvfix/bench/bench.txt (and into docs/results.md with `cargo xtask report`).
    #[cfg(unix)]
    Bench(bench::BenchArgs),
    /// Write docs/results.md from the reports the last runs left.
    ///
    /// Reads target/uvfix/: the matrix (`matrix`, every base's), the steps (`matrix --steps`,
    /// ci/steps.sh) and the benchmark (`bench`). A section per report found; the ones missing
    /// are listed with the command that makes them. The header names the machine, the date and
    /// the commit.
    #[cfg(unix)]
    Report {
        /// Where to write [default: docs/results.md].
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
    },
    /// Take the stack upstream: export it, check it against astral-sh/uv, forward-port it.
    Upstream {
        #[command(subcommand)]
        command: uvfix_upstream::UpstreamCommand,
    },
}

#[derive(Subcommand)]
enum PatchCommand {
    /// Regenerate a step's patch from the crates of its build.
    ///
    /// The crates are `target/uvfix/build/step-N/crates-step-N/` (`patched/` for the last
    /// step); `cargo xtask patch edit <STEP>` prints the directory.
    Refresh {
        /// A step id (`markers`) or number (`1`).
        step: String,
    },
    /// Print where to edit a step: the crates directory of the build that ends with it.
    Edit {
        /// A step id (`markers`) or number (`1`).
        step: String,
    },
    /// Check that the Rust the stack touches is as rustfmt leaves it.
    ///
    /// uv's CI runs `cargo fmt --check`: every file the stack names, in each step's tree and
    /// in the pristine one; a file reported only with the stack fails.
    Fmt,
}

/// Resolve a variant argument against the stack. A step is spelled as everywhere else (test
/// names, reports, `matrix --uv`): `step-N-of-M`, M the stack's size. `step-N`, the old
/// spelling, is still accepted: here the stack is known.
fn variants(manifest: &Manifest, arg: &str) -> Result<Vec<Variant>> {
    let len = manifest.steps.len();
    let last = len.saturating_sub(1);
    let step = |n: usize| -> Result<Vec<Variant>> {
        match n {
            0 => bail!("steps count from 1: `{arg}` names none; `pristine` has no step applied"),
            n if n > len => bail!("the stack has {len} steps: `{arg}` is beyond it"),
            // The whole stack is the patched build (one build, one directory).
            n => Ok(vec![Variant::prefix(n, len)]),
        }
    };
    match arg {
        "all" => Ok(Variant::ALL.to_vec()),
        "steps" => Ok(Variant::stack(manifest)),
        "patched" => Ok(vec![Variant::Patched]),
        "pristine" => Ok(vec![Variant::Pristine]),
        _ => {
            let rest = arg.strip_prefix("step-").unwrap_or_default();
            match rest.split_once("-of-") {
                Some((n, m)) => match (n.parse::<usize>(), m.parse::<usize>()) {
                    (Ok(n), Ok(m)) if m == len => step(n),
                    (Ok(_), Ok(m)) => bail!(
                        "`{arg}`: the stack has {len} steps, not {m}; steps are step-1-of-{len} \
                         … step-{last}-of-{len} (step-{len}-of-{len} is `patched`)"
                    ),
                    _ => bail!("unknown variant `{arg}`: a step is step-N-of-{len}"),
                },
                None => match rest.parse::<usize>() {
                    Ok(n) => step(n),
                    Err(_) => bail!(
                        "unknown variant `{arg}`: expected patched, pristine, step-1-of-{len} … \
                         step-{last}-of-{len}, all or steps"
                    ),
                },
            }
        }
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
                bail!("uv-path takes one variant: patched, pristine or step-N-of-M");
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
        Command::Bench(args) => {
            uvfix_bench::run(&paths, &args.into(), &builder::build_helper(&paths)?)?
        }
        #[cfg(unix)]
        Command::Report { out } => report::run(&paths, out)?,
        Command::Upstream { command } => uvfix_upstream::run(&paths, command)?,
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
        PatchCommand::Fmt => {
            use uvfix_pipeline::fmt_check::{EDITION, check};
            let files = check(paths, &manifest)?;
            println!(
                "uvfix: after every step, the {files} Rust files the stack touches are as \
                 rustfmt (edition {EDITION}) leaves them"
            );
        }
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
                    "the stack of this base is written by `cargo xtask upstream forward write --base …`; \
                     record the edit with `cargo xtask upstream forward record --base … {step}`"
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

#[cfg(all(test, unix))]
mod tests {
    use clap::Parser as _;

    use super::*;

    /// What `cargo xtask ARGS` prints for `--help` (or a usage error).
    fn help(args: &[&str]) -> String {
        let err = Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
            .err()
            .expect("--help stops the parse");
        err.render().to_string()
    }

    #[test]
    fn top_level_help_lists_the_commands_users_run_and_hides_the_plumbing() {
        insta::assert_snapshot!(help(&["--help"]));
    }

    #[test]
    fn matrix_help() {
        insta::assert_snapshot!(help(&["matrix", "--help"]));
    }

    /// One subcommand per mode, each with its own arguments, instead of flag combinations.
    #[test]
    fn upstream_forward_help_names_its_modes() {
        insta::assert_snapshot!(help(&["upstream", "forward", "--help"]));
    }

    #[test]
    fn forward_modes_reject_the_other_modes_arguments() {
        for args in [
            &["upstream", "forward", "checkout", "uv", "--to", "0.13.6"][..],
            &["upstream", "forward", "release", "--rev", "main"],
            &["upstream", "forward", "write", "markers"],
            &["upstream", "forward", "record"],
            &["upstream", "forward"],
        ] {
            let argv = std::iter::once("xtask").chain(args.iter().copied());
            assert!(Cli::try_parse_from(argv).is_err(), "{args:?}");
        }
    }

    #[test]
    fn plumbing_still_parses() {
        for args in [&["sandbox-helper"][..], &["cell-store", "--clear"]] {
            let argv = std::iter::once("xtask").chain(args.iter().copied());
            assert!(Cli::try_parse_from(argv).is_ok(), "{args:?}");
        }
    }

    fn manifest(steps: usize) -> Manifest {
        let dir = tempfile::tempdir().unwrap();
        let mut series = String::from(
            "[uv]\nversion = \"0.12.5\"\nchecksum = \"00\"\n\n[[crate]]\nname = \"uv\"\nversion = \"0.12.5\"\n",
        );
        for n in 1..=steps {
            let id = char::from(b'a' + n as u8);
            series.push_str(&format!(
                "\n[[step]]\nid = \"step-{id}\"\npatch = \"stack/{n}.patch\"\nstatus = \"proposed\"\nclaim = \"c\"\n"
            ));
            fs_err::create_dir_all(dir.path().join("stack")).unwrap();
            fs_err::write(dir.path().join(format!("stack/{n}.patch")), "").unwrap();
        }
        fs_err::write(dir.path().join(Manifest::FILE), series).unwrap();
        Manifest::load(dir.path()).unwrap()
    }

    #[test]
    fn a_step_is_spelled_as_in_the_reports_and_the_old_spelling_still_works() {
        let m = manifest(4);
        assert_eq!(variants(&m, "step-2-of-4").unwrap(), [Variant::Step(2)]);
        assert_eq!(variants(&m, "step-2").unwrap(), [Variant::Step(2)]);
        assert_eq!(variants(&m, "step-4-of-4").unwrap(), [Variant::Patched]);
        let err = variants(&m, "step-2-of-5").unwrap_err().to_string();
        assert!(err.contains("the stack has 4 steps, not 5"), "{err}");
        let err = variants(&m, "step-0-of-4").unwrap_err().to_string();
        assert!(err.contains("steps count from 1"), "{err}");
        let err = variants(&m, "step-5").unwrap_err().to_string();
        assert!(err.contains("the stack has 4 steps"), "{err}");
        let err = variants(&m, "nightly").unwrap_err().to_string();
        assert!(err.contains("step-1-of-4 … step-3-of-4"), "{err}");
    }
}
