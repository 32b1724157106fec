//! `cargo xtask upstream export`: the stack as `git format-patch` mail against
//! astral-sh/uv's layout, made by git itself, and one pull-request description per step.
//!
//! A scratch repository under `target/uvfix/upstream/repo` gets the pinned crates exactly as
//! crates.io ships them (extracted from the same sha256-verified `.crate` files the pristine
//! build uses) at `crates/<crate>/`, one commit; then, per step, `git apply
//! --directory=crates` and `git commit` with the patch header as the message; then
//! `git format-patch`. Author, committer and dates are fixed, so the output is reproducible.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use uvfix_pipeline::manifest::{Status, Step};
use uvfix_pipeline::{Manifest, Paths, fetch, vendor};

use super::command::output;
use super::gate_records;
use super::git::git;
use super::message::{PatchText, numstat, to_repository_paths};
use super::workdir::{self, display, fresh_dir};

/// The stack's overview, written next to the patches; each step also gets
/// `PR-<number>-<id>.md`.
pub(crate) const DESCRIPTION: &str = "PR-DESCRIPTION.md";

pub(crate) fn default_out(paths: &Paths) -> PathBuf {
    workdir::dir(paths).join("export")
}

/// One exported commit: one step of the stack, one pull request.
#[derive(Debug, Clone)]
pub(crate) struct ExportedPatch {
    /// The patch file it came from (`stack/0001-….patch`).
    pub entry: PathBuf,
    /// The step's id and 1-based number.
    pub step: String,
    pub number: usize,
    pub status: Status,
    pub claim: String,
    /// The crates it touches.
    pub crates: Vec<String>,
    pub subject: String,
    pub body: String,
    /// The `git format-patch` file.
    pub file: PathBuf,
    pub files: usize,
    pub added: usize,
    pub removed: usize,
    /// Crates whose `Cargo.toml` (as crates.io generated it) the step changes but not their
    /// `Cargo.toml.orig`, the repository's manifest: that change could not be exported.
    pub manifest_changes_lost: Vec<String>,
}

/// Totals for one crate over the whole stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CrateStat {
    pub krate: String,
    pub files: usize,
    pub added: usize,
    pub removed: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Export {
    pub patches: Vec<ExportedPatch>,
    pub crates: Vec<CrateStat>,
}

/// Export the fixture's stack to `out`; returns the patches in stack order.
pub(crate) fn run(paths: &Paths, out: &Path) -> Result<Vec<ExportedPatch>> {
    let manifest = Manifest::load(&paths.patches())?;
    if manifest.steps.is_empty() {
        bail!("patches/series.toml has no [[step]]; there is nothing to export");
    }
    // `locate` rewrites the shared throwaway fetch manifest: hold the fixture lock for it.
    let located = {
        let _lock = uvfix_pipeline::lock(paths)?;
        fetch::locate(paths, &manifest)?
    };
    let out = std::path::absolute(out)?;
    let repo = workdir::dir(paths).join("repo");
    let crates: Vec<String> = located.sources.iter().map(|s| s.name.clone()).collect();
    let export = export_series(
        &repo,
        &out,
        &manifest.uv.version,
        &crates,
        &manifest.steps,
        |name, dest| {
            let source = located
                .sources
                .iter()
                .find(|s| s.name == name)
                .expect("only pinned crates are populated");
            vendor::extract(source, dest).map_err(Into::into)
        },
    )?;

    let has_steps_report = write_descriptions(paths, &out, &manifest.uv.version, &export)?;

    println!(
        "uvfix: exported {} patch(es) against uv {} to {}/",
        export.patches.len(),
        manifest.uv.version,
        display(paths, &out)
    );
    for patch in &export.patches {
        println!(
            "  {}  {}  (+{} -{} in {} file(s); {})",
            patch.file.file_name().unwrap_or_default().to_string_lossy(),
            step_description_name(patch),
            patch.added,
            patch.removed,
            patch.files,
            patch.crates.join(", ")
        );
        for krate in &patch.manifest_changes_lost {
            println!(
                "  warning: {} changes {krate}/Cargo.toml as crates.io generated it but not \
                 {krate}/Cargo.toml.orig (the repository's Cargo.toml); make that change there too",
                patch.entry.display()
            );
        }
    }
    println!("  {DESCRIPTION}");
    if !has_steps_report {
        println!(
            "uvfix: no per-step report yet, so the descriptions say to run `cargo xtask matrix --steps` first"
        );
    }
    println!(
        "uvfix: scratch repository with the commits: {}",
        display(paths, &repo)
    );
    Ok(export.patches)
}

