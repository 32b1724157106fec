//! `cargo xtask upstream check <PATH>`: does the exported series apply to astral-sh/uv at a
//! revision, does that uv build, do the touched crates' unit tests pass, and how does the
//! build fare in the matrix?
//!
//! `PATH` is a checkout or a bare clone; it only gains a detached worktree at
//! `target/uvfix/upstream/check/uv` (replaced on the next run). The patches are applied with
//! `git apply` to the worktree's files: nothing is staged or committed in `PATH`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use uvfix_pipeline::{Manifest, Paths};

use super::{display, export, git, output, status};

#[derive(clap::Args)]
pub struct Options {
    /// An astral-sh/uv checkout, or a bare git directory holding its history.
    pub path: PathBuf,
    /// The revision to check: a commit, branch or tag (`0.12.5`).
    #[arg(long, default_value = "HEAD")]
    pub rev: String,
    /// The rustup toolchain to build with [default: the one running this command]. The
    /// checkout's `rust-toolchain.toml` is deliberately not used: it names an exact
    /// release that is usually not installed, while the workspace's `rust-version` is
    /// what actually has to be met.
    #[arg(long)]
    pub toolchain: Option<String>,
    /// Stop after the patches applied (no build, no tests, no matrix).
    #[arg(long)]
    pub apply_only: bool,
    /// Skip unit tests whose name contains NAME (repeatable), e.g. ones that cannot
    /// pass as root.
    #[arg(long, value_name = "NAME")]
    pub test_skip: Vec<String>,
    /// Instead of the unit tests and the matrix, run upstream's own integration tests
    /// (`crates/uv/tests`: build/cache*, sync, run, tool, pip-install) as an ordinary user,
    /// on the release and on the whole stack; a test that passes on the release and fails
    /// with the stack fails the check.
    #[arg(long)]
    pub tests: bool,
    /// With --tests: on the release and after every step of the stack.
    #[arg(long, requires = "tests")]
    pub steps: bool,
    /// With --steps: only these steps (repeatable; ids as in series.toml), e.g. to spread
    /// the per-step runs (about 15 min a step for `build` and `project` on 2 cores) over
    /// several sittings. The release runs as without it.
    #[arg(long = "step", value_name = "ID", requires = "steps")]
    pub only_steps: Vec<String>,
    /// With --tests: the stack first, then the release on only the tests that failed with
    /// it (`--exact`). Every failure gets the same verdict as in a full run; what is not
    /// measured is which release failures the stack fixes. For the long areas: `sync`
    /// alone took ~30 min here.
    #[arg(long, requires = "tests")]
    pub release_reruns_failures: bool,
    /// With --tests: a directory of interpreters to put first on the tests' PATH
    /// (repeatable) [default: the copies ci/upstream-pythons.sh made].
    #[arg(long = "python", value_name = "DIR", requires = "tests")]
    pub pythons: Vec<PathBuf>,
    /// With --tests: only these test targets (repeatable: build, sync, project, tool,
    /// pip_install) [default: all of them].
    #[arg(long = "area", value_name = "TARGET", requires = "tests")]
    pub areas: Vec<String>,
}

/// A checkout of astral-sh/uv at one revision, and the series exported for it.
pub(super) struct Checkout {
    pub source: PathBuf,
    pub sha: String,
    pub label: String,
    pub tree: PathBuf,
    pub exported: Vec<export::ExportedPatch>,
}

impl Checkout {
    /// Reset the worktree to the revision and apply the first `count` patches.
    pub fn at_step(&self, paths: &Paths, count: usize) -> Result<()> {
        prepare_worktree(&self.source, &self.tree, &self.sha)?;
        apply(paths, &self.tree, &self.exported[..count], &self.label)
    }

    /// `cargo` in the worktree, with `toolchain` and the upstream target dir.
    pub fn cargo(&self, paths: &Paths, toolchain: &Toolchain, args: &[&str]) -> Command {
        let mut command = toolchain.cargo();
        command
            .current_dir(&self.tree)
            .env("CARGO_TARGET_DIR", target_dir(paths))
            .args(args);
        command
    }
}

