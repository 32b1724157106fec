//! `cargo xtask upstream forward write|record --base <version>`: write a base's stack from
//! another base's, and record its hand work.
//!
//! A base's `series.toml` says where its stack comes from (`[forward] from`) and which files
//! the release moved (`[[forward.move]]`). Its crates are fetched and verified as for a build;
//! then every step of the source stack, in order, with its paths moved, is applied by GNU
//! patch (offsets and fuzz allowed) to one scratch tree holding them. What patch could not
//! place is the hand work: `fixups/<patch file>`, applied strictly on top. The step's new
//! patch is the tree's difference across the two, under the source step's header, so
//! rerunning this after the source stack changed carries the change over, and the hand work
//! is kept apart from what is mechanical.
//!
//! A step with hunks that failed and no fixup is written with the hunks that did apply and
//! reported as incomplete; `forward record <step>` then records the hand work: the difference
//! between what carried over and that step's vendored, edited build tree.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use uvfix_pipeline::fetch::ShippedLock;
use uvfix_pipeline::manifest::{Move, Step};
use uvfix_pipeline::patchfile::{self, Tree};
use uvfix_pipeline::vendor::{self, read_text_tree};
use uvfix_pipeline::{Manifest, Paths, Variant, fetch};

use super::diff;
use super::forward::{self, PatchReport};
use super::message::PatchText;
use super::workdir::{self, display, fresh_dir};

/// What every step is carried with.
struct Job<'a> {
    /// `target/uvfix/bases/<base>/upstream/forward/`: inputs, rejects, report.
    dir: PathBuf,
    /// The scratch tree: the base's crates, the steps carried so far applied.
    trees: PathBuf,
    target: &'a Manifest,
    moves: &'a [Move],
    /// The uv version of the stack carried over.
    from_base: &'a str,
    /// The versions the source base pins its crates at (uv's workspace versions there).
    old_versions: Vec<String>,
    /// The target release's own `Cargo.lock`.
    lock: &'a ShippedLock,
    check: bool,
}

/// One step carried over: how its hunks went, and whether a fixup finished it.
struct Carried {
    report: PatchReport,
    fixup: bool,
    hand_work: HandWork,
    /// With [`Mode::Check`]: the committed patch differs from the one carried over.
    drifted: bool,
}

/// What `upstream forward write|record` does with the stack it carries over.
#[derive(Clone, Copy)]
pub(crate) enum Mode<'a> {
    /// Write the base's `stack/`.
    Write,
    /// Write nothing; fail if the committed `stack/` differs from what would be written. A
    /// base's stack is generated, so a hand edit of it, or a change to the default stack not
    /// carried over, is caught here rather than lost on the next `write`.
    Check,
    /// Record the hand work on this step (its edited build tree) as its fixup, then write.
    Record(&'a str),
}

impl Carried {
    /// Rejected hunks that no fixup is known to make up for.
    fn incomplete(&self) -> bool {
        !matches!(self.hand_work, HandWork::None | HandWork::Done)
    }
}

/// Whether the hand work covers what GNU patch rejected. A fixup is recorded together with
/// the rejected hunks it was made for (`fixups/<patch>.rej`, line numbers dropped); when the
/// source step later changes a rejected hunk or gains one, the fixup may still apply but
/// leaves that change undone, so comparing the two is what tells.
#[derive(Debug, PartialEq, Eq)]
enum HandWork {
    /// Nothing was rejected.
    None,
    /// A fixup recorded for exactly today's rejected hunks.
    Done,
    /// Rejected hunks and no fixup.
    Missing,
    /// A fixup without the record of what it was made for.
    Unverified,
    /// The rejected hunks today that the fixup was not made for.
    Stale(Vec<String>),
}

impl HandWork {
    fn assess(rejected: &str, fixup: bool, recorded: Option<&str>) -> Self {
        if rejected.is_empty() {
            return Self::None;
        }
        match (fixup, recorded) {
            (false, _) => Self::Missing,
            (true, None) => Self::Unverified,
            (true, Some(recorded)) => {
                let before = hunks_of(recorded);
                let now = hunks_of(rejected);
                let count = now.len();
                let new: Vec<String> = now
                    .into_iter()
                    .filter(|hunk| !before.contains(hunk))
                    .collect();
                if new.is_empty() && before.len() == count {
                    Self::Done
                } else {
                    Self::Stale(new)
                }
            }
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Self::None | Self::Done => "complete",
            Self::Missing => "INCOMPLETE: hand work left",
            Self::Unverified => "UNVERIFIED: re-record the fixup",
            Self::Stale(_) => "STALE: rejected hunks changed since the fixup",
        }
    }
}

