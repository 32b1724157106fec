//! `cargo xtask upstream export`: the series as `git format-patch` mail against
//! astral-sh/uv's layout, made by git itself.
//!
//! A scratch repository under `target/uvfix/upstream/repo` gets the pinned crates exactly as
//! crates.io ships them (extracted from the same sha256-verified `.crate` files the pristine
//! build uses) at `crates/<crate>/`, one commit; then, per series entry, `git apply
//! --directory=crates/<crate>` and `git commit` with the patch header as the message; then
//! `git format-patch`. Author, committer and dates are fixed, so the output is reproducible.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use uvfix_pipeline::manifest::SeriesEntry;
use uvfix_pipeline::{Manifest, Paths, fetch, vendor};

use super::message::{PatchText, numstat, to_repository_paths};
use super::{display, fresh_dir, git, output};

/// The file `export` writes next to the patches.
pub const DESCRIPTION: &str = "PR-DESCRIPTION.md";

pub fn default_out(paths: &Paths) -> PathBuf {
    super::dir(paths).join("export")
}

/// One exported commit.
#[derive(Debug, Clone)]
pub struct ExportedPatch {
    /// The series entry it came from (`uv-cache/0001-….patch`).
    pub entry: PathBuf,
    pub krate: String,
    pub subject: String,
    /// The `git format-patch` file.
    pub file: PathBuf,
    pub files: usize,
    pub added: usize,
    pub removed: usize,
    /// Changes the `Cargo.toml` crates.io generated but not `Cargo.toml.orig`, the
    /// repository's manifest: that change could not be exported.
    pub manifest_change_lost: bool,
}

/// Totals for one crate over the whole series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrateStat {
    pub krate: String,
    pub files: usize,
    pub added: usize,
    pub removed: usize,
}

#[derive(Debug, Clone)]
pub struct Export {
    pub patches: Vec<ExportedPatch>,
    pub crates: Vec<CrateStat>,
}

/// Export the fixture's series to `out`; returns the patches in series order.
pub fn run(paths: &Paths, out: &Path) -> Result<Vec<ExportedPatch>> {
    let manifest = Manifest::load(&paths.patches())?;
    let entries = manifest
        .entries()
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| anyhow!(e))?;
    if entries.is_empty() {
        bail!("patches/series.toml lists no patches; there is nothing to export");
    }
    // `locate` rewrites the shared throwaway fetch manifest: hold the fixture lock for it.
    let located = {
        let _lock = uvfix_pipeline::lock(paths)?;
        fetch::locate(paths, &manifest)?
    };
    let out = std::path::absolute(out)?;
    let repo = super::dir(paths).join("repo");
    let crates: Vec<String> = located.sources.iter().map(|s| s.name.clone()).collect();
    let export = export_series(
        &repo,
        &out,
        &manifest.uv.version,
        &crates,
        &entries,
        |name, dest| {
            let source = located
                .sources
                .iter()
                .find(|s| s.name == name)
                .expect("only pinned crates are populated");
            vendor::extract(source, dest).map_err(Into::into)
        },
    )?;

    let matrix = paths.work().join("matrix").join("matrix.md");
    let matrix = fs_err::read_to_string(&matrix).ok();
    let description = out.join(DESCRIPTION);
    fs_err::write(
        &description,
        describe(&manifest.uv.version, &export, matrix.as_deref()),
    )?;

    println!(
        "uvfix: exported {} patch(es) against uv {} to {}/",
        export.patches.len(),
        manifest.uv.version,
        display(paths, &out)
    );
    for patch in &export.patches {
        println!(
            "  {}  (+{} -{} in {} file(s); from {})",
            patch.file.file_name().unwrap_or_default().to_string_lossy(),
            patch.added,
            patch.removed,
            patch.files,
            patch.entry.display()
        );
        if patch.manifest_change_lost {
            println!(
                "  warning: {} changes the Cargo.toml crates.io generated but not Cargo.toml.orig \
                 (the repository's Cargo.toml); make that change in Cargo.toml.orig too",
                patch.entry.display()
            );
        }
    }
    println!("  {DESCRIPTION}");
    if matrix.is_none() {
        println!(
            "uvfix: no matrix report yet, so the description says to run `cargo xtask matrix` first"
        );
    }
    println!(
        "uvfix: scratch repository with the commits: {}",
        display(paths, &repo)
    );
    Ok(export.patches)
}

