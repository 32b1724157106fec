//! Regenerate a step's patch file from a maintainer's edit, like `quilt refresh`.
//!
//! Step `n`'s tree is the build that applies steps `1..=n`: `target/uvfix/build/step-<n>/`
//! (`patched/` for the last step). The maintainer edits the crates there and runs
//! `cargo xtask patch refresh <step>`; the step's patch is rewritten as the difference between
//! (pristine + steps `1..n`) and the edited tree, keeping its header. Patch files are therefore
//! never edited by hand.
//!
//! Why not `patch-crate` or `cargo-patch`: both apply patches inside a consuming crate's
//! build (or `cargo-patch`'s `[package.metadata.patch]`) against cargo's registry sources
//! and shell out to git/`patch`; we need patches applied to our own extracted, checksum-
//! verified copies in a generated workspace, strict all-or-nothing hunks, a pristine twin
//! built the same way, and a stack of multi-crate steps. See docs/stack.md.

use std::path::{Path, PathBuf};

use crate::Error;
use crate::manifest::{Manifest, Step};
use crate::patchfile;
use crate::vendor::{self, CrateSource};

/// Resolve `target` (a step id, or its number) to the step to refresh.
pub fn select<'m>(manifest: &'m Manifest, target: &str) -> Result<&'m Step, Error> {
    manifest.step(target).ok_or_else(|| {
        let ids: Vec<&str> = manifest.steps.iter().map(|s| s.id.as_str()).collect();
        Error::Other(format!(
            "`{target}` is not a step of the stack ({}); add a [[step]] to patches/series.toml \
             first (a patch file with just a header is fine)",
            ids.join(", ")
        ))
    })
}

/// Rewrite `step`'s patch file from the edited crates at `edited` (a `crates-<variant>/`
/// directory); `scratch` is a directory this may use. Returns whether the file changed.
pub fn refresh(
    manifest: &Manifest,
    sources: &[CrateSource],
    step: &Step,
    edited: &Path,
    scratch: &Path,
) -> Result<bool, Error> {
    let base_dir: PathBuf = scratch.join(format!("refresh-{}", step.id));
    if base_dir.exists() {
        fs_err::remove_dir_all(&base_dir)?;
    }
    for source in sources {
        vendor::extract(source, &base_dir.join(&source.name))?;
    }
    vendor::apply_steps(manifest.prefix(step.number - 1), &base_dir)?;
    let base = vendor::read_text_tree(&base_dir)?;
    fs_err::remove_dir_all(&base_dir)?;

    let edited_tree = vendor::read_text_tree(edited)?;
    let diff = patchfile::diff(&base, &edited_tree);
    if diff.is_empty() {
        return Err(Error::Other(format!(
            "{} does not differ from pristine + the steps below `{}`; nothing to record in {}",
            edited.display(),
            step.id,
            step.rel.display()
        )));
    }
    let old = fs_err::read_to_string(&step.path).unwrap_or_default();
    let mut header = patchfile::header(&old).to_string();
    if header.trim().is_empty() {
        header =
            "Subject: <one line, imperative>\n\n<Why: the failure, the fix, the upstream issue.>\n"
                .to_string();
    }
    if !header.ends_with('\n') {
        header.push('\n');
    }
    let new = format!("{header}{diff}");
    if new == old {
        return Ok(false);
    }
    fs_err::write(&step.path, new)?;
    Ok(true)
}
