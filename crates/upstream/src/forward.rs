//! `cargo xtask upstream forward release [--to VERSION]` and `forward checkout PATH`: how far
//! is the series from newer releases, or from an astral-sh/uv tree?
//!
//! For each pinned crate, cargo downloads the target release (through a throwaway manifest
//! under `target/uvfix/upstream/forward/`; it only has to resolve, not build, so a release
//! needing a newer rustc is fine) and we extract its checksum-verified `.crate`. Then every
//! patch of that crate is tried in series order with GNU `patch --dry-run -p1 --verbose`,
//! and applied for real to that scratch copy before the next one is tried, since later
//! patches assume earlier ones. GNU patch decides offsets and fuzz; we only read its report.
//!
//! With `forward checkout PATH [--rev REV]` the newer sources are the crates of an astral-sh/uv
//! checkout instead (`crates/<name>` at REV, read with `git archive`, so the checkout is not
//! touched): the rebase cost against `main`, which the nightly workflow reports beside the
//! cost against the newest release.
//!
//! Failing hunks are the finding, not an error: the command exits non-zero only when a tool
//! fails.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use uvfix_pipeline::fetch::{MetaPackage, PackageSource as _, ShippedLock};
use uvfix_pipeline::manifest::{PinnedCrate, Step};
use uvfix_pipeline::vendor::{self, CrateSource};
use uvfix_pipeline::{Manifest, Paths, fetch};

use super::command::output;
use super::diff;
use super::git::git;
use super::gnu_patch::{self, Hunk, Skip, Status};
use super::message::PatchText;
use super::workdir::{self, display, fresh_dir};

/// One patch tried against one newer release.
#[derive(Debug, Clone)]
pub(crate) struct PatchReport {
    pub entry: PathBuf,
    /// The step's id.
    pub step: String,
    /// The versions of the crates the step touches, before and after.
    pub from: String,
    pub to: String,
    /// Each hunk GNU patch reported, with its header from the patch file when known.
    pub hunks: Vec<(Option<String>, Hunk)>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub hunks: usize,
    pub clean: usize,
    pub offset: usize,
    pub fuzz: usize,
    pub fails: usize,
    pub skipped: usize,
}

impl PatchReport {
    /// `uv-cache 0.0.72 → uv-cache 0.0.98`: the versions the step moves between.
    pub(crate) fn versions(&self) -> String {
        format!("{} → {}", self.from, self.to)
    }

    pub(crate) fn counts(&self) -> Counts {
        let mut counts = Counts {
            hunks: self.hunks.len(),
            ..Counts::default()
        };
        for (_, hunk) in &self.hunks {
            match hunk.status {
                Status::Applies => counts.clean += 1,
                Status::Offset(_) => counts.offset += 1,
                Status::Fuzz { .. } => counts.fuzz += 1,
                Status::Fails => counts.fails += 1,
                Status::Skipped(_) => counts.skipped += 1,
            }
        }
        counts
    }

    pub(crate) fn verdict(&self) -> Verdict {
        let c = self.counts();
        if c.hunks > 0
            && self
                .hunks
                .iter()
                .all(|(_, h)| h.status == Status::Skipped(Skip::AlreadyApplied))
        {
            Verdict::AlreadyUpstream
        } else if c.fails > 0 || c.skipped > 0 {
            Verdict::Fails
        } else if c.fuzz > 0 {
            Verdict::Fuzz
        } else if c.offset > 0 {
            Verdict::Moved
        } else {
            Verdict::Applies
        }
    }
}

/// What a patch needs before it can go to a newer release; shown as the report's last column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::Display)]
pub(crate) enum Verdict {
    #[strum(serialize = "applies")]
    Applies,
    /// Every hunk applies, some at an offset: `git apply` and `git am` take it as it is.
    #[strum(serialize = "applies (moved)")]
    Moved,
    /// Every hunk applies, some only with fuzz (context lines that changed): GNU patch takes
    /// it, `git apply` and `git am` refuse it, so the PR needs a refresh before it is sent.
    #[strum(serialize = "applies with fuzz (git apply refuses)")]
    Fuzz,
    /// A hunk fails or its file is gone: the patch needs a rebase.
    #[strum(serialize = "FAILS")]
    Fails,
    /// Every hunk is already there.
    #[strum(serialize = "already upstream?")]
    AlreadyUpstream,
}