/// Write `PR-DESCRIPTION.md` and each step's `PR-<n>-<id>.md` to `out`, with the last
/// reports of `cargo xtask matrix` and `--steps`; returns whether there was a per-step one.
fn write_descriptions(
    paths: &Paths,
    out: &Path,
    uv_version: &str,
    export: &Export,
) -> Result<bool> {
    let reports = paths.work().join("matrix");
    let matrix = fs_err::read_to_string(reports.join("matrix.md")).ok();
    let steps_report = fs_err::read_to_string(reports.join("steps.md")).ok();
    fs_err::write(
        out.join(DESCRIPTION),
        describe(
            uv_version,
            export,
            matrix.as_deref(),
            steps_report.as_deref(),
        ),
    )?;
    let upstream_tests = workdir::dir(paths).join("check").join("tests");
    let gates = gate_records::Store::new(&workdir::dir(paths).join("check").join("gates"));
    let files: Vec<&Path> = export.patches.iter().map(|p| p.file.as_path()).collect();
    let gate_keys = gate_records::patch_keys(&files)?;
    for (patch, key) in export.patches.iter().zip(&gate_keys) {
        let read = |dir: &Path| fs_err::read_to_string(dir.join(format!("{}.md", patch.step))).ok();
        let reports = StepReports {
            cells: read(&reports.join("steps")),
            upstream_tests: read(&upstream_tests),
            ci_gates: gates
                .for_patches(&patch.step, key)
                .map(|(record, base)| gate_records::step_markdown(&record, base.as_ref())),
        };
        fs_err::write(
            out.join(step_description_name(patch)),
            describe_step(uv_version, export, patch, &reports),
        )?;
    }
    Ok(steps_report.is_some())
}