/// A reject file without its hunks' line numbers (`@@ -1,2 +1,3 @@` → `@@`): an earlier hunk
/// of the same step that grows moves them, and that does not touch the hand work.
fn without_line_numbers(rejects: &str) -> String {
    rejects
        .lines()
        .map(|line| if line.starts_with("@@") { "@@" } else { line })
        .map(|line| format!("{line}\n"))
        .collect()
}

/// A normalized reject file's hunks, each with its file's name on top.
///
/// Read line by line, not by diffy: with its line numbers gone, a hunk header is a bare `@@`,
/// which is no unified diff any parser takes, and the records under `fixups/` are kept in
/// that form. (GNU patch's own `.rej` is a unified diff, but it is only ever compared here in
/// the normalized form, on both sides.)
fn hunks_of(rejects: &str) -> Vec<String> {
    let mut file = "";
    let mut hunks: Vec<String> = Vec::new();
    for line in rejects.lines() {
        if let Some(name) = line.strip_prefix("--- ") {
            file = name;
        } else if line.starts_with("+++ ") {
            // The same name again: the hunks are keyed by the `---` one.
            continue;
        } else if line == "@@" {
            hunks.push(format!("{file}\n"));
        } else if let Some(hunk) = hunks.last_mut() {
            hunk.push_str(line);
            hunk.push('\n');
        }
    }
    hunks
}

/// Where a fixup's record of the rejected hunks it was made for lives.
fn record_of(fixup: &Path) -> PathBuf {
    fixup.with_extension("rej")
}

pub(crate) fn run(paths: &Paths, mode: Mode<'_>) -> Result<()> {
    let record = match mode {
        Mode::Record(step) => Some(step),
        Mode::Write | Mode::Check => None,
    };
    let base = paths.base.as_deref().context(
        "`upstream forward write` and `record` need `--base VERSION`, a base other than the \
         default one (the default stack is the source of the others)",
    )?;
    let target = Manifest::load_to_forward(&paths.patches())?;
    let spec = target.forward.clone().with_context(|| {
        format!(
            "{}: no [forward] table, so there is no stack to carry over; add `[forward] from = \
             \"<version>\"`",
            target.dir.join(Manifest::FILE).display()
        )
    })?;
    let source = Manifest::load(&paths.with_base(Some(&spec.from))?.patches())?;
    pair_steps(&source, &target)?;
    if let Some(id) = record
        && target.step(id).is_none()
    {
        bail!("`{id}` is not a step of base {base}");
    }
    forward::check_gnu_patch()?;
    // `locate` rewrites the base's throwaway fetch manifest: hold the base's lock for it.
    let located = {
        let _lock = uvfix_pipeline::lock(paths)?;
        fetch::locate(paths, &target)?
    };
    let dir = workdir::dir(paths).join("forward");
    let job = Job {
        trees: dir.join("trees"),
        dir,
        target: &target,
        moves: &spec.moves,
        from_base: &spec.from,
        old_versions: source.crates.iter().map(|c| c.version.clone()).collect(),
        lock: &located.shipped_lock,
        check: matches!(mode, Mode::Check),
    };
    fresh_dir(&job.trees)?;
    fresh_dir(&job.dir.join("rejects"))?;
    for source in &located.sources {
        vendor::extract(source, &job.trees.join(&source.name))?;
    }
    println!(
        "uvfix: carrying the stack of {} over to base {base} ({})",
        spec.from,
        display(paths, &target.dir)
    );
    let mut carried = Vec::new();
    for (from, to) in source.steps.iter().zip(&target.steps) {
        let recording = record.is_some_and(|id| target.step(id).is_some_and(|s| s.id == to.id));
        let edited =
            recording.then(|| paths.crates_dir(Variant::prefix(to.number, target.steps.len())));
        carried.push(carry(&job, from, to, edited.as_deref())?);
    }
    summarize(paths, &job.dir, &carried)?;
    let drifted: Vec<String> = carried
        .iter()
        .filter(|c| c.drifted)
        .map(|c| c.report.entry.display().to_string())
        .collect();
    if !drifted.is_empty() {
        bail!(
            "base {base}'s stack ({}) is not what `forward write` makes from the stack of {}: \
             {} differ{}. Regenerate it with `cargo xtask upstream forward write --base {base}` \
             and commit the result (hand work belongs in fixups/, recorded with `forward \
             record`)",
            display(paths, &target.dir),
            spec.from,
            drifted.join(", "),
            if drifted.len() == 1 { "s" } else { "" }
        );
    }
    Ok(())
}

