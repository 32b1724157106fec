//! An astral-sh/uv checkout at one revision, in a detached worktree below our `target/`, and
//! the exported stack applied to it one prefix at a time.
//!
//! The repository given (a checkout or a bare clone) only ever gains that worktree's record:
//! nothing is staged, committed or pushed there.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use uvfix_pipeline::Paths;

use super::command::output;
use super::export;
use super::git::git;
use super::toolchain::Toolchain;
use super::workdir::display;

/// A checkout of astral-sh/uv at one revision, and the series exported for it.
pub(crate) struct Checkout {
    pub source: PathBuf,
    pub sha: String,
    pub label: String,
    pub tree: PathBuf,
    pub exported: Vec<export::ExportedPatch>,
}

impl Checkout {
    /// Bring the worktree to the revision with the first `count` patches applied.
    ///
    /// When the worktree is already at the revision (an earlier step, an earlier run), the
    /// wanted tree is made in a throwaway index (`git apply --cached`, which also proves every
    /// patch applies) and only the files that differ from it are written: the others keep
    /// their mtimes, so cargo recompiles what this step changes and nothing that a reset
    /// and re-apply would have touched (the bottom crates, and all of uv above them).
    pub(crate) fn at_step(&self, paths: &Paths, count: usize) -> Result<()> {
        let patches = &self.exported[..count];
        if !self.is_at_revision() {
            prepare_worktree(&self.source, &self.tree, &self.sha)?;
            return apply(paths, &self.tree, patches, &self.label);
        }
        let scratch = tempfile::Builder::new().prefix("uvfix-index-").tempdir()?;
        let wanted = tree_with(&self.tree, &self.sha, patches, &self.label, scratch.path())?;
        let current = worktree_tree(&self.tree, scratch.path())?;
        let written = sync(&self.tree, &current, &wanted)?;
        println!(
            "uvfix: all {} patch(es) apply to astral-sh/uv {}; {written} file(s) written",
            patches.len(),
            self.label
        );
        Ok(())
    }

    /// Prove that the first `count` patches apply, in a throwaway index: the worktree's files
    /// stay as they are (and keep their mtimes). The worktree must exist ([`Self::at_step`]).
    pub(crate) fn check_applies(&self, count: usize) -> Result<()> {
        let scratch = tempfile::Builder::new().prefix("uvfix-index-").tempdir()?;
        let patches = &self.exported[..count];
        tree_with(&self.tree, &self.sha, patches, &self.label, scratch.path())?;
        for patch in patches {
            println!(
                "  applies: {}",
                patch.file.file_name().unwrap_or_default().to_string_lossy()
            );
        }
        println!(
            "uvfix: all {} patch(es) apply to astral-sh/uv {}",
            patches.len(),
            self.label
        );
        Ok(())
    }

    /// The worktree exists, belongs to our repository and has the revision checked out.
    fn is_at_revision(&self) -> bool {
        self.tree.exists()
            && common_dir(&self.tree).is_some()
            && common_dir(&self.tree) == common_dir(&self.source)
            && output(git(&self.tree).args(["rev-parse", "HEAD"]))
                .is_ok_and(|head| head.trim() == self.sha)
    }

    /// `cargo` in the worktree, with `toolchain` and the upstream target dir.
    pub(crate) fn cargo(&self, paths: &Paths, toolchain: &Toolchain, args: &[&str]) -> Command {
        let mut command = toolchain.cargo();
        command
            .current_dir(&self.tree)
            .env("CARGO_TARGET_DIR", target_dir(paths))
            .args(args);
        command
    }

    /// The step's id for `count` applied patches, or the revision's label for none.
    pub(crate) fn step_name(&self, count: usize) -> String {
        match count {
            0 => self.label.clone(),
            n => self.exported[n - 1].step.clone(),
        }
    }
}

/// The cargo target dir of upstream builds, apart from the fixture's own. One for every
/// revision and step: what they share is compiled once.
pub(crate) fn target_dir(paths: &Paths) -> PathBuf {
    paths.work().join("upstream-target")
}

