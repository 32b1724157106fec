//! Which revisions `upstream validate` builds: the one asked about and what it is compared
//! with, checked before anything is built or checked out, so that bad input costs nothing and
//! leaves nothing behind.

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::super::checkout::resolve;
use super::super::command::output;
use super::super::git::git;
use super::super::toolchain::Wanted;

/// One commit of astral-sh/uv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Revision {
    /// The full commit id.
    pub sha: String,
    /// What the user called it (`0dbeb4cd3d`, `0.12.5`, `HEAD~1`).
    pub asked: String,
    /// The commit's subject line.
    pub subject: String,
    /// Its author date, `YYYY-MM-DD`.
    pub date: String,
}

impl Revision {
    /// The abbreviated id used in build names, file names and tables.
    pub(super) fn short(&self) -> &str {
        &self.sha[..10.min(self.sha.len())]
    }

    /// What it asks of the toolchain, read with `git show` (no worktree needed).
    pub(super) fn wanted(&self, source: &Path) -> Result<Wanted> {
        let manifest = show(source, &self.sha, "Cargo.toml")?;
        let toolchain = show(source, &self.sha, "rust-toolchain.toml").ok();
        Wanted::parse(&manifest, toolchain.as_deref())
    }

    /// Whether its workspace defines a cargo profile `name`.
    pub(super) fn defines_profile(&self, source: &Path, name: &str) -> bool {
        show(source, &self.sha, "Cargo.toml")
            .ok()
            .and_then(|text| toml::from_str::<toml::Value>(&text).ok())
            .is_some_and(|value| value.get("profile").and_then(|p| p.get(name)).is_some())
    }
}

/// A revision and the one it is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pair {
    pub before: Revision,
    pub after: Revision,
    /// How `before` was chosen, in words (`its parent`, `--against 0.12.4`, …).
    pub how: String,
}

impl Pair {
    /// How the after build is named in reports: its abbreviated commit, or, for the release
    /// with the stack applied (the same commit as before), what it is.
    pub(super) fn after_name(&self) -> String {
        match self.after.sha == self.before.sha {
            true => self.after.asked.clone(),
            false => self.after.short().to_string(),
        }
    }
}

/// Resolve `rev` in `source` and choose what to compare it with: `against` if given; else the
/// merge base with `base_tag` (the release the stack is written against) when `rev` is not
/// already in that tag's history; else `rev`'s first parent.
pub(super) fn pair(
    source: &Path,
    rev: &str,
    against: Option<&str>,
    base_tag: Option<&str>,
) -> Result<Pair> {
    let after = revision(source, rev)?;
    require_uv(source, &after)?;
    let (before, how) = match against {
        Some(against) => (revision(source, against)?, format!("`--against {against}`")),
        None => default_before(source, &after, base_tag)?,
    };
    require_uv(source, &before)?;
    if before.sha == after.sha {
        bail!(
            "{rev} and its comparison point ({}) are the same commit {}: there is nothing to \
             compare. Pass another one with --against REV.",
            how,
            after.short()
        );
    }
    Ok(Pair { before, after, how })
}

fn default_before(
    source: &Path,
    after: &Revision,
    base_tag: Option<&str>,
) -> Result<(Revision, String)> {
    if let Some(tag) = base_tag
        && let Ok((tag_sha, _)) = resolve(source, tag)
    {
        let base = output(git(source).args(["merge-base", &after.sha, &tag_sha]))
            .map(|text| text.trim().to_string());
        if let Ok(base) = base
            && base != after.sha
        {
            return Ok((
                revision(source, &base)?,
                format!("its merge base with {tag}, the release the stack is written against"),
            ));
        }
    }
    let mut parent = revision(source, &format!("{}^1", after.sha)).with_context(|| {
        format!(
            "{} has no parent to compare with; pass --against REV",
            after.short()
        )
    })?;
    parent.asked = format!("{}^", after.asked);
    Ok((parent, "its parent".to_string()))
}

/// `rev` in `source`, with its subject and date; a clear error for a directory that is not a
/// git repository or a revision it does not have.
pub(super) fn revision(source: &Path, rev: &str) -> Result<Revision> {
    let (sha, _) = resolve(source, rev)?;
    let line = output(
        git(source)
            .args(["show", "--no-patch", "--format=%ad%x09%s", "--date=short"])
            .arg(&sha),
    )?;
    let (date, subject) = line.trim().split_once('\t').unwrap_or(("", line.trim()));
    Ok(Revision {
        sha,
        asked: rev.to_string(),
        subject: subject.to_string(),
        date: date.to_string(),
    })
}

/// Refuse a revision that is not astral-sh/uv: its workspace must have the `uv` package with
/// the `uv` and `uvx` binaries the matrix runs.
fn require_uv(source: &Path, revision: &Revision) -> Result<()> {
    let manifest = show(source, &revision.sha, "crates/uv/Cargo.toml").ok();
    let is_uv = manifest
        .as_deref()
        .and_then(|text| toml::from_str::<toml::Value>(text).ok())
        .is_some_and(|value| {
            value
                .get("package")
                .and_then(|p| p.get("name"))
                .and_then(toml::Value::as_str)
                == Some("uv")
        });
    if !is_uv {
        bail!(
            "{} at {} ({}) is not an astral-sh/uv repository: it has no `uv` package in \
             crates/uv/Cargo.toml. Give a clone of https://github.com/astral-sh/uv (see \
             DEVELOPERS.md).",
            source.display(),
            revision.asked,
            revision.short()
        );
    }
    Ok(())
}