pub fn run(paths: &Paths, options: &Options) -> Result<()> {
    let source = std::path::absolute(&options.path)?;
    let (sha, label) = resolve(&source, &options.rev)?;
    let checkout = Checkout {
        exported: export::run(paths, &export::default_out(paths))?,
        tree: super::dir(paths).join("check").join("uv"),
        source,
        sha,
        label,
    };
    let (tree, label) = (&checkout.tree, &checkout.label);
    checkout.at_step(paths, checkout.exported.len())?;
    println!(
        "uvfix: astral-sh/uv {label} checked out at {}",
        display(paths, tree)
    );
    if options.apply_only {
        return Ok(());
    }
    let toolchain = toolchain_for(paths, tree, options, label)?;
    if options.tests {
        return super::integration::run(paths, &checkout, &toolchain, options);
    }
    unit_tests_and_matrix(paths, &checkout, &toolchain, options)
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

/// The cargo target dir of upstream builds, apart from the fixture's own.
fn target_dir(paths: &Paths) -> PathBuf {
    paths.work().join("upstream-target")
}

/// The commit `rev` names in `source` (its full sha), and a label for reports and messages:
/// `0.12.5 (abcdef012345)`.
pub(super) fn resolve(source: &Path, rev: &str) -> Result<(String, String)> {
    output(git(source).args(["rev-parse", "--absolute-git-dir"])).with_context(|| {
        format!(
            "{} is neither a git checkout nor a bare git repository",
            source.display()
        )
    })?;
    let sha = output(
        git(source)
            .args(["rev-parse", "--verify", "--end-of-options"])
            .arg(format!("{rev}^{{commit}}")),
    )
    .with_context(|| {
        format!(
            "no revision `{rev}` in {} (fetch it first, e.g. `git fetch --tags`)",
            source.display()
        )
    })?
    .trim()
    .to_string();
    let label = format!("{rev} ({})", &sha[..12.min(sha.len())]);
    Ok((sha, label))
}

/// Apply the exported patches to `tree` one by one; the first that does not apply stops.
fn apply(
    paths: &Paths,
    tree: &Path,
    exported: &[export::ExportedPatch],
    label: &str,
) -> Result<()> {
    for (index, patch) in exported.iter().enumerate() {
        let name = patch.file.file_name().unwrap_or_default().to_string_lossy();
        let checked =
            uvfix_process::run(git(tree).args(["apply", "--check"]).arg(&patch.file), None)?;
        if !checked.success() {
            bail!(
                "{name} (from {}) does not apply to astral-sh/uv {label}:\n{}\n\
                 {}; the tree is left at {} for a look. Run `cargo xtask upstream forward` to \
                 see how the crates moved.",
                patch.entry.display(),
                checked.stderr_text().trim_end(),
                match index {
                    0 => "No patch before it was applied".to_string(),
                    n => format!("The {n} patch(es) before it were applied"),
                },
                display(paths, tree)
            );
        }
        output(git(tree).arg("apply").arg(&patch.file))?;
        println!("  applies: {name}");
    }
    println!(
        "uvfix: all {} patch(es) apply to astral-sh/uv {label}",
        exported.len()
    );
    Ok(())
}

/// The toolchain to build `tree` with, refusing one older than its `rust-version`.
fn toolchain_for(paths: &Paths, tree: &Path, options: &Options, label: &str) -> Result<Toolchain> {
    let toolchain = Toolchain::select(paths, options.toolchain.as_deref())?;
    let required = rust_version(tree)?;
    let pinned = pinned_channel(tree);
    if let Some(required) = &required
        && too_old(&toolchain.version, required)
    {
        let manifest = Manifest::load(&paths.patches())?;
        bail!(
            "astral-sh/uv {label} needs rustc {required} or newer (`rust-version` in its \
             Cargo.toml), but the toolchain here is rustc {} ({}). The patches apply; to build \
             and test this revision install a newer Rust (`rustup toolchain install {}`) and \
             pass `--toolchain {}`, or check the release the series is pinned to: `--rev {}`.",
            toolchain.version,
            toolchain.describe(),
            pinned.as_deref().unwrap_or(required),
            pinned.as_deref().unwrap_or(required),
            manifest.uv.version,
        );
    }
    println!(
        "uvfix: building with rustc {} ({}){}{}",
        toolchain.version,
        toolchain.describe(),
        required
            .as_ref()
            .map(|r| format!("; uv declares rust-version {r}"))
            .unwrap_or_default(),
        pinned
            .as_ref()
            .map(|c| format!("; its rust-toolchain.toml ({c}) is overridden"))
            .unwrap_or_default(),
    );
    Ok(toolchain)
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
    let out = super::dir(paths).join("check").join("matrix");
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

/// A clean detached worktree of `source` at `sha` in `tree`. A worktree an earlier run left
/// there for the same repository is reset rather than recreated: files the revision shares
/// with it keep their mtimes, so cargo rebuilds only what changed (minutes on 2 cores).
fn prepare_worktree(source: &Path, tree: &Path, sha: &str) -> Result<()> {
    if tree.exists() {
        let same_repository = common_dir(tree).is_some() && common_dir(tree) == common_dir(source);
        if same_repository
            && output(git(tree).args(["checkout", "--quiet", "--force", "--detach", sha])).is_ok()
            && output(git(tree).args(["clean", "--quiet", "-d", "-x", "--force"])).is_ok()
        {
            return Ok(());
        }
        remove_worktree(tree)?;
    }
    fs_err::create_dir_all(tree.parent().expect("check dir"))?;
    output(
        git(source)
            .args(["worktree", "add", "--detach", "--force"])
            .arg(tree)
            .arg(sha),
    )?;
    Ok(())
}

/// The repository (`.git` or bare directory) behind a checkout or worktree.
fn common_dir(path: &Path) -> Option<PathBuf> {
    let dir =
        output(git(path).args(["rev-parse", "--path-format=absolute", "--git-common-dir"])).ok()?;
    fs_err::canonicalize(dir.trim()).ok()
}

/// Remove a worktree an earlier run left at `tree`, and git's record of it.
fn remove_worktree(tree: &Path) -> Result<()> {
    let common = common_dir(tree);
    if let Some(common) = &common {
        let _ = output(
            git(common)
                .args(["worktree", "remove", "--force", "--force"])
                .arg(tree),
        );
    }
    if tree.exists() {
        fs_err::remove_dir_all(tree)?;
    }
    if let Some(common) = &common {
        let _ = output(git(common).args(["worktree", "prune"]));
    }
    Ok(())
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

/// The toolchain to build upstream with.
pub(super) struct Toolchain {
    /// rustup toolchain name, when rustup manages Rust here.
    name: Option<String>,
    /// `1.95.0`
    version: String,
}

impl Toolchain {
    /// `requested`, else the toolchain running this command (found from `rustc`'s sysroot).
    fn select(paths: &Paths, requested: Option<&str>) -> Result<Self> {
        let name = match requested {
            Some(name) => Some(name.to_string()),
            None => {
                let sysroot = output(
                    Command::new("rustc")
                        .current_dir(&paths.root)
                        .args(["--print", "sysroot"]),
                )?;
                let sysroot = Path::new(sysroot.trim());
                // rustup keeps toolchains at `$RUSTUP_HOME/toolchains/<name>`.
                sysroot
                    .parent()
                    .filter(|p| p.file_name().is_some_and(|n| n == "toolchains"))
                    .and(sysroot.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
            }
        };
        let mut rustc = Command::new("rustc");
        rustc.arg("--version");
        if let Some(name) = &name {
            rustc.env("RUSTUP_TOOLCHAIN", name);
        }
        let version = output(&mut rustc).with_context(|| match &name {
            Some(name) => format!("toolchain `{name}` is not usable; is it installed?"),
            None => "rustc is not usable".to_string(),
        })?;
        let version = parse_rustc_version(&version)
            .with_context(|| format!("cannot read the version in `{}`", version.trim()))?;
        Ok(Self { name, version })
    }

    fn describe(&self) -> String {
        match &self.name {
            Some(name) => format!("rustup toolchain `{name}`"),
            None => "rustc on PATH".to_string(),
        }
    }

    /// `cargo` with this toolchain forced, so the checkout's `rust-toolchain.toml` (an exact
    /// release that is usually not installed) is not consulted.
    fn cargo(&self) -> Command {
        let mut command = Command::new("cargo");
        if let Some(name) = &self.name {
            command.env("RUSTUP_TOOLCHAIN", name);
        }
        command
    }
}

/// `rustc 1.95.0 (59807616e 2026-04-14)` → `1.95.0`.
fn parse_rustc_version(text: &str) -> Option<String> {
    let version = text.split_whitespace().nth(1)?;
    semver::Version::parse(version).ok()?;
    Some(version.to_string())
}

/// Whether rustc `have` (`1.97.0-nightly`) is older than a `rust-version` (`1.96`, `1.96.0`).
/// A nightly counts as its release: cargo accepts it for that `rust-version`, semver would
/// order it before. Unreadable versions are not "too old": the build will say what is wrong.
fn too_old(have: &str, need: &str) -> bool {
    let Ok(mut have) = semver::Version::parse(have) else {
        return false;
    };
    have.pre = semver::Prerelease::EMPTY;
    semver::VersionReq::parse(&format!(">={need}")).is_ok_and(|req| !req.matches(&have))
}

/// `rust-version` of the checkout's workspace (or root package).
fn rust_version(tree: &Path) -> Result<Option<String>> {
    let text = fs_err::read_to_string(tree.join("Cargo.toml"))?;
    let value: toml::Value = toml::from_str(&text).context("reading uv's Cargo.toml")?;
    Ok(rust_version_of(&value))
}

fn rust_version_of(value: &toml::Value) -> Option<String> {
    ["workspace", "package"]
        .iter()
        .find_map(|table| {
            let package = match *table {
                "workspace" => value.get("workspace")?.get("package")?,
                _ => value.get("package")?,
            };
            package.get("rust-version")?.as_str()
        })
        .map(str::to_string)
}

/// The channel in the checkout's `rust-toolchain.toml`, if any.
fn pinned_channel(tree: &Path) -> Option<String> {
    let text = fs_err::read_to_string(tree.join("rust-toolchain.toml")).ok()?;
    let value: toml::Value = toml::from_str(&text).ok()?;
    Some(
        value
            .get("toolchain")?
            .get("channel")?
            .as_str()?
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("rustc 1.95.0 (59807616e 2026-04-14)", Some("1.95.0"); "stable")]
    #[test_case("rustc 1.97.0-nightly (abc 2026-05-01)\n", Some("1.97.0-nightly"); "nightly")]
    #[test_case("error: no such toolchain", None; "garbage")]
    fn reads_rustc_version(text: &str, expected: Option<&str>) {
        assert_eq!(parse_rustc_version(text).as_deref(), expected);
    }

    #[test_case("1.95.0", "1.96.0", true; "older minor")]
    #[test_case("1.95.0", "1.95", false; "two part requirement met")]
    #[test_case("1.95.0", "1.95.1", true; "older patch")]
    #[test_case("1.97.0-nightly", "1.96.0", false; "newer nightly")]
    #[test_case("1.100.0", "1.99.0", false; "numeric not lexical")]
    fn detects_too_old(have: &str, need: &str, expected: bool) {
        assert_eq!(too_old(have, need), expected);
    }

    #[test_case("[workspace.package]\nrust-version = \"1.96.0\"\n", Some("1.96.0"); "workspace")]
    #[test_case("[package]\nname = \"x\"\nrust-version = \"1.90\"\n", Some("1.90"); "package")]
    #[test_case("[workspace]\nmembers = []\n", None; "none")]
    fn finds_rust_version(manifest: &str, expected: Option<&str>) {
        let value: toml::Value = toml::from_str(manifest).unwrap();
        assert_eq!(rust_version_of(&value).as_deref(), expected);
    }
}
