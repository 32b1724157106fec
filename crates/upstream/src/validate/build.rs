//! Building uv at a revision for `upstream validate`: `uv` and `uvx` as the matrix runs them.
//!
//! Every revision is built in one worktree, moved from revision to revision (files that do not
//! change keep their mtimes), into the one upstream target dir, so a revision and its parent
//! share nearly everything. The binaries are copied out to `validate/bin/<commit>-rustc-<v>/`
//! (the next build overwrites the target dir's) and reused by later runs; the worktree is
//! removed when the builder is dropped, whether the builds succeeded or not.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use uvfix_pipeline::Paths;

use super::super::checkout::{self, TempWorktree, target_dir};
use super::super::export;
use super::super::toolchain::{self, Chosen, ToolchainArgs};
use super::super::workdir::display;
use super::revision::Revision;

/// The built binaries of a revision.
#[derive(Debug, Clone)]
pub(super) struct Built {
    pub uv: PathBuf,
    pub uvx: PathBuf,
    /// How its toolchain was chosen, in words.
    pub toolchain: String,
}

/// The profile uv's own workspace defines for quick builds without debug info, when it does.
const PROFILE: &str = "no-debug";

/// What a build of a revision will use, decided before anything is checked out.
pub(super) struct Plan {
    pub revision: Revision,
    pub toolchain: Chosen,
    pub profile: Option<&'static str>,
    /// Exported patches applied on top (the fixture's stack), none for a revision as it is.
    pub patches: Vec<export::ExportedPatch>,
}

/// Choose the toolchain for `revision` ([`toolchain::choose`]); a missing one is an error here,
/// before any worktree exists.
pub(super) fn plan(
    paths: &Paths,
    source: &Path,
    revision: &Revision,
    args: &ToolchainArgs,
) -> Result<Plan> {
    let wanted = revision.wanted(source)?;
    let chosen = toolchain::choose(
        &paths.root,
        &wanted,
        args.toolchain.as_deref(),
        args.install(&[]),
    )
    .and_then(|chosen| {
        toolchain::refuse_too_old(&chosen.toolchain, &wanted)?;
        Ok(chosen)
    })
    .with_context(|| format!("astral-sh/uv {} ({})", revision.asked, revision.short()))?;
    Ok(Plan {
        revision: revision.clone(),
        toolchain: chosen,
        profile: revision.defines_profile(source, PROFILE).then_some(PROFILE),
        patches: Vec::new(),
    })
}

/// Builds revisions of one repository.
pub(super) struct Builder<'a> {
    paths: &'a Paths,
    source: PathBuf,
    /// Made on the first build that is not already in the bin dir.
    worktree: Option<TempWorktree>,
    tree: PathBuf,
    bins: PathBuf,
    logs: PathBuf,
}

impl<'a> Builder<'a> {
    /// `dir`: where the worktree (`dir/uv`), the binaries (`dir/bin`) and the logs go.
    pub(super) fn new(paths: &'a Paths, source: &Path, dir: &Path) -> Self {
        Self {
            paths,
            source: source.to_path_buf(),
            worktree: None,
            tree: dir.join("uv"),
            bins: dir.join("bin"),
            logs: dir.join("logs"),
        }
    }

    /// `uv` and `uvx` of `plan`'s revision: copied from an earlier build with the same
    /// toolchain, or built now.
    pub(super) fn build(&mut self, plan: &Plan) -> Result<Built> {
        let revision = &plan.revision;
        // With patches, their contents are part of what was built.
        let mut patches_id = String::new();
        for patch in &plan.patches {
            let sum = uvfix_pipeline::sha256_file(&patch.file)?;
            patches_id.push('+');
            patches_id.push_str(&sum[..8]);
        }
        let bin = self.bins.join(format!(
            "{}{patches_id}-rustc-{}",
            revision.sha, plan.toolchain.toolchain.version
        ));
        let built = Built {
            uv: bin.join("uv"),
            uvx: bin.join("uvx"),
            toolchain: plan.toolchain.describe(),
        };
        // Written last: a build interrupted while copying is not taken for a finished one.
        let done = bin.join("done");
        if done.is_file() && built.uv.is_file() && built.uvx.is_file() {
            println!(
                "uvfix: {} ({}) already built with rustc {}: {}",
                revision.short(),
                revision.asked,
                plan.toolchain.toolchain.version,
                display(self.paths, &bin)
            );
            return Ok(built);
        }
        match &self.worktree {
            Some(worktree) => worktree.switch(&revision.sha)?,
            None => {
                self.worktree = Some(TempWorktree::new(&self.source, &self.tree, &revision.sha)?)
            }
        }
        if !plan.patches.is_empty() {
            checkout::apply(self.paths, &self.tree, &plan.patches, &revision.asked)?;
        }
        fs_err::create_dir_all(&self.logs)?;
        let log = self.logs.join(format!(
            "build-{}{}.log",
            revision.short(),
            match plan.patches.is_empty() {
                true => "",
                false => "-stack",
            }
        ));
        let mut args = vec![
            "build", "--locked", "-p", "uv", "--bin", "uv", "--bin", "uvx",
        ];
        if let Some(profile) = plan.profile {
            args.extend(["--profile", profile]);
        }
        let shown = format!("cargo {}", args.join(" "));
        println!(
            "uvfix: building astral-sh/uv {} ({}, {}) with {}: `{shown}` (log {})",
            revision.short(),
            revision.asked,
            revision.subject,
            built.toolchain,
            display(self.paths, &log)
        );
        let started = std::time::Instant::now();
        let executables = self.cargo_build(plan, &args, &log).map_err(|err| {
            let text = fs_err::read_to_string(&log).unwrap_or_default();
            let first_error: Vec<&str> = text
                .lines()
                .skip_while(|l| !l.starts_with("error"))
                .take(12)
                .collect();
            anyhow::anyhow!(
                "astral-sh/uv {} ({}) does not build: `{shown}` failed in {} ({err:#}).\n{}\n\
                 Full log: {}",
                revision.asked,
                revision.short(),
                self.tree.display(),
                first_error.join("\n"),
                log.display()
            )
        })?;
        println!(
            "uvfix: built {} in {} s",
            revision.short(),
            started.elapsed().as_secs()
        );
        fs_err::create_dir_all(&bin)?;
        for (name, dest) in [("uv", &built.uv), ("uvx", &built.uvx)] {
            let Some(exe) = executables.iter().find(|(n, _)| n == name).map(|(_, p)| p) else {
                bail!("`{shown}` built no `{name}` binary");
            };
            // A copy: the next revision's build replaces the target dir's file.
            fs_err::copy(exe, dest)?;
        }
        fs_err::write(&done, format!("{}\n{}\n", revision.sha, built.toolchain))?;
        Ok(built)
    }

