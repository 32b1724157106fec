//! `cargo xtask`: the fixture's automation, as a plain Rust program (see ARCHITECTURE.md).

#[cfg(unix)]
mod bench;
#[cfg(unix)]
mod matrix;
mod upstream;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use uvfix_pipeline::builder::{self, Variant};
use uvfix_pipeline::{Manifest, Paths, fetch, refresh};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Patched-uv fixture automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch and verify the pinned crates, extract them, apply the series.
    Vendor {
        /// Discard local edits in the extracted crates.
        #[arg(long)]
        force: bool,
    },
    /// Build uv (and uvx) for one variant, or both.
    Build {
        #[arg(value_parser = parse_variants, default_value = "all")]
        variant: VariantArg,
    },
    /// Print the absolute path of a variant's `uv`, building it first if needed.
    UvPath {
        #[arg(value_parser = parse_variants)]
        variant: VariantArg,
    },
    /// Patch maintenance.
    Patch {
        #[command(subcommand)]
        command: PatchCommand,
    },
    /// Run the unit tests of the patched crates (the ones the series adds included).
    TestPatched,
    /// The main job: build patched + pristine uv, run the sandbox matrix, print the table.
    #[cfg(unix)]
    Matrix(matrix::MatrixArgs),
    /// Benchmarks: warm-run time patched vs pristine, and write syscalls on the cache.
    #[cfg(unix)]
    Bench {
        /// Timed runs per variant.
        #[arg(long, default_value_t = 21)]
        runs: usize,
    },
    /// Take the series upstream: export it, check it against astral-sh/uv, forward-port it.
    Upstream {
        #[command(subcommand)]
        command: upstream::UpstreamCommand,
    },
}

#[derive(Subcommand)]
enum PatchCommand {
    /// Regenerate a crate's last patch from `target/uvfix/build/patched/crates/<crate>`.
    Refresh {
        /// A crate name (`uv-fs`) or a series entry (`uv-fs/0001-….patch`).
        target: String,
    },
    /// Print where to edit a crate.
    Edit { krate: String },
}

#[derive(Clone)]
struct VariantArg(Vec<Variant>);