/// The commit `rev` names in `source` (its full sha), and a label for reports and messages:
/// `0.12.5 (abcdef012345)`.
pub(crate) fn resolve(source: &Path, rev: &str) -> Result<(String, String)> {
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

/// `git` in `tree` with the index file `index` instead of the worktree's own.
fn git_with_index(tree: &Path, index: &Path) -> Command {
    let mut command = git(tree);
    command.env("GIT_INDEX_FILE", index);
    command
}

/// The tree of `sha` with `patches` applied, made in a throwaway index below `scratch`; a patch
/// that does not apply is named with git's message, and nothing in the worktree changes.
fn tree_with(
    tree: &Path,
    sha: &str,
    patches: &[export::ExportedPatch],
    label: &str,
    scratch: &Path,
) -> Result<String> {
    let index = scratch.join("wanted.index");
    output(git_with_index(tree, &index).args(["read-tree", sha]))?;
    for (position, patch) in patches.iter().enumerate() {
        let applied = uvfix_process::run(
            git_with_index(tree, &index)
                .args(["apply", "--cached"])
                .arg(&patch.file),
            None,
        )?;
        if !applied.success() {
            bail!(
                "{} (from {}) does not apply to astral-sh/uv {label} with the {position} \
                 patch(es) before it:\n{}\nThe worktree {} is unchanged. Run `cargo xtask \
                 upstream forward checkout <checkout> --rev <rev>` to see how the crates moved, \
                 hunk by hunk.",
                patch.file.file_name().unwrap_or_default().to_string_lossy(),
                patch.entry.display(),
                applied.stderr_text().trim_end(),
                tree.display()
            );
        }
    }
    Ok(output(git_with_index(tree, &index).arg("write-tree"))?
        .trim()
        .to_string())
}

/// The worktree's files as a tree (tracked and untracked, not ignored), in a throwaway index.
fn worktree_tree(tree: &Path, scratch: &Path) -> Result<String> {
    let index = scratch.join("current.index");
    output(git_with_index(tree, &index).args(["read-tree", "HEAD"]))?;
    output(git_with_index(tree, &index).args(["add", "--all"]))?;
    Ok(output(git_with_index(tree, &index).arg("write-tree"))?
        .trim()
        .to_string())
}

/// Write the files that differ between the trees `current` (what the worktree holds) and
/// `wanted`, remove the ones `wanted` lacks; the number of files touched.
fn sync(tree: &Path, current: &str, wanted: &str) -> Result<usize> {
    let changes = output(git(tree).args([
        "diff-tree",
        "-r",
        "--no-renames",
        "--name-status",
        "-z",
        current,
        wanted,
    ]))?;
    let mut fields = changes.split('\0').filter(|f| !f.is_empty());
    let (mut write, mut remove) = (Vec::new(), Vec::new());
    while let (Some(status), Some(path)) = (fields.next(), fields.next()) {
        match status {
            "D" => remove.push(path.to_string()),
            _ => write.push(path.to_string()),
        }
    }
    for path in &remove {
        fs_err::remove_file(tree.join(path))?;
    }
    if !write.is_empty() {
        output(
            git(tree)
                .arg("restore")
                .arg(format!("--source={wanted}"))
                .args(["--worktree", "--"])
                .args(&write),
        )?;
    }
    Ok(write.len() + remove.len())
}

/// Apply the exported patches to `tree` one by one; the first that does not apply stops.
pub(crate) fn apply(
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
                 {}; the tree is left at {} for a look. Run `cargo xtask upstream forward \
                 checkout <checkout> --rev <rev>` to see how the crates moved, hunk by hunk.",
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
pub(crate) fn prepare_worktree(source: &Path, tree: &Path, sha: &str) -> Result<()> {
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
pub(crate) fn remove_worktree(tree: &Path) -> Result<()> {
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
pub(crate) struct TempWorktree {
    source: PathBuf,
    tree: PathBuf,
}

impl TempWorktree {
    /// A detached worktree of `source` at `sha` in `tree` (one left there by an interrupted
    /// run is reset or replaced).
    pub(crate) fn new(source: &Path, tree: &Path, sha: &str) -> Result<Self> {
        // Own it before it exists: a failing `worktree add` may leave a half-made tree.
        let guard = Self {
            source: source.to_path_buf(),
            tree: tree.to_path_buf(),
        };
        prepare_worktree(source, tree, sha)?;
        Ok(guard)
    }

    /// Move the worktree to `sha`; files that do not change keep their mtimes.
    pub(crate) fn switch(&self, sha: &str) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn exported(file: PathBuf, step: &str) -> export::ExportedPatch {
        export::ExportedPatch {
            entry: PathBuf::from(format!("stack/{step}.patch")),
            step: step.into(),
            number: 1,
            status: uvfix_pipeline::manifest::Status::Proposed,
            claim: String::new(),
            crates: Vec::new(),
            subject: String::new(),
            body: String::new(),
            file,
            files: 1,
            added: 1,
            removed: 0,
            manifest_changes_lost: Vec::new(),
        }
    }

    /// A repository with `a`, `b`, `c` and two patches: one changes `a` and adds `new`, the
    /// next changes `b`.
    fn fixture(dir: &Path) -> (PathBuf, String, Vec<export::ExportedPatch>) {
        let repo = dir.join("repo");
        fs_err::create_dir_all(&repo).unwrap();
        let run = |args: &[&str]| output(git(&repo).args(args)).unwrap();
        run(&["init", "--quiet"]);
        for name in ["a", "b", "c"] {
            fs_err::write(repo.join(name), format!("{name}\n")).unwrap();
        }
        run(&["add", "--all"]);
        run(&["commit", "--quiet", "-m", "base"]);
        let base = run(&["rev-parse", "HEAD"]).trim().to_string();
        fs_err::write(repo.join("a"), "a, patched\n").unwrap();
        fs_err::write(repo.join("new"), "new\n").unwrap();
        run(&["add", "--all"]);
        run(&["commit", "--quiet", "-m", "one"]);
        fs_err::write(repo.join("b"), "b, patched\n").unwrap();
        run(&["commit", "--quiet", "-am", "two"]);
        let mails = dir.join("mails");
        let listed = run(&[
            "format-patch",
            "--quiet",
            "-o",
            mails.to_str().unwrap(),
            &base,
        ]);
        let _ = listed;
        let mut files: Vec<PathBuf> = fs_err::read_dir(&mails)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let patches = files
            .into_iter()
            .zip(["one", "two"])
            .map(|(file, step)| exported(file, step))
            .collect();
        (repo, base, patches)
    }

    fn mtime(path: &Path) -> SystemTime {
        fs_err::metadata(path).unwrap().modified().unwrap()
    }

    #[test]
    fn a_step_writes_only_the_files_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, base, exported) = fixture(dir.path());
        let paths = Paths::new(dir.path());
        let checkout = Checkout {
            source: repo,
            sha: base,
            label: "base (x)".into(),
            tree: dir.path().join("worktree"),
            exported,
        };
        let tree = &checkout.tree;
        let read = |name: &str| fs_err::read_to_string(tree.join(name)).ok();
        checkout.at_step(&paths, 2).unwrap();
        assert_eq!(read("a").as_deref(), Some("a, patched\n"));
        assert_eq!(read("b").as_deref(), Some("b, patched\n"));
        let before = (mtime(&tree.join("a")), mtime(&tree.join("c")));
        std::thread::sleep(Duration::from_millis(20));
        // Back to the revision: `a` and `b` are written, `new` removed, `c` untouched.
        checkout.at_step(&paths, 0).unwrap();
        assert_eq!(read("a").as_deref(), Some("a\n"));
        assert_eq!(read("b").as_deref(), Some("b\n"));
        assert_eq!(read("new"), None);
        assert_eq!(mtime(&tree.join("c")), before.1);
        assert_ne!(mtime(&tree.join("a")), before.0);
        // Step one: only `a` and `new`; what a build left behind is put back too.
        fs_err::write(tree.join("c"), "changed by a build\n").unwrap();
        let b = mtime(&tree.join("b"));
        checkout.at_step(&paths, 1).unwrap();
        assert_eq!(read("a").as_deref(), Some("a, patched\n"));
        assert_eq!(read("new").as_deref(), Some("new\n"));
        assert_eq!(read("c").as_deref(), Some("c\n"));
        assert_eq!(mtime(&tree.join("b")), b);
        // Step two on top: `a` is as step one left it, and stays untouched.
        let a = mtime(&tree.join("a"));
        std::thread::sleep(Duration::from_millis(20));
        checkout.at_step(&paths, 2).unwrap();
        assert_eq!(read("b").as_deref(), Some("b, patched\n"));
        assert_eq!(
            mtime(&tree.join("a")),
            a,
            "a step rewrote a file the step below it made"
        );
    }

    #[test]
    fn a_patch_that_does_not_apply_leaves_the_worktree_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, base, mut exported) = fixture(dir.path());
        let paths = Paths::new(dir.path());
        // Without the first patch, the second still applies (it changes `b` only); make it
        // depend on a missing context instead.
        let text = fs_err::read_to_string(&exported[1].file)
            .unwrap()
            .replace("-b\n", "-no such line\n");
        fs_err::write(&exported[1].file, text).unwrap();
        let checkout = Checkout {
            source: repo,
            sha: base,
            label: "base (x)".into(),
            tree: dir.path().join("worktree"),
            exported: std::mem::take(&mut exported),
        };
        checkout.at_step(&paths, 1).unwrap();
        let err = format!("{:#}", checkout.at_step(&paths, 2).unwrap_err());
        assert!(
            err.contains("does not apply to astral-sh/uv base (x) with the 1 patch(es) before it"),
            "{err}"
        );
        assert!(err.contains("is unchanged"), "{err}");
        assert_eq!(
            fs_err::read_to_string(checkout.tree.join("a")).unwrap(),
            "a, patched\n"
        );
    }
}