pub(crate) fn run(paths: &Paths, to: Option<&str>) -> Result<()> {
    let manifest = Manifest::load(&paths.patches())?;
    check_gnu_patch()?;
    let dir = workdir::dir(paths).join("forward");
    fs_err::create_dir_all(&dir)?;
    let (resolved, targets, missing) = targets(&dir, &manifest, to)?;
    let trees = dir.join("trees");
    fresh_dir(&trees)?;
    for (pin, version) in &targets {
        vendor::extract(
            &resolved.source(&pin.name, version)?,
            &trees.join(&pin.name),
        )?;
    }
    forward(
        paths,
        &dir,
        &manifest,
        &targets,
        &missing,
        &trees,
        Layout::Published,
    )
}

/// The stack against the crates of an astral-sh/uv checkout at `rev` (`main`, usually).
pub(crate) fn run_on_checkout(paths: &Paths, checkout: &Path, rev: &str) -> Result<()> {
    let manifest = Manifest::load(&paths.patches())?;
    check_gnu_patch()?;
    let checkout = std::path::absolute(checkout)?;
    let (sha, title) = super::checkout::resolve(&checkout, rev)?;
    let sha = sha.as_str();
    let dir = workdir::dir(paths).join("forward-checkout");
    fs_err::create_dir_all(&dir)?;
    let trees = dir.join("trees");
    fresh_dir(&trees)?;
    let (mut targets, mut missing) = (Vec::new(), Vec::new());
    for pin in &manifest.crates {
        let krate = format!("crates/{}", pin.name);
        match checkout_version(&checkout, sha, &krate)? {
            Some(version) => {
                unpack_tree(&checkout, sha, &krate, &trees.join(&pin.name))?;
                targets.push((pin.clone(), version));
            }
            None => missing.push(format!(
                "{}: no `{krate}` at {title} (renamed or merged?); its hunks fail",
                pin.name
            )),
        }
    }
    let title = format!("astral-sh/uv at {title}");
    // The mails a maintainer would `git am`, not the stack's own files: git recomputes each
    // diff when it exports, and may place a hunk a line apart from ours. Seen at a commit past
    // 0.12.5 where upstream had added an import right after `mod tests {` in uv-fs: our diff of
    // `markers` applied there, the exported one did not.
    let exported = super::export::run(paths, &dir.join("export"))?;
    let diffs = exported
        .iter()
        .map(|patch| {
            let text = fs_err::read_to_string(&patch.file)?;
            relative_to_crates(&PatchText::parse(&patch.file, &text)?.diff)
                .with_context(|| format!("{}: reading its diff", patch.file.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let layout = Layout::Exported {
        title: &title,
        diffs: &diffs,
    };
    forward(paths, &dir, &manifest, &targets, &missing, &trees, layout)
}

/// An exported diff's paths (`crates/uv-cache/src/lib.rs`) made relative to `crates/`, as the
/// scratch trees are laid out (`uv-cache/src/lib.rs`).
fn relative_to_crates(diff: &str) -> Result<String> {
    diff::map_paths(diff, |path| {
        Some(path.strip_prefix("crates/").unwrap_or(path).to_string())
    })
}

/// How the target crates are laid out, which decides the diffs tried on them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout<'a> {
    /// As crates.io ships them: the patches apply as written.
    Published,
    /// As they live in the repository named by `title`: the diffs of `upstream export`'s
    /// mails, one per step in stack order (`Cargo.toml.orig` is the repository's
    /// `Cargo.toml`; the generated one is not there).
    Exported { title: &'a str, diffs: &'a [String] },
}

/// `crates/<name>`'s version at `sha`, or `None` when the crate is not there.
fn checkout_version(checkout: &Path, sha: &str, krate: &str) -> Result<Option<String>> {
    let manifest = git(checkout)
        .args(["show", &format!("{sha}:{krate}/Cargo.toml")])
        .output()
        .context("cannot run git; is it installed?")?;
    if !manifest.status.success() {
        return Ok(None);
    }
    let value: toml::Value = toml::from_str(&String::from_utf8_lossy(&manifest.stdout))
        .with_context(|| format!("{krate}/Cargo.toml at {sha} is not valid TOML"))?;
    Ok(Some(
        value
            .get("package")
            .and_then(|p| p.get("version"))
            .and_then(toml::Value::as_str)
            // `version.workspace = true`: the commit is the identity that matters.
            .unwrap_or("(workspace version)")
            .to_string(),
    ))
}

/// `git archive <sha>:<krate>` unpacked into `dest`, so the patch paths (`uv-cache/src/…`)
/// line up as they do for a `.crate`.
fn unpack_tree(checkout: &Path, sha: &str, krate: &str, dest: &Path) -> Result<()> {
    let archive = uvfix_process::checked(git(checkout).args([
        "archive",
        "--format=tar",
        &format!("{sha}:{krate}"),
    ]))?;
    fs_err::create_dir_all(dest)?;
    tar::Archive::new(archive.stdout.as_slice())
        .unpack(dest)
        .with_context(|| format!("unpacking {krate} at {sha} into {}", dest.display()))
}

/// Try the stack on `trees` (one directory per pinned crate, already filled), print and
/// write the report.
fn forward(
    paths: &Paths,
    dir: &Path,
    manifest: &Manifest,
    targets: &[Target],
    missing: &[String],
    trees: &Path,
    layout: Layout,
) -> Result<()> {
    let heading = match layout {
        Layout::Published => "crates.io releases".to_string(),
        Layout::Exported { title, .. } => title.to_string(),
    };
    println!(
        "uvfix: trying the series on {heading}: {}",
        targets
            .iter()
            .map(|(pin, to)| format!("{} {} → {to}", pin.name, pin.version))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let reports = try_stack(dir, manifest, targets, trees, layout)?;
    let report = write_report(paths, dir, &heading, &reports, missing, trees)?;
    let count = |verdict| reports.iter().filter(|r| r.verdict() == verdict).count();
    let (failing, fuzzy) = (count(Verdict::Fails), count(Verdict::Fuzz));
    println!(
        "\nuvfix: {failing} of {} patch(es) need a rebase for these sources, {fuzzy} more apply \
         only with fuzz (a refresh before `git am`); report: {}; patched trees: {}",
        reports.len(),
        display(paths, &report),
        display(paths, trees)
    );
    Ok(())
}

/// A pinned crate and the newer release to try its patches on.
type Target = (PinnedCrate, String);

/// Which release of each pinned crate to try (the newest of each, or the ones uv `to`
/// depends on), with cargo's resolve of them; and why a crate could not be tried.
fn targets(
    dir: &Path,
    manifest: &Manifest,
    to: Option<&str>,
) -> Result<(Resolved, Vec<Target>, Vec<String>)> {
    // Which release to try, per crate: the newest of each, or the ones uv `to` depends on.
    write_manifest(dir, &[])?;
    let deps: Vec<(String, String)> = match to {
        Some(release) => vec![("uv".to_string(), release.to_string())],
        None => manifest
            .crates
            .iter()
            .map(|pin| Ok((pin.name.clone(), newest(dir, &pin.name)?)))
            .collect::<Result<_>>()?,
    };
    // Make cargo download them; the `.crate` files are then extracted and verified.
    write_manifest(dir, &deps)?;
    let resolved = Resolved::new(dir)?;
    let mut targets = Vec::new();
    let mut missing = Vec::new();
    for pin in &manifest.crates {
        let version = match to {
            Some(release) => match resolved.version_of(&pin.name) {
                Some(version) => version,
                None => {
                    missing.push(format!(
                        "{}: uv {release} does not depend on it from crates.io (renamed, merged \
                         or no longer published?); the hunks of {} step(s) in it fail",
                        pin.name,
                        manifest
                            .steps
                            .iter()
                            .filter(|step| touched(step).is_ok_and(|t| t.contains(&pin.name)))
                            .count()
                    ));
                    continue;
                }
            },
            None => deps
                .iter()
                .find(|(name, _)| name == &pin.name)
                .map(|(_, v)| v.clone())
                .expect("one per pin"),
        };
        targets.push((pin.clone(), version));
    }
    Ok((resolved, targets, missing))
}

/// Apply every step of the stack, in order, to scratch copies of the target sources with
/// GNU patch (a dry run first, for the report). The crates share one tree, as the patch paths
/// expect (`uv-cache/src/lib.rs`), and each step sees what the steps below it changed.
fn try_stack(
    dir: &Path,
    manifest: &Manifest,
    targets: &[Target],
    trees: &Path,
    layout: Layout,
) -> Result<Vec<PatchReport>> {
    let inputs = dir.join("inputs");
    fresh_dir(&inputs)?;
    let versions = |krate: &str| {
        targets
            .iter()
            .find(|(pin, _)| pin.name == krate)
            .map_or_else(
                || (krate.to_string(), format!("{krate} (gone)")),
                |(pin, to)| (format!("{krate} {}", pin.version), format!("{krate} {to}")),
            )
    };
    let mut reports = Vec::new();
    for (n, step) in manifest.steps.iter().enumerate() {
        let diff = match layout {
            Layout::Published => {
                let text = fs_err::read_to_string(&step.path)?;
                PatchText::parse(&step.rel, &text)?.diff
            }
            Layout::Exported { diffs, .. } => diffs
                .get(n)
                .with_context(|| format!("the export has no patch for step {}", step.id))?
                .clone(),
        };
        let input = inputs.join(format!("{}.diff", step.id));
        fs_err::write(&input, &diff)?;
        let dry = gnu_patch_run(trees, &input, true, None)?;
        gnu_patch_run(trees, &input, false, None)?;
        let (from, to): (Vec<String>, Vec<String>) =
            touched(step)?.iter().map(|krate| versions(krate)).unzip();
        reports.push(PatchReport {
            entry: step.rel.clone(),
            step: step.id.clone(),
            from: from.join(", "),
            to: to.join(", "),
            hunks: label(&diff, gnu_patch::parse(&dry))?,
        });
    }
    Ok(reports)
}

/// The crates a step's patch touches, in the order its files name them.
fn touched(step: &Step) -> Result<Vec<String>> {
    crates_of(&fs_err::read_to_string(&step.path)?)
        .with_context(|| format!("{}: reading its diff", step.rel.display()))
}

/// The crates a diff touches, in the order its files name them.
pub(super) fn crates_of(diff: &str) -> Result<Vec<String>> {
    let mut crates: Vec<String> = Vec::new();
    for path in diff::file_paths(diff)? {
        let krate = path.split('/').next().unwrap_or_default();
        if !crates.iter().any(|c| c == krate) {
            crates.push(krate.to_string());
        }
    }
    Ok(crates)
}

/// Print the hunks and the table, and write them to `report.md`; returns its path.
fn write_report(
    paths: &Paths,
    dir: &Path,
    heading: &str,
    reports: &[PatchReport],
    missing: &[String],
    trees: &Path,
) -> Result<PathBuf> {
    let details = render_details(reports);
    let table = render_table(reports);
    print!("\n{details}\n{table}");
    for line in missing {
        println!("{line}");
    }
    let report = dir.join("report.md");
    fs_err::write(
        &report,
        format!(
            "# Forward report: {heading}\n\n{table}\n{}## Hunks\n\n```text\n{details}```\n\n\
             Scratch trees (with every hunk that applied): {}\n",
            missing
                .iter()
                .map(|line| format!("- {line}\n\n"))
                .collect::<String>(),
            display(paths, trees)
        ),
    )?;
    Ok(report)
}

/// GNU patch is required: BSD patch (macOS) reports offsets and fuzz differently.
pub(super) fn check_gnu_patch() -> Result<()> {
    let version = output(Command::new("patch").arg("--version")).context(
        "`patch` is needed for `upstream forward` (apt-get install patch, or ci/install-deps.sh)",
    )?;
    if !version.contains("GNU patch") {
        bail!(
            "`patch` on PATH is not GNU patch ({}); install it (macOS: `brew install gpatch` and \
             put its `patch` first on PATH)",
            version.lines().next().unwrap_or_default()
        );
    }
    Ok(())
}

/// `patch -p1 --verbose --forward --batch` in `tree`; stdout. Exit status 1 (some hunks
/// failed) is a result, 2 is trouble. Applying for real, the hunks that failed go to
/// `rejects` (one file for every file of the patch), or nowhere.
pub(super) fn gnu_patch_run(
    tree: &Path,
    input: &Path,
    dry_run: bool,
    rejects: Option<&Path>,
) -> Result<String> {
    let mut command = Command::new("patch");
    command.env("LC_ALL", "C").args([
        "-p1",
        "--verbose",
        // Treat an already-applied change as such instead of asking or reversing it.
        "--forward",
        "--batch",
    ]);
    if dry_run {
        command.arg("--dry-run");
    } else {
        command.arg("--no-backup-if-mismatch").arg(match rejects {
            Some(file) => format!("--reject-file={}", file.display()),
            None => "--reject-file=-".to_string(),
        });
    }
    command.arg("-d").arg(tree).arg("-i").arg(input);
    let out = uvfix_process::run(&mut command, None)?;
    match out.exit_code {
        Some(0 | 1) => Ok(out.stdout_text()),
        _ => bail!(
            "`patch` failed on {} ({}):\n{}{}",
            input.display(),
            out.status_text(),
            out.stdout_text(),
            out.stderr_text()
        ),
    }
}

/// Attach each reported hunk's `@@ … @@` header from the patch itself.
pub(super) fn label(diff: &str, reported: Vec<Hunk>) -> Result<Vec<(Option<String>, Hunk)>> {
    let headers: BTreeMap<String, Vec<String>> = diff::hunk_headers(diff)?.into_iter().collect();
    Ok(reported
        .into_iter()
        .map(|hunk| {
            let header = headers
                .get(&hunk.file)
                .and_then(|h| h.get(hunk.number.wrapping_sub(1)))
                .cloned();
            (header, hunk)
        })
        .collect())
}

/// Per patch, per file, per hunk.
pub(crate) fn render_details(reports: &[PatchReport]) -> String {
    let mut out = String::new();
    for report in reports {
        let _ = writeln!(
            out,
            "{}  ({}: {})",
            report.entry.display(),
            report.step,
            report.versions()
        );
        let mut file = None;
        for (header, hunk) in &report.hunks {
            if file != Some(&hunk.file) {
                let _ = writeln!(out, "  {}", hunk.file);
                file = Some(&hunk.file);
            }
            let at = match hunk.status {
                Status::Skipped(_) => String::new(),
                _ => format!(" (at line {})", hunk.line),
            };
            let _ = writeln!(
                out,
                "    hunk #{} {}  {}{at}",
                hunk.number,
                header.as_deref().unwrap_or(""),
                hunk.status
            );
        }
        if report.hunks.is_empty() {
            let _ = writeln!(out, "  (GNU patch reported no hunks)");
        }
    }
    out
}

/// The per-patch summary, as a Markdown table.
pub(crate) fn render_table(reports: &[PatchReport]) -> String {
    let mut out = String::from(
        "| patch | step | from → to | hunks | clean | offset | fuzz | fails | skipped | verdict |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for report in reports {
        let c = report.counts();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            report.entry.display(),
            report.step,
            report.versions(),
            c.hunks,
            c.clean,
            c.offset,
            c.fuzz,
            c.fails,
            c.skipped,
            report.verdict()
        );
    }
    out
}

/// The throwaway manifest: `<crate> = "=VERSION"` for each dependency (none at first, so
/// that `cargo info` runs outside the fixture's workspace).
fn write_manifest(dir: &Path, deps: &[(String, String)]) -> Result<()> {
    let mut workspace = toml::Table::new();
    workspace.insert("workspace".into(), toml::Table::new().into());
    let text = uvfix_pipeline::cargo_toml(
        "Generated by `cargo xtask upstream forward release`: only used to make cargo download\n\
         newer releases of the pinned crates. It is never built.",
        "uvfix-forward",
        uvfix_pipeline::exact_pins(deps.iter().map(|(n, v)| (n.as_str(), v.as_str()))),
        workspace,
    );
    fs_err::create_dir_all(dir.join("src"))?;
    fs_err::write(dir.join("src/lib.rs"), "")?;
    fs_err::write(dir.join("Cargo.toml"), text)?;
    // Resolve afresh: the point is the newest releases.
    let lock = dir.join("Cargo.lock");
    if lock.exists() {
        fs_err::remove_file(lock)?;
    }
    Ok(())
}

/// The newest release of `name` on crates.io, from `cargo info` (which prints the newest
/// release compatible with this rustc, and `(latest X)` when a newer one exists).
fn newest(dir: &Path, name: &str) -> Result<String> {
    let text = output(
        fetch::cargo()
            .current_dir(dir)
            .args(["info", "--quiet", name]),
    )?;
    parse_cargo_info_version(&text)
        .ok_or_else(|| anyhow!("no `version:` line in `cargo info {name}`:\n{text}"))
}

fn parse_cargo_info_version(text: &str) -> Option<String> {
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("version:"))?;
    let line = line.trim();
    if let Some((_, latest)) = line.split_once("(latest ") {
        return Some(latest.trim_end_matches(')').trim().to_string());
    }
    line.split_whitespace().next().map(str::to_string)
}

/// The throwaway manifest, resolved by cargo (which downloads every package in the graph).
struct Resolved {
    packages: Vec<MetaPackage>,
    lock: ShippedLock,
}

impl Resolved {
    fn new(dir: &Path) -> Result<Self> {
        Ok(Self {
            packages: fetch::metadata(dir)?,
            lock: ShippedLock::read(&dir.join("Cargo.lock"))?,
        })
    }

    fn registry(&self, name: &str) -> impl Iterator<Item = &MetaPackage> {
        self.packages
            .iter()
            .filter(move |p| p.name.as_str() == name && p.is_registry())
    }

    /// The (highest) version of `name` in the graph.
    fn version_of(&self, name: &str) -> Option<String> {
        self.registry(name)
            .map(|p| &p.version)
            .max()
            .map(|v| v.to_string())
    }

    /// `name` `version`'s downloaded `.crate` and the checksum the lock records for it.
    fn source(&self, name: &str, version: &str) -> Result<CrateSource> {
        let package = self
            .registry(name)
            .find(|p| p.version.to_string() == version)
            .ok_or_else(|| anyhow!("cargo did not resolve {name} {version}"))?;
        let checksum = self
            .lock
            .packages
            .get(&(name.to_string(), version.to_string()))
            .cloned()
            .flatten()
            .ok_or_else(|| anyhow!("no checksum for {name} {version} in the lock"))?;
        Ok(CrateSource {
            name: name.to_string(),
            version: version.to_string(),
            crate_file: fetch::crate_file(package.manifest_path.as_std_path(), name, version)?,
            checksum,
            origin: self.lock.path.display().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    /// A git repository with `crates/demo/` (a manifest and one source file) at one commit.
    fn repository_with_a_crate(manifest: &str) -> tempfile::TempDir {
        let repo = tempfile::tempdir().unwrap();
        let krate = repo.path().join("crates/demo/src");
        fs_err::create_dir_all(&krate).unwrap();
        fs_err::write(krate.join("lib.rs"), "pub fn demo() {}\n").unwrap();
        fs_err::write(repo.path().join("crates/demo/Cargo.toml"), manifest).unwrap();
        let git = |args: &[&str]| {
            let status = Command::new("git")
                .arg("-C")
                .arg(repo.path())
                .args([
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@t",
                    "-c",
                    "commit.gpgsign=false",
                ])
                .args(args)
                .status()
                .unwrap();
            assert!(status.success(), "git {args:?}");
        };
        git(&["init", "-q"]);
        git(&["add", "."]);
        git(&["commit", "-q", "-m", "demo"]);
        repo
    }

    #[test]
    fn exported_paths_are_made_relative_to_crates() {
        let exported = "diff --git a/crates/uv-cache/Cargo.toml b/crates/uv-cache/Cargo.toml\n\
                        --- a/crates/uv-cache/Cargo.toml\n\
                        +++ b/crates/uv-cache/Cargo.toml\n\
                        @@ -1 +1 @@\n\
                        --- a/crates/ in a removed line stays\n\
                        + a/crates/ in an added line stays\n";
        assert_eq!(
            relative_to_crates(exported).unwrap(),
            "diff --git a/uv-cache/Cargo.toml b/uv-cache/Cargo.toml\n\
             --- a/uv-cache/Cargo.toml\n\
             +++ b/uv-cache/Cargo.toml\n\
             @@ -1 +1 @@\n\
             --- a/crates/ in a removed line stays\n\
             + a/crates/ in an added line stays\n"
        );
    }

    #[test]
    fn a_checkout_crate_is_read_at_its_commit() {
        let repo = repository_with_a_crate("[package]\nname = \"demo\"\nversion = \"0.0.99\"\n");
        // Changed after the commit: what is read is the commit, not the work tree.
        fs_err::write(repo.path().join("crates/demo/src/lib.rs"), "changed\n").unwrap();
        let version = checkout_version(repo.path(), "HEAD", "crates/demo").unwrap();
        assert_eq!(version.as_deref(), Some("0.0.99"));
        assert_eq!(
            checkout_version(repo.path(), "HEAD", "crates/gone").unwrap(),
            None
        );
        let dest = tempfile::tempdir().unwrap();
        unpack_tree(
            repo.path(),
            "HEAD",
            "crates/demo",
            &dest.path().join("demo"),
        )
        .unwrap();
        assert_eq!(
            fs_err::read_to_string(dest.path().join("demo/src/lib.rs")).unwrap(),
            "pub fn demo() {}\n"
        );
    }

    #[test]
    fn a_workspace_version_is_named_as_such() {
        let repo =
            repository_with_a_crate("[package]\nname = \"demo\"\nversion.workspace = true\n");
        let version = checkout_version(repo.path(), "HEAD", "crates/demo").unwrap();
        assert_eq!(version.as_deref(), Some("(workspace version)"));
    }

    #[test_case("uv-cache\nversion: 0.0.72 (latest 0.0.98)\nlicense: MIT\n", Some("0.0.98"); "newer exists")]
    #[test_case("uv-cache\nversion: 0.0.98\n", Some("0.0.98"); "newest is compatible")]
    #[test_case("nothing\n", None; "no version")]
    fn reads_cargo_info(text: &str, expected: Option<&str>) {
        assert_eq!(parse_cargo_info_version(text).as_deref(), expected);
    }

    fn hunk(file: &str, number: usize, status: Status) -> Hunk {
        Hunk {
            file: file.into(),
            number,
            line: 10 * number,
            status,
        }
    }

    fn report(statuses: &[Status]) -> PatchReport {
        PatchReport {
            entry: "stack/0001-x.patch".into(),
            step: "markers".into(),
            from: "0.0.72".into(),
            to: "0.0.98".into(),
            hunks: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    (
                        Some(format!("@@ -{i} +{i} @@")),
                        hunk("src/lib.rs", i + 1, *s),
                    )
                })
                .collect(),
        }
    }

    #[test_case(&[Status::Applies, Status::Applies], Verdict::Applies, "applies"; "clean")]
    #[test_case(&[Status::Applies, Status::Offset(3)], Verdict::Moved, "applies (moved)"; "offset")]
    #[test_case(&[Status::Fuzz { fuzz: 1, offset: 0 }], Verdict::Fuzz, "applies with fuzz (git apply refuses)"; "fuzz")]
    #[test_case(&[Status::Offset(3), Status::Fuzz { fuzz: 1, offset: 2 }], Verdict::Fuzz, "applies with fuzz (git apply refuses)"; "fuzz beats offset")]
    #[test_case(&[Status::Applies, Status::Fails], Verdict::Fails, "FAILS"; "one fails")]
    #[test_case(&[Status::Skipped(Skip::MissingFile)], Verdict::Fails, "FAILS"; "file gone")]
    #[test_case(&[Status::Skipped(Skip::AlreadyApplied)], Verdict::AlreadyUpstream, "already upstream?"; "merged")]
    fn verdicts(statuses: &[Status], expected: Verdict, shown: &str) {
        assert_eq!(report(statuses).verdict(), expected);
        assert_eq!(expected.to_string(), shown);
    }

    #[test]
    fn table_and_details() {
        let r = report(&[
            Status::Applies,
            Status::Offset(-2),
            Status::Fuzz { fuzz: 2, offset: 5 },
            Status::Fails,
        ]);
        // As `upstream forward` prints them: per hunk, then the table.
        let reports = [r];
        let printed = format!("{}\n{}", render_details(&reports), render_table(&reports));
        insta::assert_snapshot!(printed);
    }

    #[test]
    fn labels_hunks_with_their_headers() {
        let diff = "diff --git a/src/a.rs b/src/a.rs\n--- a/src/a.rs\n+++ b/src/a.rs\n\
                    @@ -1,2 +1,2 @@\n-a\n+b\n c\n@@ -9 +9,2 @@\n x\n+y\n";
        let labelled = label(
            diff,
            vec![
                hunk("src/a.rs", 2, Status::Applies),
                hunk("src/other.rs", 1, Status::Fails),
            ],
        )
        .unwrap();
        assert_eq!(labelled[0].0.as_deref(), Some("@@ -9 +9,2 @@"));
        assert_eq!(labelled[1].0, None);
    }

    /// The real tool, cumulatively: the second patch only applies on top of the first, and
    /// hunks that moved are reported with their offset.
    #[test]
    fn gnu_patch_in_series_reports_offsets() {
        check_gnu_patch()
            .expect("GNU patch is needed (`apt-get install patch`; ci/install-deps.sh does)");
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        fs_err::create_dir_all(tree.join("src")).unwrap();
        // The "newer release": three lines were inserted at the top.
        let lines: String = (1..=30).map(|i| format!("{i}\n")).collect();
        fs_err::write(
            tree.join("src/lib.rs"),
            format!("new1\nnew2\nnew3\n{lines}"),
        )
        .unwrap();
        let first = tmp.path().join("first.diff");
        fs_err::write(
            &first,
            "diff --git a/src/lib.rs b/src/lib.rs\n--- a/src/lib.rs\n+++ b/src/lib.rs\n\
             @@ -9,7 +9,7 @@\n 9\n 10\n 11\n-12\n+twelve\n 13\n 14\n 15\n",
        )
        .unwrap();
        let second = tmp.path().join("second.diff");
        fs_err::write(
            &second,
            "diff --git a/src/lib.rs b/src/lib.rs\n--- a/src/lib.rs\n+++ b/src/lib.rs\n\
             @@ -10,5 +10,5 @@\n 10\n 11\n-twelve\n+TWELVE\n 13\n 14\n",
        )
        .unwrap();
        for input in [&first, &second] {
            let dry = gnu_patch_run(&tree, input, true, None).unwrap();
            let hunks = gnu_patch::parse(&dry);
            assert_eq!(hunks.len(), 1, "{dry}");
            assert_eq!(hunks[0].file, "src/lib.rs");
            assert_eq!(hunks[0].status, Status::Offset(3), "{dry}");
            gnu_patch_run(&tree, input, false, None).unwrap();
        }
        let result = fs_err::read_to_string(tree.join("src/lib.rs")).unwrap();
        assert!(result.contains("\nTWELVE\n"), "{result}");
    }
}