/// Build the scratch repository at `repo` and write `git format-patch` files to `out`.
///
/// `populate(crate, dest)` must create `dest` holding the pristine crate. Separate from
/// [`run`] so it can be tested without crates.io.
pub fn export_series(
    repo: &Path,
    out: &Path,
    uv_version: &str,
    crates: &[String],
    entries: &[SeriesEntry],
    populate: impl Fn(&str, &Path) -> Result<()>,
) -> Result<Export> {
    fresh_dir(repo)?;
    output(git(repo).args(["init", "--quiet", "--initial-branch=main"]))?;
    for name in crates {
        let dest = repo.join("crates").join(name);
        populate(name, &dest).with_context(|| format!("extracting the pristine `{name}`"))?;
        repository_layout(&dest)?;
    }
    output(git(repo).args(["add", "--all"]))?;
    let base_message = format!(
        "uv {uv_version}: {} as published on crates.io\n",
        crates.join(", ")
    );
    commit(repo, &base_message)?;
    let base = output(git(repo).args(["rev-parse", "HEAD"]))?
        .trim()
        .to_string();

    let mut patches = commit_entries(repo, uv_version, entries)?;

    clean_out(out)?;
    let listed = output(
        git(repo)
            .args(["format-patch", "--zero-commit", "--no-signature", "-o"])
            .arg(out)
            .arg(format!("{base}..HEAD")),
    )?;
    let files: Vec<PathBuf> = listed.lines().map(PathBuf::from).collect();
    if files.len() != patches.len() {
        bail!(
            "git format-patch wrote {} file(s) for {} commit(s)",
            files.len(),
            patches.len()
        );
    }
    for (patch, file) in patches.iter_mut().zip(files) {
        patch.file = file;
    }

    let stats = crate_stats(repo, &base, crates, &patches)?;
    Ok(Export {
        patches,
        crates: stats,
    })
}

/// Apply each series entry to `repo` (paths rewritten to `crates/<crate>/…`) and commit it
/// with the patch's own message.
fn commit_entries(
    repo: &Path,
    uv_version: &str,
    entries: &[SeriesEntry],
) -> Result<Vec<ExportedPatch>> {
    // Inputs for git live next to the repository, never inside it.
    let scratch = repo.with_extension("input");
    fresh_dir(&scratch)?;
    let mut patches = Vec::new();
    for entry in entries {
        let text = fs_err::read_to_string(&entry.path)?;
        let parsed = PatchText::parse(&entry.rel, &text)?;
        let (rewritten, rewrite) = to_repository_paths(&parsed.diff);
        let diff = scratch.join("apply.diff");
        fs_err::write(&diff, &rewritten)?;
        let applied = uvfix_process::run(
            git(repo)
                .arg("apply")
                .arg("--index")
                .arg(format!("--directory=crates/{}", entry.krate))
                .arg(&diff),
            None,
        )?;
        if !applied.success() {
            bail!(
                "{} does not apply to the pristine {} (as published for uv {uv_version}):\n{}\n\
                 Rebase it: `cargo xtask vendor`, edit the crate, `cargo xtask patch refresh {}`",
                entry.rel.display(),
                entry.krate,
                applied.stderr_text().trim_end(),
                entry.krate,
            );
        }
        commit(repo, &parsed.message())?;
        let (files, added, removed) = numstat(&output(git(repo).args([
            "diff",
            "--numstat",
            "HEAD~1",
            "HEAD",
        ]))?);
        patches.push(ExportedPatch {
            entry: entry.rel.clone(),
            krate: entry.krate.clone(),
            subject: parsed.subject.clone(),
            file: PathBuf::new(),
            files,
            added,
            removed,
            manifest_change_lost: rewrite.manifest_change_lost(),
        });
    }
    fs_err::remove_dir_all(&scratch)?;

    Ok(patches)
}

/// Files and lines changed per crate over the whole series.
fn crate_stats(
    repo: &Path,
    base: &str,
    crates: &[String],
    patches: &[ExportedPatch],
) -> Result<Vec<CrateStat>> {
    let mut stats = Vec::new();
    for name in crates {
        if !patches.iter().any(|p| &p.krate == name) {
            continue;
        }
        let text = output(
            git(repo)
                .args(["diff", "--numstat", base, "HEAD", "--"])
                .arg(format!("crates/{name}")),
        )?;
        let (files, added, removed) = numstat(&text);
        stats.push(CrateStat {
            krate: name.clone(),
            files,
            added,
            removed,
        });
    }
    Ok(stats)
}

