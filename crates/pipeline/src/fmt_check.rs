//! `cargo xtask patch fmt`: the stack's Rust is as rustfmt leaves it. Beside the vendoring
//! because it reads the trees `vendor` prepares, one per step.
//!
//! uv's CI runs `cargo fmt --check`, so a step that leaves a line rustfmt would wrap is a PR
//! that fails upstream (it happened: three steps did). rustfmt is the judge, run over every
//! `.rs` file a step's patch names, in the patched and in the pristine tree. rustfmt also
//! walks into a file's out-of-line modules, and a few of uv's own published files are not as
//! rustfmt leaves them, so a file is ours to fix only when it is reported in the patched
//! tree and not in the pristine one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::builder::Variant;
use crate::manifest::Step;
use crate::{Error, Manifest, Paths};

/// uv's `rustfmt.toml`: edition and style edition 2024 (rustfmt's default, 2015, parses and
/// wraps differently).
pub const EDITION: &str = "2024";

/// Check every step's tree against the pristine one (`vendor` must have prepared them all);
/// returns how many Rust files the stack touches, all of them as rustfmt leaves them.
pub fn check(paths: &Paths, manifest: &Manifest) -> Result<usize, Error> {
    let pristine = paths.crates_dir(Variant::Pristine);
    let len = manifest.steps.len();
    let all = touched_rust_files(&manifest.steps)?;
    let upstream = unformatted(&existing(&pristine)?, &all)?;
    // Each step is a pull request of its own, checked by uv's CI on its own.
    let mut findings = Vec::new();
    for step in &manifest.steps {
        let tree = existing(&paths.crates_dir(Variant::prefix(step.number, len)))?;
        let touched = touched_rust_files(&manifest.steps[..step.number])?;
        let ours: Vec<String> = unformatted(&tree, &touched)?
            .difference(&upstream)
            .cloned()
            .collect();
        if !ours.is_empty() {
            findings.push(format!("{}: {}", step.id, ours.join(", ")));
        }
    }
    if !findings.is_empty() {
        return Err(Error::Other(format!(
            "rustfmt (edition {EDITION}) would change files the stack touches (and not their \
             pristine versions), by step:\n  {}\nFormat them in the build tree of the step that \
             wrote the lines (`cargo xtask patch edit <step>`), then `patch refresh <step>`",
            findings.join("\n  ")
        )));
    }
    Ok(all.len())
}

fn existing(dir: &Path) -> Result<PathBuf, Error> {
    if !dir.is_dir() {
        return Err(Error::Other(format!(
            "{} does not exist; run `cargo xtask vendor` first",
            dir.display()
        )));
    }
    Ok(dir.to_path_buf())
}

/// Crate-relative paths (`uv-fs/src/locked_file.rs`) of the `.rs` files `steps` patch.
fn touched_rust_files(steps: &[Step]) -> Result<BTreeSet<PathBuf>, Error> {
    let mut files = BTreeSet::new();
    for step in steps {
        let text = fs_err::read_to_string(&step.path)?;
        files.extend(text.lines().filter_map(|line| {
            let path = line.strip_prefix("+++ b/")?;
            path.ends_with(".rs").then(|| PathBuf::from(path))
        }));
    }
    Ok(files)
}

/// The files rustfmt would change, relative to `dir`: its `Diff in <path>:<line>:` lines.
fn unformatted(dir: &Path, files: &BTreeSet<PathBuf>) -> Result<BTreeSet<String>, Error> {
    let present: Vec<&PathBuf> = files.iter().filter(|f| dir.join(f).is_file()).collect();
    let output = Command::new("rustfmt")
        .args(["--edition", EDITION, "--style-edition", EDITION, "--check"])
        .args(&present)
        .current_dir(dir)
        .output()
        .map_err(|source| Error::MissingTool {
            tool: "rustfmt".into(),
            hint: "`rustup component add rustfmt` installs it.".into(),
            source,
        })?;
    // 0: all formatted; 1: some would change; anything else: rustfmt itself failed.
    if !matches!(output.status.code(), Some(0 | 1)) {
        return Err(Error::Command {
            command: format!("rustfmt --check (in {})", dir.display()),
            status: output.status.to_string(),
            detail: format!(": {}", String::from_utf8_lossy(&output.stderr).trim_end()),
        });
    }
    Ok(diff_paths(&String::from_utf8_lossy(&output.stdout), dir))
}

fn diff_paths(stdout: &str, dir: &Path) -> BTreeSet<String> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("Diff in "))
        .filter_map(|rest| rest.rsplit_once(':')?.0.rsplit_once(':').map(|(p, _)| p))
        .map(|path| {
            Path::new(path)
                .strip_prefix(dir)
                .unwrap_or(Path::new(path))
                .display()
                .to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_files_rustfmt_would_change() {
        let stdout = "Diff in /t/uv-fs/src/locked_file.rs:312:\n     }\n-    fn create(\n\
                      Diff in /t/uv-fs/src/locked_file.rs:404:\n\
                      Diff in /t/uv-cache/src/lib.rs:1827:\n";
        assert_eq!(
            diff_paths(stdout, Path::new("/t")),
            BTreeSet::from([
                "uv-cache/src/lib.rs".to_string(),
                "uv-fs/src/locked_file.rs".to_string()
            ])
        );
    }
}
