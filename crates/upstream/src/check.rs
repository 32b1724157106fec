//! `cargo xtask upstream check <PATH>`: does the exported series apply to astral-sh/uv at a
//! revision, does that uv build, do the touched crates' unit tests pass, and how does the
//! build fare in the matrix? With `--gates`, what uv's own CI runs on a pull request, at the
//! revision and after every step ([`super::gates`]); with `--tests`, upstream's integration
//! tests step by step ([`super::integration`]).
//!
//! `PATH` is a checkout or a bare clone; it only gains a detached worktree at
//! `target/uvfix/upstream/check/uv` (replaced on the next run). The patches are applied with
//! `git apply` to the worktree's files: nothing is staged or committed in `PATH`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};
use uvfix_pipeline::{Manifest, Paths};

use super::checkout::{Checkout, resolve, target_dir};
use super::command::status;
use super::export;
use super::gates::{self, Gate};
use super::toolchain::{self, Chosen, Toolchain, ToolchainArgs, Wanted};
use super::workdir::{self, display};

#[derive(clap::Args)]
pub struct Options {
    /// An astral-sh/uv checkout, or a bare git directory holding its history.
    pub path: PathBuf,
    /// The revision to check: a commit, branch or tag (`0.12.5`).
    #[arg(long, default_value = "HEAD")]
    pub rev: String,
    #[command(flatten)]
    pub toolchain: ToolchainArgs,
    /// Stop after the patches applied (no build, no tests, no matrix).
    #[arg(long)]
    pub apply_only: bool,
    /// Skip unit tests whose name contains NAME (repeatable), e.g. ones that cannot
    /// pass as root.
    #[arg(long, value_name = "NAME")]
    pub test_skip: Vec<String>,
    /// Instead of the build, unit tests and matrix: what uv's CI runs on a pull request
    /// (`cargo fmt`, `cargo check` and `cargo clippy` of the whole workspace, the unit tests
    /// of the crates a step touches, `crates/uv/tests/build/cache.rs`), at the revision and
    /// after every step; a gate that passes at the revision and fails at a step fails the
    /// check. Reports in target/uvfix/upstream/check/gates/, and in each step's PR-<n>-<id>.md.
    #[arg(long, conflicts_with = "tests")]
    pub gates: bool,
    /// With --gates: only these gates (comma-separated) [default: all].
    #[arg(long = "gate", value_enum, value_delimiter = ',', requires = "gates")]
    pub only_gates: Vec<Gate>,
    /// Instead of the unit tests and the matrix, run upstream's own integration tests
    /// (`crates/uv/tests`: build/cache*, sync, run, tool, pip-install) as an ordinary user,
    /// on the release and on the whole stack; a test that passes on the release and fails
    /// with the stack fails the check.
    #[arg(long)]
    pub tests: bool,
    /// With --tests: on the release and after every step of the stack.
    #[arg(long, requires = "tests")]
    pub steps: bool,
    /// With --gates or --tests --steps: only these steps (repeatable; ids as in
    /// series.toml), e.g. to spread the per-step runs over several sittings. The release
    /// runs as without it (--gates reuses its last current record).
    #[arg(long = "step", value_name = "ID")]
    pub only_steps: Vec<String>,
    /// With --tests: the stack first, then the release on only the tests that failed with
    /// it (`--exact`). Every failure gets the same verdict as in a full run; what is not
    /// measured is which release failures the stack fixes. It saves the most in the long
    /// areas (`sync` takes the longest).
    #[arg(long, requires = "tests")]
    pub release_reruns_failures: bool,
    /// With --tests or --gates: a directory of interpreters to put first on the tests' PATH
    /// (repeatable) [default: the copies ci/upstream-pythons.sh made].
    #[arg(long = "python", value_name = "DIR")]
    pub pythons: Vec<PathBuf>,
    /// With --tests: only these test targets (repeatable: build, sync, project, tool,
    /// pip_install) [default: all of them].
    #[arg(long = "area", value_name = "TARGET", requires = "tests")]
    pub areas: Vec<String>,
}

pub(crate) fn run(paths: &Paths, options: &Options) -> Result<()> {
    if !(options.only_steps.is_empty() || options.gates || options.steps) {
        bail!("--step picks steps of --gates or of --tests --steps: give one of them");
    }
    let source = std::path::absolute(&options.path)?;
    let (sha, label) = resolve(&source, &options.rev)?;
    let checkout = Checkout {
        exported: export::run(paths, &export::default_out(paths))?,
        tree: workdir::dir(paths).join("check").join("uv"),
        source,
        sha,
        label,
    };
    let (tree, label) = (&checkout.tree, &checkout.label);
    if options.gates {
        // The gates start at the revision: apply the stack only in a throwaway index, so the
        // files the stack touches are not rewritten twice (and everything above them
        // recompiled) before the first gate runs.
        checkout.at_step(paths, 0)?;
        checkout.check_applies(checkout.exported.len())?;
    } else {
        checkout.at_step(paths, checkout.exported.len())?;
    }
    println!(
        "uvfix: astral-sh/uv {label} checked out at {}",
        display(paths, tree)
    );
    if options.apply_only {
        return Ok(());
    }
    // The gates lint and format: the toolchain needs clippy and rustfmt as uv's CI installs them.
    let components: &'static [&'static str] = match options.gates {
        true => &["clippy", "rustfmt"],
        false => &[],
    };
    let chosen = toolchain_for(paths, tree, options, label, components)?;
    if options.gates {
        let request = gates::Request {
            only_steps: options.only_steps.clone(),
            gates: options.only_gates.clone(),
            pythons: options.pythons.clone(),
        };
        return gates::run(paths, &checkout, &chosen, &request);
    }
    let toolchain = &chosen.toolchain;
    if options.tests {
        let request = super::integration::Request {
            steps: options.steps,
            only_steps: options.only_steps.clone(),
            release_reruns_failures: options.release_reruns_failures,
            pythons: options.pythons.clone(),
            areas: options.areas.clone(),
        };
        return super::integration::run(paths, &checkout, toolchain, &request);
    }
    unit_tests_and_matrix(paths, &checkout, toolchain, options)
}