/// Build the scratch repository at `repo` and write `git format-patch` files to `out`.
///
/// `populate(crate, dest)` must create `dest` holding the pristine crate. Separate from
/// [`run`] so it can be tested without crates.io.
pub(crate) fn export_series(
    repo: &Path,
    out: &Path,
    uv_version: &str,
    crates: &[String],
    steps: &[Step],
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

    let mut patches = commit_steps(repo, uv_version, crates, steps)?;

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

/// Apply each step to `repo` (paths rewritten to `crates/<crate>/…`) and commit it with the
/// patch's own message, as `git mailinfo` reads it ([`PatchText::parse`]).
///
/// Not `git am --directory=crates`: the diff has to be rewritten first (the manifest crates.io
/// generated dropped, `Cargo.toml.orig` made `Cargo.toml`), and our patch files have no
/// `From:`, without which `git am` has no author and refuses the mail; so the mail would have
/// to be put together again only for `git am` to take it apart. `git apply` + `git commit`
/// are the same two steps it would run.
fn commit_steps(
    repo: &Path,
    uv_version: &str,
    crates: &[String],
    steps: &[Step],
) -> Result<Vec<ExportedPatch>> {
    // Inputs for git live next to the repository, never inside it.
    let scratch = repo.with_extension("input");
    fresh_dir(&scratch)?;
    let mut patches = Vec::new();
    for step in steps {
        let text = fs_err::read_to_string(&step.path)?;
        let parsed = PatchText::parse(&step.rel, &text)?;
        let (rewritten, rewrite) = to_repository_paths(&parsed.diff)
            .with_context(|| format!("{}: reading its diff", step.rel.display()))?;
        let diff = scratch.join("apply.diff");
        fs_err::write(&diff, &rewritten)?;
        let applied = uvfix_process::run(
            git(repo)
                .args(["apply", "--index", "--directory=crates"])
                .arg(&diff),
            None,
        )?;
        if !applied.success() {
            bail!(
                "{} (step `{}`) does not apply to the pristine crates (as published for uv \
                 {uv_version}) with the steps below it:\n{}\n\
                 Rebase it: `cargo xtask vendor`, edit `cargo xtask patch edit {}`, then \
                 `cargo xtask patch refresh {}`",
                step.rel.display(),
                step.id,
                applied.stderr_text().trim_end(),
                step.id,
                step.id,
            );
        }
        commit(repo, &parsed.message())?;
        let stat = output(git(repo).args(["diff", "--numstat", "HEAD~1", "HEAD"]))?;
        let (files, added, removed) = numstat(&stat);
        let touched = touched_crates(&stat, crates);
        patches.push(ExportedPatch {
            entry: step.rel.clone(),
            step: step.id.clone(),
            number: step.number,
            status: step.status,
            claim: step.claim.clone(),
            crates: touched,
            subject: parsed.subject.clone(),
            body: parsed.body.clone(),
            file: PathBuf::new(),
            files,
            added,
            removed,
            manifest_changes_lost: rewrite.manifest_changes_lost(),
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
        if !patches.iter().any(|p| p.crates.contains(name)) {
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

/// The crates a `git diff --numstat` touches, in the order of `crates`.
fn touched_crates(numstat: &str, crates: &[String]) -> Vec<String> {
    crates
        .iter()
        .filter(|krate| {
            numstat
                .lines()
                .filter_map(|line| line.split('\t').nth(2))
                .any(|path| path.starts_with(&format!("crates/{krate}/")))
        })
        .cloned()
        .collect()
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
            if name == DESCRIPTION || is_format_patch_name(&name) || is_step_description(&name) {
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

/// `PR-0003-missing-lock.md`: the description of one step's pull request.
fn step_description_name(patch: &ExportedPatch) -> String {
    format!("PR-{:04}-{}.md", patch.number, patch.step)
}

fn is_step_description(name: &str) -> bool {
    name.starts_with("PR-") && name.ends_with(".md") && name != DESCRIPTION
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

fn status_word(status: Status) -> &'static str {
    match status {
        Status::Proposed => "proposed",
        Status::Optional => "optional",
    }
}

/// PR-DESCRIPTION.md: the problem, the stack (one pull request per step), the size per
/// crate, and the last reports.
pub(crate) fn describe(
    uv_version: &str,
    export: &Export,
    matrix: Option<&str>,
    steps: Option<&str>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Use a warm cache that uv cannot write to\n");
    let _ = writeln!(out, "## Problem\n\n{PROBLEM}");
    let _ = writeln!(out, "## The stack\n");
    let _ = writeln!(
        out,
        "{} pull requests, each on top of the ones before it, written against uv {uv_version}. \
         `optional` steps are design decisions that can be declined; nothing proposed depends \
         on them.\n",
        export.patches.len()
    );
    let _ = writeln!(out, "| # | step | status | size | crates | claim |");
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for patch in &export.patches {
        let _ = writeln!(
            out,
            "| {} | {} | {} | +{} −{} | {} | {} |",
            patch.number,
            patch.subject,
            status_word(patch.status),
            patch.added,
            patch.removed,
            patch.crates.join(", "),
            patch.claim
        );
    }
    let _ = writeln!(out, "\nPer crate, over the whole stack:\n");
    for stat in &export.crates {
        let _ = writeln!(
            out,
            "- `{}`: +{} −{} in {} file{}",
            stat.krate,
            stat.added,
            stat.removed,
            stat.files,
            if stat.files == 1 { "" } else { "s" }
        );
    }
    let _ = writeln!(out, "\n## Validation\n");
    push_report(
        &mut out,
        steps,
        "Cells each step turns green (from `cargo xtask matrix --steps`):",
        "No per-step report yet: run `cargo xtask matrix --steps`, then export again.",
    );
    push_report(
        &mut out,
        matrix,
        &format!(
            "Real sandboxes × scenarios × cache states, the whole stack vs. unpatched uv \
             {uv_version} (from `cargo xtask matrix`):"
        ),
        "No matrix report yet: run `cargo xtask matrix` first, then export again.",
    );
    out
}

/// What was measured of one step, as Markdown.
#[derive(Default)]
pub(crate) struct StepReports {
    /// Its before/after table from `cargo xtask matrix --steps`.
    pub cells: Option<String>,
    /// How upstream's own tests fared with it (`cargo xtask upstream check --tests --steps`).
    pub upstream_tests: Option<String>,
    /// uv's CI gates at this step (`cargo xtask upstream check --gates`).
    pub ci_gates: Option<String>,
}

/// `PR-<number>-<id>.md`: one step's pull request: its message, where it sits in the stack,
/// its size, its own before/after table and upstream's tests at this step.
pub(crate) fn describe_step(
    uv_version: &str,
    export: &Export,
    patch: &ExportedPatch,
    reports: &StepReports,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", patch.subject);
    let _ = writeln!(out, "{}\n", patch.body);
    let _ = writeln!(out, "## In the stack\n");
    let _ = writeln!(
        out,
        "Step {} of {} ({}), against uv {uv_version}: {}.",
        patch.number,
        export.patches.len(),
        status_word(patch.status),
        patch.claim
    );
    let below: Vec<String> = export
        .patches
        .iter()
        .filter(|p| p.number < patch.number)
        .map(|p| format!("{} ({})", p.number, p.subject))
        .collect();
    if below.is_empty() {
        let _ = writeln!(out, "It applies to uv {uv_version} as released.");
    } else {
        let _ = writeln!(out, "It applies on top of: {}.", below.join("; "));
    }
    let _ = writeln!(
        out,
        "\nSize: +{} −{} in {} file{} ({}).\n",
        patch.added,
        patch.removed,
        patch.files,
        if patch.files == 1 { "" } else { "s" },
        patch.crates.join(", ")
    );
    let _ = writeln!(out, "## Before and after\n");
    push_report(
        &mut out,
        reports.cells.as_deref(),
        "Cells of `cargo xtask matrix --steps`, without this step (the steps below it only) \
         and with it:",
        "No per-step report yet: run `cargo xtask matrix --steps`, then export again.",
    );
    let _ = writeln!(out, "## uv's CI gates\n");
    push_report(
        &mut out,
        reports.ci_gates.as_deref(),
        "`cargo xtask upstream check --gates`, at this step:",
        "Not run yet for this step as it is: `cargo xtask upstream check <astral-sh/uv> --rev \
         <release> --gates`, then export again.",
    );
    let _ = writeln!(out, "## uv's own tests\n");
    push_report(
        &mut out,
        reports.upstream_tests.as_deref(),
        "`cargo xtask upstream check --tests --steps`, at this step:",
        "Not run yet: `cargo xtask upstream check <astral-sh/uv> --rev <release> --tests \
         --steps`, then export again.",
    );
    out
}

/// Append a Markdown report under our headings, or say how to make it.
fn push_report(out: &mut String, report: Option<&str>, intro: &str, missing: &str) {
    match report {
        Some(report) => {
            let _ = writeln!(out, "{intro}\n");
            // Demote the report's own headings below ours.
            for line in report.trim_end().lines() {
                if line.starts_with('#') {
                    let _ = writeln!(out, "##{line}");
                } else {
                    let _ = writeln!(out, "{line}");
                }
            }
            out.push('\n');
        }
        None => {
            let _ = writeln!(out, "{missing}\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn write_stack(dir: &Path, patches: &[(&str, &str)]) -> Vec<Step> {
        patches
            .iter()
            .enumerate()
            .map(|(index, (rel, text))| {
                let path = dir.join(rel);
                fs_err::create_dir_all(path.parent().unwrap()).unwrap();
                fs_err::write(&path, text).unwrap();
                Step {
                    id: format!("step-{}", index + 1),
                    number: index + 1,
                    rel: PathBuf::from(rel),
                    path,
                    status: Status::Proposed,
                    claim: "a claim".into(),
                }
            })
            .collect()
    }

    const FIRST: &str = "Subject: Say hello\n\nBecause it is polite.\n\n\
        Upstream: https://github.com/astral-sh/uv/issues/16820\n---\n\
        diff --git a/demo-a/src/lib.rs b/demo-a/src/lib.rs\n--- a/demo-a/src/lib.rs\n+++ b/demo-a/src/lib.rs\n\
        @@ -1,2 +1,3 @@\n one\n+hello\n two\n";
    // Assumes FIRST was applied: the stack is cumulative.
    const SECOND: &str = "Subject: Say goodbye\n---\n\
        diff --git a/demo-a/src/lib.rs b/demo-a/src/lib.rs\n--- a/demo-a/src/lib.rs\n+++ b/demo-a/src/lib.rs\n\
        @@ -1,3 +1,3 @@\n one\n-hello\n+goodbye\n two\n";
    const OTHER: &str = "Subject: Add a module\n---\n\
        diff --git a/demo-b/src/new.rs b/demo-b/src/new.rs\nnew file mode 100644\n--- /dev/null\n+++ b/demo-b/src/new.rs\n\
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
        diff --git a/demo-a/Cargo.toml b/demo-a/Cargo.toml\n--- a/demo-a/Cargo.toml\n+++ b/demo-a/Cargo.toml\n\
        @@ -1,3 +1,4 @@\n # generated by cargo\n [package]\n name = \"demo-a\"\n+[dev-dependencies.x]\n\
        diff --git a/demo-a/Cargo.toml.orig b/demo-a/Cargo.toml.orig\n--- a/demo-a/Cargo.toml.orig\n+++ b/demo-a/Cargo.toml.orig\n\
        @@ -1,2 +1,3 @@\n [package]\n name = \"demo-a\"\n+[dev-dependencies]\n";

    #[test]
    fn manifests_are_exported_as_the_repository_has_them() {
        let tmp = tempfile::tempdir().unwrap();
        let export = export(tmp.path(), &[("stack/0001-manifest.patch", MANIFEST)]).unwrap();
        let mail = fs_err::read_to_string(&export.patches[0].file).unwrap();
        // The author's `Cargo.toml.orig` change, on the repository's `Cargo.toml`.
        insta::assert_snapshot!(undated(&mail));
        // Neither the published crate's files nor its generated header reach upstream.
        assert!(!mail.contains("Cargo.toml.orig"), "{mail}");
        assert!(!mail.contains("generated by cargo"), "{mail}");
        assert!(export.patches[0].manifest_changes_lost.is_empty());
        let repo = tmp.path().join("repo/crates/demo-a");
        assert!(!repo.join(".cargo_vcs_info.json").exists());
        assert!(!repo.join("Cargo.toml.orig").exists());
    }

    /// `mail` with its `Date:` header redacted: the date is fixed, but by `$SOURCE_DATE_EPOCH`
    /// when that is set.
    fn undated(mail: &str) -> String {
        let mut out: String = mail
            .lines()
            .map(|line| {
                if line.starts_with("Date: ") {
                    "Date: [$SOURCE_DATE_EPOCH, or 2026-01-01]"
                } else {
                    line
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        out.push('\n');
        out
    }

    fn export(tmp: &Path, series: &[(&str, &str)]) -> Result<Export> {
        let steps = write_stack(&tmp.join("patches"), series);
        let crates = vec!["demo-a".to_string(), "demo-b".to_string()];
        export_series(
            &tmp.join("repo"),
            &tmp.join("out"),
            "0.12.5",
            &crates,
            &steps,
            populate,
        )
    }

    #[test]
    fn writes_repo_relative_mail_reproducibly() {
        let tmp = tempfile::tempdir().unwrap();
        let series = [
            ("stack/0001-hello.patch", FIRST),
            ("stack/0002-module.patch", OTHER),
            ("stack/0003-goodbye.patch", SECOND),
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
        // Zero commit id, fixed author and date, `[PATCH n/m]`, the message as written and
        // paths from the repository's root.
        let mails: Vec<String> = first
            .patches
            .iter()
            .map(|p| undated(&fs_err::read_to_string(&p.file).unwrap()))
            .collect();
        let mails = mails.join("\n=====\n");
        insta::assert_snapshot!(mails);
        // The date in the snapshot is redacted; unless `$SOURCE_DATE_EPOCH` says otherwise it
        // is this one, whenever the export runs.
        if std::env::var_os("SOURCE_DATE_EPOCH").is_none() {
            let mail = fs_err::read_to_string(&first.patches[0].file).unwrap();
            assert!(
                mail.contains("\nDate: Thu, 1 Jan 2026 00:00:00 +0000\n"),
                "{mail}"
            );
        }
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
        let err = export(tmp.path(), &[("stack/0002-goodbye.patch", SECOND)]).unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.contains("stack/0002-goodbye.patch (step `step-1`) does not apply"),
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
        export(tmp.path(), &[("stack/0001-hello.patch", FIRST)]).unwrap();
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

    /// The cover letter and a step's description, with the reports and without (then they
    /// say which command makes each).
    #[rstest]
    #[case::with_reports("with_reports", Some("# Matrix\n\n| a | b |\n|---|---|\n| ✓ | ✗ |\n"))]
    #[case::without("without", None)]
    fn descriptions_have_problem_stack_and_reports(
        #[case] name: &str,
        #[case] report: Option<&str>,
    ) {
        let patch = ExportedPatch {
            entry: "stack/0002-x.patch".into(),
            step: "locks".into(),
            number: 2,
            status: Status::Optional,
            claim: "shared locks work read-only".into(),
            crates: vec!["uv-fs".into(), "uv-cache".into()],
            subject: "Open the cache read-only".into(),
            body: "Because sandboxes.".into(),
            file: "0002-Open.patch".into(),
            files: 2,
            added: 30,
            removed: 4,
            manifest_changes_lost: vec![],
        };
        let first = ExportedPatch {
            number: 1,
            step: "markers".into(),
            subject: "Leave markers alone".into(),
            ..patch.clone()
        };
        let export = Export {
            patches: vec![first, patch.clone()],
            crates: vec![CrateStat {
                krate: "uv-cache".into(),
                files: 2,
                added: 30,
                removed: 4,
            }],
        };
        let text = describe("0.12.5", &export, report, report);
        insta::assert_snapshot!(format!("describe_{name}"), text);
        only_the_title_is_a_top_heading(&text);

        let reports = StepReports {
            cells: report.map(str::to_string),
            upstream_tests: report
                .map(|_| "| step | passed |\n|---|---:|\n| locks | 41 |\n".into()),
            ci_gates: report.map(|_| {
                "| gate | command | result | time |\n| check | `cargo check` | FAIL | 1 s |\n"
                    .into()
            }),
        };
        let text = describe_step("0.12.5", &export, &patch, &reports);
        insta::assert_snapshot!(format!("describe_step_{name}"), text);
        only_the_title_is_a_top_heading(&text);
        assert_eq!(step_description_name(&patch), "PR-0002-locks.md");
    }

    /// A report's own headings are demoted below ours: a description has one `# ` heading
    /// (outside code blocks), its first line.
    fn only_the_title_is_a_top_heading(text: &str) {
        let mut fenced = false;
        let top: Vec<&str> = text
            .lines()
            .filter(|l| {
                if l.starts_with("```") {
                    fenced = !fenced;
                }
                !fenced && l.starts_with("# ")
            })
            .collect();
        assert_eq!(top.len(), 1, "{text}");
        assert!(text.starts_with(top[0]), "{text}");
    }
}