/// Turn a crate as crates.io ships it into the crate as it lives in the repository: the
/// author's `Cargo.toml.orig` is the repository's `Cargo.toml`; the generated manifest and
/// the packaging files do not exist there. Patches get the same treatment
/// ([`to_repository_paths`]), so they apply here and to astral-sh/uv alike.
fn repository_layout(dir: &Path) -> Result<()> {
    let orig = dir.join("Cargo.toml.orig");
    if !orig.is_file() {
        return Ok(());
    }
    fs_err::rename(&orig, dir.join("Cargo.toml"))?;
    for file in [".cargo_vcs_info.json", "Cargo.lock"] {
        let path = dir.join(file);
        if path.is_file() {
            fs_err::remove_file(path)?;
        }
    }
    Ok(())
}

fn commit(repo: &Path, message: &str) -> Result<()> {
    let file = repo.with_extension("message");
    fs_err::write(&file, message)?;
    output(
        git(repo)
            .args(["commit", "--quiet", "--no-verify", "--file"])
            .arg(&file),
    )?;
    fs_err::remove_file(&file)?;
    Ok(())
}

/// Remove what an earlier export left in `out` (our files only), then make sure it exists.
fn clean_out(out: &Path) -> Result<()> {
    if out.is_dir() {
        for entry in fs_err::read_dir(out)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == DESCRIPTION || is_format_patch_name(&name) {
                fs_err::remove_file(entry.path())?;
            }
        }
    }
    fs_err::create_dir_all(out)?;
    Ok(())
}

/// `0001-Subject.patch`, as `git format-patch` names its files.
fn is_format_patch_name(name: &str) -> bool {
    name.len() > 5
        && name.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && name.as_bytes()[4] == b'-'
        && name.ends_with(".patch")
}