/// The touched crates' unit tests and the matrix, against the whole stack.
fn unit_tests_and_matrix(
    paths: &Paths,
    checkout: &Checkout,
    toolchain: &Toolchain,
    options: &Options,
) -> Result<()> {
    let (exported, label) = (&checkout.exported, &checkout.label);
    let target = target_dir(paths);
    let cargo = |args: &[&str]| checkout.cargo(paths, toolchain, args);
    status(&mut cargo(&[
        "build", "-p", "uv", "--bin", "uv", "--bin", "uvx",
    ]))?;
    let uv = target
        .join("debug")
        .join(format!("uv{}", std::env::consts::EXE_SUFFIX));
    println!("uvfix: built {}", display(paths, &uv));

    let mut failures = Vec::new();
    let mut crates: Vec<&str> = exported
        .iter()
        .flat_map(|p| p.crates.iter().map(String::as_str))
        .collect();
    crates.sort_unstable();
    crates.dedup();
    let mut test = vec!["test", "--lib"];
    for krate in &crates {
        test.extend(["-p", krate]);
    }
    if !options.test_skip.is_empty() {
        test.push("--");
        for name in &options.test_skip {
            test.extend(["--skip", name.as_str()]);
        }
    }
    match status(&mut cargo(&test)) {
        Ok(()) => println!("uvfix: unit tests of {} pass", crates.join(", ")),
        Err(err) => failures.push(format!("unit tests of {}: {err}", crates.join(", "))),
    }
    if let Err(err) = matrix(paths, &uv, label) {
        failures.push(format!("matrix: {err}"));
    }
    if !failures.is_empty() {
        bail!(
            "astral-sh/uv {label} with the series:\n  {}",
            failures.join("\n  ")
        );
    }
    Ok(())
}

/// The toolchain to build `tree` with ([`toolchain::choose`]), said in words; one older than
/// its `rust-version` is refused before any build.
fn toolchain_for(
    paths: &Paths,
    tree: &Path,
    options: &Options,
    label: &str,
    components: &'static [&'static str],
) -> Result<Chosen> {
    let wanted = Wanted::of_tree(tree)?;
    let chosen = toolchain::choose(
        &paths.root,
        &wanted,
        options.toolchain.toolchain.as_deref(),
        options.toolchain.install(components),
    )
    .and_then(|chosen| {
        toolchain::refuse_too_old(&chosen.toolchain, &wanted)?;
        Ok(chosen)
    });
    let chosen = match chosen {
        Ok(chosen) => chosen,
        Err(err) => {
            let manifest = Manifest::load(&paths.patches())?;
            bail!(
                "astral-sh/uv {label}: {err:#} The patches apply; or check the release the \
                 series is pinned to: `--rev {}`.",
                manifest.uv.version
            );
        }
    };
    println!(
        "uvfix: building with {}; uv declares rust-version {}",
        chosen.describe(),
        wanted.rust_version.as_deref().unwrap_or("(none)")
    );
    Ok(chosen)
}

/// The matrix against the upstream build, when this checkout's xtask can take it.
fn matrix(paths: &Paths, uv: &Path, label: &str) -> Result<()> {
    if !matrix_supports_uv(paths) {
        println!(
            "uvfix: this checkout's `cargo xtask matrix` has no --uv option; run the \
             scenarios against this build with:\n  \
             UVFIX_UV={} cargo nextest run -p uvfix-scenario --test official_uv",
            uv.display()
        );
        return Ok(());
    }
    // An upstream checkout with the series is a fixed build: it gets the patched
    // expectations because of what it is. The reports go next to the checkout, so the
    // fixture's own matrix report stays as it was.
    // `upstream` is `uvfix_scenario::Build::Upstream`'s name (this runs `cargo xtask matrix`,
    // which exists on Unix only, so the scenario crate is not linked here).
    let mut build_arg = std::ffi::OsString::from("upstream=");
    build_arg.push(uv);
    let out = workdir::dir(paths).join("check").join("matrix");
    println!(
        "uvfix: the matrix against astral-sh/uv {label} (reported as `upstream`), reports in {}",
        display(paths, &out)
    );
    status(
        xtask(paths)
            .args(["matrix", "--uv"])
            .arg(build_arg)
            .arg("--out")
            .arg(&out),
    )
}

/// `cargo xtask` in the fixture root. Not `current_exe()`: a concurrent build may have
/// replaced this binary since it started.
fn xtask(paths: &Paths) -> Command {
    let mut command = uvfix_pipeline::fetch::cargo();
    command.current_dir(&paths.root).arg("xtask");
    command
}

/// Does `cargo xtask matrix` take `--uv PATH`?
fn matrix_supports_uv(paths: &Paths) -> bool {
    uvfix_process::checked(xtask(paths).args(["matrix", "--help"]))
        .is_ok_and(|help| help.stdout_text().contains("--uv "))
}