/// The two stacks must be the same steps in the same order: a base is the same pull requests
/// on another release.
fn pair_steps(source: &Manifest, target: &Manifest) -> Result<()> {
    let ids = |m: &Manifest| m.steps.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    if ids(source) != ids(target) {
        bail!(
            "{} lists the steps {:?}, but the stack it comes from ({}) has {:?}; list the same \
             steps in the same order",
            target.dir.join(Manifest::FILE).display(),
            ids(target),
            source.dir.join(Manifest::FILE).display(),
            ids(source)
        );
    }
    Ok(())
}

/// Carry step `from` over as step `to`: its hunks, then its fixup; write `to`'s patch.
/// With `edited`, first record the fixup as the difference between what carried over and
/// that tree.
fn carry(job: &Job<'_>, from: &Step, to: &Step, edited: Option<&Path>) -> Result<Carried> {
    let (dir, trees) = (&job.dir, &job.trees);
    let text = fs_err::read_to_string(&from.path)?;
    let parsed = PatchText::parse(&from.rel, &text)?;
    let moved = move_paths(&parsed.diff, job.moves)
        .with_context(|| format!("{}: reading its diff", from.rel.display()))?;
    let moved = repin(&moved, &job.old_versions, job.lock);
    let input = dir.join(format!("{}.diff", to.id));
    fs_err::write(&input, &moved)?;

    let before = read_text_tree(trees)?;
    let dry = forward::gnu_patch_run(trees, &input, true, None)?;
    let rejects = dir.join("rejects").join(format!("{}.rej", to.id));
    forward::gnu_patch_run(trees, &input, false, Some(&rejects))?;
    let fixup = job.target.fixup(to);
    let rejected = match fs_err::read_to_string(&rejects) {
        Ok(text) => without_line_numbers(&text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err.into()),
    };
    if let Some(edited) = edited {
        record_fixup(trees, edited, &fixup, &rejected)?;
    }
    let has_fixup = fixup.is_file();
    if has_fixup {
        apply_fixup(trees, &fixup)?;
    }
    let recorded = fs_err::read_to_string(record_of(&fixup)).ok();
    let hand_work = HandWork::assess(&rejected, has_fixup, recorded.as_deref());
    let after = read_text_tree(trees)?;
    let header = patchfile::header(&text);
    let patch = format!("{header}{}", patchfile::diff(&before, &after));
    let drifted = if job.check {
        match fs_err::read_to_string(&to.path) {
            Ok(committed) => committed != patch,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => true,
            Err(err) => return Err(err.into()),
        }
    } else {
        if let Some(parent) = to.path.parent() {
            fs_err::create_dir_all(parent)?;
        }
        fs_err::write(&to.path, patch)?;
        false
    };
    let touched = forward::crates_of(&moved)?;
    Ok(Carried {
        report: PatchReport {
            entry: to.rel.clone(),
            step: to.id.clone(),
            from: format!("base {}", job.from_base),
            to: touched.join(", "),
            hunks: forward::label(&moved, super::gnu_patch::parse(&dry))?,
        },
        fixup: has_fixup,
        hand_work,
        drifted,
    })
}

/// The diff with every path a release moved renamed.
pub(crate) fn move_paths(diff: &str, moves: &[Move]) -> Result<String> {
    diff::map_paths(diff, |path| {
        Some(
            moves
                .iter()
                .find_map(|m| m.apply(path))
                .unwrap_or_else(|| path.to_string()),
        )
    })
}