/// The errors people meet, as README.md quotes them.
const PROBLEM: &str = "\
`uv` fails inside sandboxes that deny writes to its cache, even when the warm cache already
holds everything the command needs (#16820):

```text
# Landlock (Codex CLI)
error: failed to open file `~/.cache/uv/sdists-v9/.git`: Permission denied (os error 13)

# bubblewrap / read-only mounts (Codex, Claude Code on Linux, `docker -v …:ro`)
error: Could not acquire lock
  Caused by: Could not create temporary file
  Caused by: Read-only file system (os error 30) at path \"~/.cache/uv/.tmpXXXXXX\"

# macOS Seatbelt
error: failed to open file `~/.cache/uv/sdists-v9/.git`: Operation not permitted (os error 1)
```

A cache owned by another user (containers, shared CI caches) fails the same way.
";

/// PR-DESCRIPTION.md: the problem, the change per crate, the last matrix.
pub fn describe(uv_version: &str, export: &Export, matrix: Option<&str>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Use a warm cache that uv cannot write to\n");
    let _ = writeln!(out, "## Problem\n\n{PROBLEM}");
    let _ = writeln!(out, "## Changes\n");
    let _ = writeln!(
        out,
        "{} commit(s), written against uv {uv_version}; per crate, lines added/removed:\n",
        export.patches.len()
    );
    for stat in &export.crates {
        let _ = writeln!(
            out,
            "### `{}` (+{} −{} in {} file{})\n",
            stat.krate,
            stat.added,
            stat.removed,
            stat.files,
            if stat.files == 1 { "" } else { "s" }
        );
        for patch in export.patches.iter().filter(|p| p.krate == stat.krate) {
            let _ = writeln!(
                out,
                "- {} (+{} −{})",
                patch.subject, patch.added, patch.removed
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "## Validation\n");
    match matrix {
        Some(report) => {
            let _ = writeln!(
                out,
                "Real sandboxes × scenarios × cache states, patched vs. unpatched uv \
                 {uv_version} (from `cargo xtask matrix`):\n"
            );
            // Demote the report's own headings below ours.
            for line in report.trim_end().lines() {
                if line.starts_with('#') {
                    let _ = writeln!(out, "##{line}");
                } else {
                    let _ = writeln!(out, "{line}");
                }
            }
        }
        None => {
            let _ = writeln!(
                out,
                "No matrix report yet: run `cargo xtask matrix` first, then export again."
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn write_series(dir: &Path, patches: &[(&str, &str)]) -> Vec<SeriesEntry> {
        patches
            .iter()
            .map(|(rel, text)| {
                let path = dir.join(rel);
                fs_err::create_dir_all(path.parent().unwrap()).unwrap();
                fs_err::write(&path, text).unwrap();
                SeriesEntry {
                    rel: PathBuf::from(rel),
                    path,
                    krate: rel.split('/').next().unwrap().to_string(),
                }
            })
            .collect()
    }

    const FIRST: &str = "Subject: Say hello\n\nBecause it is polite.\n\n\
        Upstream: https://github.com/astral-sh/uv/issues/16820\n---\n\
        diff --git a/src/lib.rs b/src/lib.rs\n--- a/src/lib.rs\n+++ b/src/lib.rs\n\
        @@ -1,2 +1,3 @@\n one\n+hello\n two\n";
    // Assumes FIRST was applied: the series is cumulative.
    const SECOND: &str = "Subject: Say goodbye\n---\n\
        diff --git a/src/lib.rs b/src/lib.rs\n--- a/src/lib.rs\n+++ b/src/lib.rs\n\
        @@ -1,3 +1,3 @@\n one\n-hello\n+goodbye\n two\n";
    const OTHER: &str = "Subject: Add a module\n---\n\
        diff --git a/src/new.rs b/src/new.rs\nnew file mode 100644\n--- /dev/null\n+++ b/src/new.rs\n\
        @@ -0,0 +1,2 @@\n+pub fn f() {}\n+pub fn g() {}\n";

    /// A crate as crates.io ships it: generated `Cargo.toml`, the author's `.orig`,
    /// packaging files.
    fn populate(name: &str, dest: &Path) -> Result<()> {
        fs_err::create_dir_all(dest.join("src"))?;
        fs_err::write(
            dest.join("Cargo.toml"),
            format!("# generated by cargo\n[package]\nname = \"{name}\"\n"),
        )?;
        fs_err::write(
            dest.join("Cargo.toml.orig"),
            format!("[package]\nname = \"{name}\"\n"),
        )?;
        fs_err::write(dest.join(".cargo_vcs_info.json"), "{}\n")?;
        fs_err::write(dest.join("src/lib.rs"), "one\ntwo\n")?;
        Ok(())
    }

    // Written against the published crate: both manifests change.
    const MANIFEST: &str = "Subject: Add a dev-dependency\n---\n\
        diff --git a/Cargo.toml b/Cargo.toml\n--- a/Cargo.toml\n+++ b/Cargo.toml\n\
        @@ -1,3 +1,4 @@\n # generated by cargo\n [package]\n name = \"demo-a\"\n+[dev-dependencies.x]\n\
        diff --git a/Cargo.toml.orig b/Cargo.toml.orig\n--- a/Cargo.toml.orig\n+++ b/Cargo.toml.orig\n\
        @@ -1,2 +1,3 @@\n [package]\n name = \"demo-a\"\n+[dev-dependencies]\n";

    #[test]
    fn manifests_are_exported_as_the_repository_has_them() {
        let tmp = tempfile::tempdir().unwrap();
        let export = export(tmp.path(), &[("demo-a/0001-manifest.patch", MANIFEST)]).unwrap();
        let mail = fs_err::read_to_string(&export.patches[0].file).unwrap();
        assert!(
            mail.contains("diff --git a/crates/demo-a/Cargo.toml b/crates/demo-a/Cargo.toml\n"),
            "{mail}"
        );
        assert!(mail.contains("\n+[dev-dependencies]\n"), "{mail}");
        assert!(!mail.contains("Cargo.toml.orig"), "{mail}");
        assert!(!mail.contains("generated by cargo"), "{mail}");
        assert!(!export.patches[0].manifest_change_lost);
        let repo = tmp.path().join("repo/crates/demo-a");
        assert!(!repo.join(".cargo_vcs_info.json").exists());
        assert!(!repo.join("Cargo.toml.orig").exists());
    }

    fn export(tmp: &Path, series: &[(&str, &str)]) -> Result<Export> {
        let entries = write_series(&tmp.join("patches"), series);
        let crates = vec!["demo-a".to_string(), "demo-b".to_string()];
        export_series(
            &tmp.join("repo"),
            &tmp.join("out"),
            "0.12.5",
            &crates,
            &entries,
            populate,
        )
    }

    #[test]
    fn writes_repo_relative_mail_reproducibly() {
        let tmp = tempfile::tempdir().unwrap();
        let series = [
            ("demo-a/0001-hello.patch", FIRST),
            ("demo-b/0001-module.patch", OTHER),
            ("demo-a/0002-goodbye.patch", SECOND),
        ];
        let first = export(tmp.path(), &series).unwrap();
        let names: Vec<_> = first
            .patches
            .iter()
            .map(|p| p.file.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "0001-Say-hello.patch",
                "0002-Add-a-module.patch",
                "0003-Say-goodbye.patch"
            ]
        );
        let mail = fs_err::read_to_string(&first.patches[0].file).unwrap();
        assert!(
            mail.starts_with("From 0000000000000000000000000000000000000000 "),
            "{mail}"
        );
        assert!(
            mail.contains("From: uvfix <uvfix@example.invalid>\n"),
            "{mail}"
        );
        assert!(mail.contains("Subject: [PATCH 1/3] Say hello\n"), "{mail}");
        assert!(mail.contains("\n\nBecause it is polite.\n\nUpstream: https://github.com/astral-sh/uv/issues/16820\n---\n"), "{mail}");
        assert!(
            mail.contains("diff --git a/crates/demo-a/src/lib.rs b/crates/demo-a/src/lib.rs\n"),
            "{mail}"
        );
        assert!(
            fs_err::read_to_string(&first.patches[1].file)
                .unwrap()
                .contains("+++ b/crates/demo-b/src/new.rs\n")
        );
        assert_eq!(
            first.crates,
            [
                CrateStat {
                    krate: "demo-a".into(),
                    files: 1,
                    added: 1,
                    removed: 0
                },
                CrateStat {
                    krate: "demo-b".into(),
                    files: 1,
                    added: 2,
                    removed: 0
                }
            ]
        );
        assert_eq!((first.patches[2].added, first.patches[2].removed), (1, 1));

        let again = export(tmp.path(), &series).unwrap();
        for (a, b) in first.patches.iter().zip(&again.patches) {
            assert_eq!(
                fs_err::read(&a.file).unwrap(),
                fs_err::read(&b.file).unwrap(),
                "{} differs between two exports",
                a.file.display()
            );
        }
    }

    #[test]
    fn a_patch_that_does_not_apply_is_named_with_gits_message() {
        let tmp = tempfile::tempdir().unwrap();
        // SECOND without FIRST: its context line `hello` is not there.
        let err = export(tmp.path(), &[("demo-a/0002-goodbye.patch", SECOND)]).unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.contains("demo-a/0002-goodbye.patch does not apply"),
            "{err}"
        );
        assert!(err.contains("patch does not apply"), "{err}");
    }

    #[test]
    fn a_new_export_replaces_the_old_files_only() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        fs_err::create_dir_all(&out).unwrap();
        fs_err::write(out.join("0009-stale.patch"), "").unwrap();
        fs_err::write(out.join("notes.txt"), "mine").unwrap();
        export(tmp.path(), &[("demo-a/0001-hello.patch", FIRST)]).unwrap();
        assert!(!out.join("0009-stale.patch").exists());
        assert!(out.join("notes.txt").exists());
        assert!(out.join("0001-Say-hello.patch").exists());
    }

    #[rstest]
    #[case("0001-Open-the-cache.patch", true)]
    #[case("0012-x.patch", true)]
    #[case("PR-DESCRIPTION.md", false)]
    #[case("001-x.patch", false)]
    #[case("0001-x.diff", false)]
    fn recognises_format_patch_names(#[case] name: &str, #[case] ours: bool) {
        assert_eq!(is_format_patch_name(name), ours);
    }

    #[rstest]
    #[case::with_matrix(Some("# Matrix\n\n| a | b |\n|---|---|\n| ✓ | ✗ |\n"), "### Matrix")]
    #[case::without(None, "run `cargo xtask matrix` first")]
    fn description_has_problem_changes_and_matrix(
        #[case] matrix: Option<&str>,
        #[case] expected: &str,
    ) {
        let export = Export {
            patches: vec![ExportedPatch {
                entry: "uv-cache/0001-x.patch".into(),
                krate: "uv-cache".into(),
                subject: "Open the cache read-only".into(),
                file: "0001-Open.patch".into(),
                files: 2,
                added: 30,
                removed: 4,
                manifest_change_lost: false,
            }],
            crates: vec![CrateStat {
                krate: "uv-cache".into(),
                files: 2,
                added: 30,
                removed: 4,
            }],
        };
        let text = describe("0.12.5", &export, matrix);
        assert!(
            text.contains("Read-only file system (os error 30)"),
            "{text}"
        );
        assert!(text.contains("Permission denied (os error 13)"), "{text}");
        assert!(
            text.contains("Operation not permitted (os error 1)"),
            "{text}"
        );
        assert!(
            text.contains("### `uv-cache` (+30 −4 in 2 files)"),
            "{text}"
        );
        assert!(
            text.contains("- Open the cache read-only (+30 −4)"),
            "{text}"
        );
        assert!(text.contains(expected), "{text}");
    }
}