fn parse_variants(s: &str) -> Result<VariantArg, String> {
    match s {
        "all" => Ok(VariantArg(Variant::ALL.to_vec())),
        _ => Variant::from_name(s)
            .map(|v| VariantArg(vec![v]))
            .ok_or_else(|| format!("unknown variant `{s}`: expected patched, pristine or all")),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let paths = Paths::discover()?;
    match cli.command {
        Command::Vendor { force } => {
            let _lock = uvfix_pipeline::lock(&paths)?;
            let manifest = Manifest::load(&paths.patches())?;
            let located = fetch::locate(&paths, &manifest)?;
            for variant in Variant::ALL {
                let outcome = builder::prepare(&paths, &manifest, &located, variant, force)?;
                builder::report_outcome(variant, outcome);
            }
        }
        Command::Build { variant } => {
            // A path already in UVFIX_UV_PATCHED / UVFIX_UV_PRISTINE substitutes that build
            // (e.g. the pristine binary as "patched", to see the suite fail, or an upstream
            // checkout's uv); the rest are built.
            let given = |v: &Variant| {
                std::env::var_os(builder::env_var(*v))
                    .filter(|p| !p.is_empty())
                    .map(std::path::PathBuf::from)
            };
            let to_build: Vec<Variant> = variant
                .0
                .iter()
                .copied()
                .filter(|v| given(v).is_none())
                .collect();
            let mut built = builder::ensure(&paths, &to_build)?
                .into_iter()
                .map(|b| b.uv);
            let mut lines = String::new();
            for v in &variant.0 {
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
            // Under a nextest setup script, hand the paths to every test process.
            if let Some(path) = std::env::var_os("NEXTEST_ENV") {
                use std::io::Write as _;
                fs_err::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(path)?
                    .write_all(lines.as_bytes())?;
            }
        }
        Command::UvPath { variant } => {
            if variant.0.len() != 1 {
                bail!("uv-path takes one variant: patched or pristine");
            }
            println!("{}", builder::uv_path(&paths, variant.0[0])?.display());
        }
        Command::Patch { command } => patch(&paths, command)?,
        Command::TestPatched => test_patched(&paths)?,
        #[cfg(unix)]
        Command::Matrix(args) => matrix::run(&paths, args, &sandbox_helper(&paths)?)?,
        #[cfg(unix)]
        Command::Bench { runs } => bench::run(&paths, runs, &sandbox_helper(&paths)?)?,
        Command::Upstream { command } => upstream::run(&paths, command)?,
    }
    Ok(())
}

fn patch(paths: &Paths, command: PatchCommand) -> Result<()> {
    let _lock = uvfix_pipeline::lock(paths)?;
    let manifest = Manifest::load(&paths.patches())?;
    match command {
        PatchCommand::Edit { krate } => {
            let dir = paths.crates_dir(Variant::Patched).join(&krate);
            if !dir.is_dir() {
                bail!(
                    "{} does not exist; run `cargo xtask vendor` first",
                    dir.display()
                );
            }
            println!("{}", dir.display());
        }
        PatchCommand::Refresh { target } => {
            let entry = refresh::select(&manifest, &target)?;
            let located = fetch::locate(paths, &manifest)?;
            let source = located
                .sources
                .iter()
                .find(|s| s.name == entry.krate)
                .context("the patched crate is pinned")?;
            let edited = paths.crates_dir(Variant::Patched).join(&entry.krate);
            let changed = refresh::refresh(&manifest, source, &entry, &edited, &paths.work())?;
            eprintln!(
                "uvfix: {} {}",
                entry.path.display(),
                if changed { "regenerated" } else { "unchanged" }
            );
            // The edited tree is now exactly what the series produces: record that.
            let manifest = Manifest::load(&paths.patches())?;
            builder::prepare(paths, &manifest, &located, Variant::Patched, true)?;
        }
    }
    Ok(())
}

fn test_patched(paths: &Paths) -> Result<()> {
    builder::ensure(paths, &[Variant::Patched])?;
    let manifest = Manifest::load(&paths.patches())?;
    let mut command = fetch::cargo();
    command
        .current_dir(paths.build_dir(Variant::Patched))
        .env("CARGO_TARGET_DIR", paths.cargo_target())
        .args(["test", "--lib"]);
    // The release crate itself is left out: its lib tests are uv's CLI test suite, which
    // needs a network and far more than this fixture provides. Its patch has no unit tests.
    for krate in manifest.crates.iter().filter(|c| c.name != "uv") {
        command.args(["--package", &krate.name]);
    }
    // Upstream's own `find_python_propagates_virtualenv_metadata_errors` makes a directory
    // mode 000 and expects EACCES, which root never gets; it fails as root with or without
    // the series, so it is skipped there (as uid 65534 it runs and passes).
    #[cfg(unix)]
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    #[cfg(not(unix))]
    let root = false;
    if root {
        command.args([
            "--",
            "--skip",
            "find_python_propagates_virtualenv_metadata_errors",
        ]);
        eprintln!(
            "uvfix: running as root: skipping uv-python's mode-000 test, which needs a non-root uid"
        );
    }
    let status = command.status().context("running cargo test")?;
    if !status.success() {
        bail!("unit tests of the patched crates failed ({status})");
    }
    Ok(())
}

/// Build the `uvfix-sandbox` helper binary (root package) and return its path.
#[cfg(unix)]
fn sandbox_helper(paths: &Paths) -> Result<std::path::PathBuf> {
    let status = fetch::cargo()
        .current_dir(&paths.root)
        .args([
            "build",
            "--quiet",
            "--package",
            "uvfix",
            "--bin",
            "uvfix-sandbox",
        ])
        .status()
        .context("building the uvfix-sandbox helper")?;
    if !status.success() {
        bail!("building the uvfix-sandbox helper failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| paths.root.join("target"));
    Ok(target.join("debug").join("uvfix-sandbox"))
}