/// A dependency a step adds to a published `Cargo.toml` at the source release's workspace
/// version (`uv-warnings` at `0.0.72`) is pinned at the version the target release's lock
/// names instead: uv's crates move in lockstep, and an old one would pull a second copy of
/// half the workspace. Other requirements (`tokio = "1.40.0"`) are left as they are.
pub(crate) fn repin(diff: &str, old_versions: &[String], lock: &ShippedLock) -> String {
    let mut out = String::with_capacity(diff.len());
    let mut section: Option<&str> = None;
    for line in diff.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        if let Some(header) = body.strip_prefix('+').filter(|h| h.starts_with('[')) {
            section = header
                .trim_matches(|c| c == '[' || c == ']')
                .split_once("dependencies.")
                .map(|(_, name)| name);
        }
        let old = body
            .strip_prefix("+version = \"")
            .and_then(|rest| rest.strip_suffix('"'))
            .filter(|v| old_versions.iter().any(|old| old == v));
        let new = section.zip(old).and_then(|(name, _)| {
            let mut versions = lock.packages.keys().filter(|(n, _)| n == name);
            match (versions.next(), versions.next()) {
                (Some((_, version)), None) => Some(version.clone()),
                _ => None,
            }
        });
        match new {
            Some(version) => out.push_str(&format!("+version = \"{version}\"\n")),
            None => out.push_str(line),
        }
    }
    out
}

/// The fixup must apply exactly: it was made against what carries over.
fn apply_fixup(trees: &Path, fixup: &Path) -> Result<()> {
    let mut tree = read_text_tree(trees)?;
    let before = tree.clone();
    let text = fs_err::read_to_string(fixup)?;
    patchfile::apply(fixup, &text, &mut tree).with_context(|| {
        format!(
            "the hand work in {} no longer applies to what carries over: redo it (vendor the \
             base, edit that step's build tree, then `upstream forward record --base … <step>`)",
            fixup.display()
        )
    })?;
    write_tree(trees, &before, &tree)
}

/// `fixup` := the difference between what carried over and the edited build tree; beside it,
/// the rejected hunks it was made for.
fn record_fixup(trees: &Path, edited: &Path, fixup: &Path, rejected: &str) -> Result<()> {
    if !edited.is_dir() {
        bail!(
            "{} does not exist: run `cargo xtask vendor --base …` and edit the step's tree there",
            edited.display()
        );
    }
    let carried = read_text_tree(trees)?;
    let diff = patchfile::diff(&carried, &read_text_tree(edited)?);
    if diff.is_empty() {
        for file in [fixup.to_path_buf(), record_of(fixup)] {
            if file.exists() {
                fs_err::remove_file(file)?;
            }
        }
        println!(
            "uvfix: {} matches what carries over; no fixup",
            edited.display()
        );
        return Ok(());
    }
    fs_err::create_dir_all(fixup.parent().expect("fixups/<file>"))?;
    fs_err::write(fixup, diff)?;
    fs_err::write(record_of(fixup), rejected)?;
    println!("uvfix: recorded the hand work in {}", fixup.display());
    Ok(())
}

fn write_tree(dir: &Path, before: &Tree, after: &Tree) -> Result<()> {
    for (rel, text) in after {
        if before.get(rel) != Some(text) {
            let path = dir.join(rel);
            fs_err::create_dir_all(path.parent().expect("a file has a parent"))?;
            fs_err::write(path, text)?;
        }
    }
    for rel in before.keys().filter(|rel| !after.contains_key(*rel)) {
        fs_err::remove_file(dir.join(rel))?;
    }
    Ok(())
}