    /// `cargo build` in the worktree; the binaries cargo says it built, by name.
    fn cargo_build(
        &self,
        plan: &Plan,
        args: &[&str],
        log: &Path,
    ) -> Result<Vec<(String, PathBuf)>> {
        let mut cargo = plan.toolchain.toolchain.cargo();
        cargo
            .current_dir(&self.tree)
            .env("CARGO_TARGET_DIR", target_dir(self.paths))
            .env("CARGO_TERM_COLOR", "never")
            .args(args)
            .arg("--message-format=json-render-diagnostics")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(fs_err::File::create(log)?.into_parts().0));
        let mut child = cargo.spawn().context("running cargo")?;
        let reader = std::io::BufReader::new(child.stdout.take().expect("piped"));
        let mut built = Vec::new();
        for message in cargo_metadata::Message::parse_stream(reader) {
            if let cargo_metadata::Message::CompilerArtifact(artifact) = message?
                && let Some(exe) = artifact.executable
            {
                built.push((artifact.target.name.clone(), exe.into_std_path_buf()));
            }
        }
        let status = child.wait()?;
        if !status.success() {
            bail!("{status}");
        }
        Ok(built)
    }
}

#[cfg(test)]
mod tests {
    use super::super::revision::{pair, tests::fake_uv};
    use super::*;

    fn paths(root: &Path) -> Paths {
        Paths::new(root)
    }

    #[test]
    fn a_revision_that_does_not_build_is_named_and_leaves_no_worktree() {
        let repo = tempfile::tempdir().unwrap();
        let shas = fake_uv(
            repo.path(),
            &["fn main() {}\n", "fn main() { let x: u8 = \"no\"; }\n"],
        );
        let work = tempfile::tempdir().unwrap();
        let paths = paths(work.path());
        let pair = pair(repo.path(), &shas[1], None, None).unwrap();
        let args = ToolchainArgs {
            toolchain: None,
            no_install: true,
        };
        let dir = work.path().join("validate");
        let mut builder = Builder::new(&paths, repo.path(), &dir);
        let before = builder
            .build(&plan(&paths, repo.path(), &pair.before, &args).unwrap())
            .unwrap();
        assert!(before.uv.is_file() && before.uvx.is_file());
        let err = builder
            .build(&plan(&paths, repo.path(), &pair.after, &args).unwrap())
            .unwrap_err();
        drop(builder);
        let text = format!("{err:#}");
        assert!(
            text.contains("does not build: `cargo build --locked -p uv --bin uv --bin uvx --profile no-debug` failed"),
            "{text}"
        );
        assert!(text.contains("error[E0308]: mismatched types"), "{text}");
        assert!(!dir.join("uv").exists(), "the worktree is gone");
        let list = super::super::super::command::output(
            super::super::super::git::git(repo.path()).args(["worktree", "list", "--porcelain"]),
        )
        .unwrap();
        assert_eq!(list.matches("worktree ").count(), 1, "{list}");
        // The good build is kept and reused.
        let mut builder = Builder::new(&paths, repo.path(), &dir);
        builder
            .build(&plan(&paths, repo.path(), &pair.before, &args).unwrap())
            .unwrap();
        assert!(
            builder.worktree.is_none(),
            "a cached build needs no worktree"
        );
    }

    #[test]
    fn a_missing_toolchain_is_an_error_before_any_worktree() {
        let repo = tempfile::tempdir().unwrap();
        let shas = fake_uv(repo.path(), &["fn main() {}\n", "fn main() { }\n"]);
        let work = tempfile::tempdir().unwrap();
        let paths = paths(work.path());
        let pair = pair(repo.path(), &shas[1], None, None).unwrap();
        let args = ToolchainArgs {
            toolchain: Some("uvfix-no-such-toolchain".into()),
            no_install: true,
        };
        let text = format!(
            "{:#}",
            plan(&paths, repo.path(), &pair.after, &args).err().unwrap()
        );
        assert!(
            text.contains("--toolchain uvfix-no-such-toolchain"),
            "{text}"
        );
        assert!(!work.path().join("validate").exists());
    }
}
