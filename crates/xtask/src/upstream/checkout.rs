//! An astral-sh/uv checkout at one revision, in a detached worktree below our `target/`, and
//! the exported stack applied to it one prefix at a time.
//!
//! The repository given (a checkout or a bare clone) only ever gains that worktree's record:
//! nothing is staged, committed or pushed there.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use uvfix_pipeline::Paths;

use super::toolchain::Toolchain;
use super::{display, export, git, output};

/// A checkout of astral-sh/uv at one revision, and the series exported for it.
pub struct Checkout {
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

    /// The step's id for `count` applied patches, or the revision's label for none.
    pub fn step_name(&self, count: usize) -> String {
        match count {
            0 => self.label.clone(),
            n => self.exported[n - 1].step.clone(),
        }
    }
}

/// The cargo target dir of upstream builds, apart from the fixture's own. One for every
/// revision and step: what they share is compiled once.
pub fn target_dir(paths: &Paths) -> PathBuf {
    paths.work().join("upstream-target")
}

/// The commit `rev` names in `source` (its full sha), and a label for reports and messages:
/// `0.12.5 (abcdef012345)`.
pub fn resolve(source: &Path, rev: &str) -> Result<(String, String)> {
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
pub fn apply(
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

/// A clean detached worktree of `source` at `sha` in `tree`. A worktree an earlier run left
/// there for the same repository is reset rather than recreated: files the revision shares
/// with it keep their mtimes, so cargo rebuilds only what changed (minutes on 2 cores).
pub fn prepare_worktree(source: &Path, tree: &Path, sha: &str) -> Result<()> {
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
    fs_err::create_dir_all(tree.parent().expect("a worktree has a parent directory"))?;
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
pub fn remove_worktree(tree: &Path) -> Result<()> {
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

/// A worktree that is removed, with git's record of it, when this is dropped: on success, on
/// an error, on a panic. What a run built from it is copied out first.
pub struct TempWorktree {
    source: PathBuf,
    tree: PathBuf,
}

impl TempWorktree {
    /// A detached worktree of `source` at `sha` in `tree` (one left there by an interrupted
    /// run is reset or replaced).
    pub fn new(source: &Path, tree: &Path, sha: &str) -> Result<Self> {
        // Own it before it exists: a failing `worktree add` may leave a half-made tree.
        let guard = Self {
            source: source.to_path_buf(),
            tree: tree.to_path_buf(),
        };
        prepare_worktree(source, tree, sha)?;
        Ok(guard)
    }

    /// Move the worktree to `sha`; files that do not change keep their mtimes.
    pub fn switch(&self, sha: &str) -> Result<()> {
        prepare_worktree(&self.source, &self.tree, sha)
    }
}

impl Drop for TempWorktree {
    fn drop(&mut self) {
        if let Err(err) = remove_worktree(&self.tree) {
            eprintln!(
                "uvfix: could not remove the worktree {}: {err:#}",
                self.tree.display()
            );
        }
        // The record too, when the tree itself was never made.
        let _ = output(git(&self.source).args(["worktree", "prune"]));
    }
}