fn summarize(paths: &Paths, dir: &Path, carried: &[Carried]) -> Result<()> {
    let reports: Vec<PatchReport> = carried.iter().map(|c| c.report.clone()).collect();
    let details = forward::render_details(&reports);
    let mut table =
        String::from("| step | hunks | failed | fixup | written |\n|---|---:|---:|---|---|\n");
    let mut stale = String::new();
    for c in carried {
        let counts = c.report.counts();
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            c.report.step,
            counts.hunks,
            counts.fails + counts.skipped,
            if c.fixup { "yes" } else { "no" },
            c.hand_work.label()
        ));
        if let HandWork::Stale(new) = &c.hand_work {
            stale.push_str(&format!(
                "{}: rejected now, not when its fixup was recorded:\n{}",
                c.report.step,
                if new.is_empty() {
                    "(none new: a hunk it was made for is no longer rejected)\n".to_string()
                } else {
                    new.concat()
                }
            ));
        }
    }
    if !stale.is_empty() {
        table.push_str(&format!("\n```text\n{stale}```\n"));
    }
    print!("\n{details}\n{table}");
    let report: PathBuf = dir.join("report.md");
    fs_err::write(
        &report,
        format!("# Forward report\n\n{table}\n```text\n{details}```\n"),
    )?;
    let incomplete: Vec<&str> = carried
        .iter()
        .filter(|c| c.incomplete())
        .map(|c| c.report.step.as_str())
        .collect();
    println!(
        "\nuvfix: report {}; rejected hunks in {}",
        display(paths, &report),
        display(paths, &dir.join("rejects"))
    );
    if !incomplete.is_empty() {
        println!(
            "uvfix: hand work left in {}: `cargo xtask vendor --base …`, edit the step's tree \
             (`cargo xtask patch edit --base … <step>`), then `cargo xtask upstream forward \
             record --base … <step>`; bottom first",
            incomplete.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_workspace_dependencies_follow_the_release() {
        let lock_file = tempfile::NamedTempFile::new().unwrap();
        fs_err::write(
            lock_file.path(),
            "[[package]]\nname = \"uv-warnings\"\nversion = \"0.0.98\"\n\
             [[package]]\nname = \"tokio\"\nversion = \"1.48.0\"\n",
        )
        .unwrap();
        let lock = ShippedLock::read(lock_file.path()).unwrap();
        let diff = "@@ -1,2 +1,8 @@\n [dependencies.uv-static]\n version = \"0.0.72\"\n\
                    +[dependencies.uv-warnings]\n+version = \"0.0.72\"\n+\n\
                    +[dev-dependencies.tokio]\n+version = \"1.40.0\"\n";
        assert_eq!(
            repin(diff, &["0.0.72".into(), "0.12.5".into()], &lock),
            "@@ -1,2 +1,8 @@\n [dependencies.uv-static]\n version = \"0.0.72\"\n\
             +[dependencies.uv-warnings]\n+version = \"0.0.98\"\n+\n\
             +[dev-dependencies.tokio]\n+version = \"1.40.0\"\n"
        );
    }

    #[test]
    fn moves_rename_files_and_directories() {
        let moves = [
            Move {
                from: "uv-python/src/interpreter.rs".into(),
                to: "uv-python-interpreter/src/interpreter.rs".into(),
            },
            Move {
                from: "uv/src/commands/tool/".into(),
                to: "uv-tool-commands/src/".into(),
            },
        ];
        // Each file a real diff (the model parses it); a removed line that reads like a
        // file header is content, and stays.
        let diff = "diff --git a/uv-python/src/interpreter.rs b/uv-python/src/interpreter.rs\n\
                    --- a/uv-python/src/interpreter.rs\n+++ b/uv-python/src/interpreter.rs\n\
                    @@ -1 +1 @@\n--- a/uv-python/src/interpreter.rs\n+b\n\
                    diff --git a/uv/src/commands/tool/run.rs b/uv/src/commands/tool/run.rs\n\
                    --- a/uv/src/commands/tool/run.rs\n+++ b/uv/src/commands/tool/run.rs\n\
                    @@ -1 +1 @@\n-c\n+d\n\
                    diff --git a/uv-cache/src/lib.rs b/uv-cache/src/lib.rs\n\
                    --- a/uv-cache/src/lib.rs\n+++ b/uv-cache/src/lib.rs\n\
                    @@ -1 +1 @@\n-e\n+f\n";
        insta::assert_snapshot!(move_paths(diff, &moves).unwrap(), @r"
        diff --git a/uv-python-interpreter/src/interpreter.rs b/uv-python-interpreter/src/interpreter.rs
        --- a/uv-python-interpreter/src/interpreter.rs
        +++ b/uv-python-interpreter/src/interpreter.rs
        @@ -1 +1 @@
        --- a/uv-python/src/interpreter.rs
        +b
        diff --git a/uv-tool-commands/src/run.rs b/uv-tool-commands/src/run.rs
        --- a/uv-tool-commands/src/run.rs
        +++ b/uv-tool-commands/src/run.rs
        @@ -1 +1 @@
        -c
        +d
        diff --git a/uv-cache/src/lib.rs b/uv-cache/src/lib.rs
        --- a/uv-cache/src/lib.rs
        +++ b/uv-cache/src/lib.rs
        @@ -1 +1 @@
        -e
        +f
        ");
    }

    /// A source stack of one step and a base carrying it over, with that step's hand work.
    fn write_stacks(root: &Path) {
        let step_toml = "[[step]]\nid = \"fix\"\npatch = \"stack/0001-fix.patch\"\n\
                         status = \"proposed\"\nclaim = \"x\"\n";
        fs_err::create_dir_all(root.join("from/stack")).unwrap();
        fs_err::write(
            root.join("from/series.toml"),
            format!("[uv]\nversion = \"1.0.0\"\nchecksum = \"0\"\n{step_toml}"),
        )
        .unwrap();
        fs_err::write(
            root.join("from/stack/0001-fix.patch"),
            "Subject: Fix it\n\nWhy.\n---\ndiff --git a/c/src/lib.rs b/c/src/lib.rs\n\
             --- a/c/src/lib.rs\n+++ b/c/src/lib.rs\n\
             @@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n@@ -8,3 +8,3 @@\n h\n-i\n+I\n j\n",
        )
        .unwrap();
        fs_err::create_dir_all(root.join("to/fixups")).unwrap();
        fs_err::write(
            root.join("to/series.toml"),
            format!(
                "[uv]\nversion = \"2.0.0\"\nchecksum = \"0\"\n[forward]\nfrom = \"1.0.0\"\n\
                 {step_toml}"
            ),
        )
        .unwrap();
        fs_err::write(
            root.join("to/fixups/0001-fix.patch"),
            "diff --git a/c/src/lib.rs b/c/src/lib.rs\n--- a/c/src/lib.rs\n+++ b/c/src/lib.rs\n\
             @@ -8,4 +8,4 @@\n g\n h\n-i2\n+I\n j\n",
        )
        .unwrap();
        // What `forward record` saw rejected when it wrote that fixup.
        fs_err::write(
            root.join("to/fixups/0001-fix.rej"),
            "--- c/src/lib.rs\n+++ c/src/lib.rs\n@@\n h\n-i\n+I\n j\n",
        )
        .unwrap();
    }

    /// `write_stacks`, and the new release's tree: a line inserted on top (an offset), and
    /// `i` changed (a rejected hunk, even with fuzz).
    fn carry_setup() -> (tempfile::TempDir, PathBuf) {
        forward::check_gnu_patch()
            .expect("GNU patch is needed (`apt-get install patch`; ci/install-deps.sh does)");
        let tmp = tempfile::tempdir().unwrap();
        write_stacks(tmp.path());
        let trees = tmp.path().join("trees");
        fs_err::create_dir_all(trees.join("c/src")).unwrap();
        fs_err::write(
            trees.join("c/src/lib.rs"),
            "new\na\nb\nc\nd\ne\nf\ng\nh\ni2\nj\n",
        )
        .unwrap();
        (tmp, trees)
    }

    fn carry_one(root: &Path, trees: &Path, source: &Manifest) -> Carried {
        carry_as(root, trees, source, false)
    }

    fn carry_as(root: &Path, trees: &Path, source: &Manifest, check: bool) -> Carried {
        let target = Manifest::load_to_forward(&root.join("to")).unwrap();
        let lock = root.join("Cargo.lock");
        fs_err::write(&lock, "").unwrap();
        let lock = ShippedLock::read(&lock).unwrap();
        let job = Job {
            dir: root.join("work"),
            trees: trees.to_path_buf(),
            target: &target,
            moves: &[],
            from_base: "1.0.0",
            old_versions: vec![],
            lock: &lock,
            check,
        };
        fs_err::create_dir_all(job.dir.join("rejects")).unwrap();
        carry(&job, &source.steps[0], &target.steps[0], None).unwrap()
    }

    /// The source step changed since its fixup was recorded: the fixup still applies, but the
    /// step's new change in the rejected hunk is not in the tree, so the step is not complete.
    #[test]
    fn a_fixup_older_than_its_step_leaves_it_incomplete() {
        let (tmp, trees) = carry_setup();
        let root = tmp.path();
        fs_err::write(
            root.join("from/stack/0001-fix.patch"),
            "Subject: Fix it\n\nWhy.\n---\ndiff --git a/c/src/lib.rs b/c/src/lib.rs\n\
             --- a/c/src/lib.rs\n+++ b/c/src/lib.rs\n\
             @@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n@@ -8,3 +8,3 @@\n h\n-i\n-j\n+I\n+J\n",
        )
        .unwrap();
        let source = Manifest::load(&root.join("from")).unwrap();
        let carried = carry_one(root, &trees, &source);
        assert!(carried.fixup && carried.incomplete());
        assert_eq!(
            carried.hand_work,
            HandWork::Stale(vec!["c/src/lib.rs\n h\n-i\n-j\n+I\n+J\n".to_string()])
        );
    }

    #[test]
    fn hand_work_is_judged_by_the_hunks_it_was_recorded_for() {
        let one = "--- f\n+++ f\n@@\n a\n-b\n+B\n";
        let two = "--- f\n+++ f\n@@\n a\n-b\n+B\n@@\n y\n-z\n+Z\n";
        assert_eq!(HandWork::assess("", false, None), HandWork::None);
        assert_eq!(HandWork::assess(one, false, Some(one)), HandWork::Missing);
        assert_eq!(HandWork::assess(one, true, None), HandWork::Unverified);
        assert_eq!(HandWork::assess(one, true, Some(one)), HandWork::Done);
        assert_eq!(
            HandWork::assess(two, true, Some(one)),
            HandWork::Stale(vec!["f\n y\n-z\n+Z\n".to_string()])
        );
        // A hunk the fixup was made for is no longer rejected: its hand work would now undo
        // or repeat what applied.
        assert_eq!(
            HandWork::assess(one, true, Some(two)),
            HandWork::Stale(vec![])
        );
        assert_eq!(
            without_line_numbers("--- f\n+++ f\n@@ -8,3 +9,3 @@ fn x()\n a\n"),
            "--- f\n+++ f\n@@\n a\n"
        );
    }

    /// `write --check` compares with the committed patch and writes nothing: the stack as
    /// `write` left it passes, a hand edit of it is named and kept.
    #[test]
    fn check_names_a_generated_patch_that_differs_and_writes_nothing() {
        let (tmp, trees) = carry_setup();
        let root = tmp.path();
        let release = fs_err::read_to_string(trees.join("c/src/lib.rs")).unwrap();
        let source = Manifest::load(&root.join("from")).unwrap();
        assert!(!carry_one(root, &trees, &source).drifted);
        let patch = root.join("to/stack/0001-fix.patch");
        let written = fs_err::read_to_string(&patch).unwrap();

        fs_err::write(trees.join("c/src/lib.rs"), &release).unwrap();
        assert!(!carry_as(root, &trees, &source, true).drifted);

        let edited = written.replace("Why.", "Why, edited by hand.");
        fs_err::write(&patch, &edited).unwrap();
        fs_err::write(trees.join("c/src/lib.rs"), &release).unwrap();
        assert!(carry_as(root, &trees, &source, true).drifted);
        assert_eq!(fs_err::read_to_string(&patch).unwrap(), edited);
    }

    /// The real GNU patch: a hunk that moved applies, one whose context changed is rejected,
    /// and the recorded hand work finishes the step; the rebased patch is both.
    #[test]
    fn a_step_carries_over_with_its_fixup() {
        let (tmp, trees) = carry_setup();
        let root = tmp.path();
        let source = Manifest::load(&root.join("from")).unwrap();
        let carried = carry_one(root, &trees, &source);
        assert_eq!(
            carried.report.counts().fails,
            1,
            "{:?}",
            carried.report.hunks
        );
        assert!(carried.fixup && !carried.incomplete());
        let written = fs_err::read_to_string(root.join("to/stack/0001-fix.patch")).unwrap();
        assert!(
            written.starts_with("Subject: Fix it\n\nWhy.\n---\ndiff --git"),
            "{written}"
        );
        assert!(
            written.contains("+B\n") && written.contains("+I\n"),
            "{written}"
        );
        assert_eq!(
            fs_err::read_to_string(trees.join("c/src/lib.rs")).unwrap(),
            "new\na\nB\nc\nd\ne\nf\ng\nh\nI\nj\n"
        );
    }
}