/// A file's text at a commit.
fn show(source: &Path, sha: &str, path: &str) -> Result<String> {
    output(git(source).arg("show").arg(format!("{sha}:{path}")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A git repository with a minimal uv workspace (`uv` with `uv`/`uvx` binaries), one
    /// commit per entry of `mains` (the `uv` binary's `main.rs`), and a tag `0.0.1` on the
    /// first. Builds fast and offline: no dependencies.
    pub(crate) fn fake_uv(dir: &Path, mains: &[&str]) -> Vec<String> {
        let repo = dir.to_path_buf();
        let run = |args: &[&str]| output(git(&repo).args(args)).unwrap();
        run(&["init", "--quiet", "--initial-branch=main"]);
        fs_err::create_dir_all(repo.join("crates/uv/src/bin")).unwrap();
        fs_err::write(
            repo.join("Cargo.toml"),
            "[workspace]\nmembers = [\"crates/uv\"]\nresolver = \"2\"\n\n\
             [workspace.package]\nrust-version = \"1.80\"\n\n\
             [profile.no-debug]\ninherits = \"dev\"\ndebug = 0\n",
        )
        .unwrap();
        fs_err::write(
            repo.join("crates/uv/Cargo.toml"),
            "[package]\nname = \"uv\"\nversion = \"0.0.1\"\nedition = \"2021\"\n\
             rust-version.workspace = true\n\n\
             [[bin]]\nname = \"uv\"\npath = \"src/main.rs\"\n\n\
             [[bin]]\nname = \"uvx\"\npath = \"src/bin/uvx.rs\"\n",
        )
        .unwrap();
        fs_err::write(repo.join("crates/uv/src/bin/uvx.rs"), "fn main() {}\n").unwrap();
        fs_err::write(
            repo.join("Cargo.lock"),
            "# This file is automatically @generated by Cargo.\n# It is not intended for manual editing.\n\
             version = 4\n\n[[package]]\nname = \"uv\"\nversion = \"0.0.1\"\n",
        )
        .unwrap();
        let mut shas = Vec::new();
        for (index, main) in mains.iter().enumerate() {
            fs_err::write(repo.join("crates/uv/src/main.rs"), main).unwrap();
            run(&["add", "--all"]);
            run(&[
                "commit",
                "--quiet",
                "-m",
                &format!("commit {index} (#{index})"),
            ]);
            shas.push(run(&["rev-parse", "HEAD"]).trim().to_string());
            if index == 0 {
                run(&["tag", "0.0.1"]);
            }
        }
        shas
    }

    #[test]
    fn the_parent_is_the_default_for_a_revision_in_the_release_line() {
        let dir = tempfile::tempdir().unwrap();
        let shas = fake_uv(
            dir.path(),
            &["fn main() {}\n", "fn main() { }\n", "fn main() {  }\n"],
        );
        // Already in 0.0.1's history? No: after it. Its merge base with 0.0.1 is the tag.
        let pair = pair(dir.path(), &shas[2], None, Some("0.0.1")).unwrap();
        assert_eq!(pair.before.sha, shas[0]);
        assert!(pair.how.contains("merge base with 0.0.1"), "{}", pair.how);
        // Without a tag line: the parent.
        let pair = super::pair(dir.path(), &shas[2], None, None).unwrap();
        assert_eq!(pair.before.sha, shas[1]);
        assert_eq!(pair.how, "its parent");
        assert_eq!(pair.after.subject, "commit 2 (#2)");
        // In the tag's own history: the parent too.
        let pair = super::pair(dir.path(), &shas[1], None, Some("HEAD")).unwrap();
        assert_eq!(pair.before.sha, shas[0]);
    }

    #[test]
    fn bad_input_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let shas = fake_uv(dir.path(), &["fn main() {}\n"]);
        let err = |result: Result<Pair>| format!("{:#}", result.unwrap_err());

        let text = err(pair(dir.path(), "no-such-rev", None, None));
        assert!(text.contains("no revision `no-such-rev`"), "{text}");

        let not_git = tempfile::tempdir().unwrap();
        let text = err(pair(not_git.path(), "HEAD", None, None));
        assert!(
            text.contains("is neither a git checkout nor a bare git repository"),
            "{text}"
        );

        let text = err(pair(dir.path(), &shas[0], None, None));
        assert!(
            text.contains("has no parent to compare with; pass --against"),
            "{text}"
        );

        let text = err(pair(dir.path(), "HEAD", Some("HEAD"), None));
        assert!(text.contains("nothing to compare"), "{text}");

        let other = tempfile::tempdir().unwrap();
        output(git(other.path()).args(["init", "--quiet"])).unwrap();
        fs_err::write(other.path().join("README"), "not uv\n").unwrap();
        output(git(other.path()).args(["add", "README"])).unwrap();
        output(git(other.path()).args(["commit", "--quiet", "-m", "x"])).unwrap();
        let text = err(pair(other.path(), "HEAD", None, None));
        assert!(text.contains("is not an astral-sh/uv repository"), "{text}");

        // Nothing was checked out anywhere.
        let list = output(git(dir.path()).args(["worktree", "list", "--porcelain"])).unwrap();
        assert_eq!(list.matches("worktree ").count(), 1, "{list}");
    }
}
