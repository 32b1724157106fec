//! Regenerate a patch file from a maintainer's edit, like `quilt refresh`.
//!
//! The maintainer edits `target/uvfix/build/patched/crates/<crate>/` and runs
//! `cargo xtask patch refresh <crate>`. The crate's last patch is rewritten as the
//! difference between (pristine + the crate's earlier patches) and the edited tree, keeping
//! its header. Patch files are therefore never edited by hand.
//!
//! Why not `patch-crate` or `cargo-patch`: both apply patches inside a consuming crate's
//! build (or `cargo-patch`'s `[package.metadata.patch]`) against cargo's registry sources
//! and shell out to git/`patch`; we need patches applied to our own extracted, checksum-
//! verified copies in a generated workspace, strict all-or-nothing hunks, a pristine twin
//! built the same way, and several ordered patches per crate. See README.

use std::path::{Path, PathBuf};

use crate::Error;
use crate::manifest::{Manifest, SeriesEntry};
use crate::patchfile;
use crate::vendor::{self, CrateSource};

/// Resolve `target` (a crate name or a series entry path) to the entry to refresh.
pub fn select(manifest: &Manifest, target: &str) -> Result<SeriesEntry, Error> {
    let entries: Vec<SeriesEntry> = manifest.entries().filter_map(Result::ok).collect();
    let chosen = entries
        .iter()
        .rfind(|e| e.krate == target)
        .or_else(|| {
            entries.iter().find(|e| {
                e.rel == Path::new(target) || e.path == Path::new(target) || e.path.ends_with(target)
            })
        })
        .ok_or_else(|| {
            Error::Other(format!(
                "`{target}` is neither a patched crate nor a patch in the series; add the patch \
                 file to `series` in patches/series.toml first (an empty file with just a header is fine)"
            ))
        })?;
    let last = manifest
        .entries_for(&chosen.krate)
        .pop()
        .expect("chosen is one");
    if last.rel != chosen.rel {
        return Err(Error::Other(format!(
            "`{}` is not the last patch of `{}` (that is `{}`); the edited tree contains the later \
             patches too, so only the last one can be refreshed",
            chosen.rel.display(),
            chosen.krate,
            last.rel.display()
        )));
    }
    Ok(chosen.clone())
}

/// Rewrite `entry`'s patch file from the edited crate at `edited`; `scratch` is a directory
/// this may use. Returns whether the file changed.
pub fn refresh(
    manifest: &Manifest,
    source: &CrateSource,
    entry: &SeriesEntry,
    edited: &Path,
    scratch: &Path,
) -> Result<bool, Error> {
    let base_dir: PathBuf = scratch.join(format!("refresh-{}", entry.krate));
    if base_dir.exists() {
        fs_err::remove_dir_all(&base_dir)?;
    }
    vendor::extract(source, &base_dir)?;
    let earlier: Vec<SeriesEntry> = manifest
        .entries_for(&entry.krate)
        .into_iter()
        .take_while(|e| e.rel != entry.rel)
        .collect();
    vendor::apply_entries(&earlier, &base_dir)?;
    let base = vendor::read_text_tree(&base_dir)?;
    fs_err::remove_dir_all(&base_dir)?;

    let edited_tree = vendor::read_text_tree(edited)?;
    let diff = patchfile::diff(&base, &edited_tree);
    if diff.is_empty() {
        return Err(Error::Other(format!(
            "{} does not differ from pristine + earlier patches; nothing to record in {}",
            edited.display(),
            entry.rel.display()
        )));
    }
    let old = fs_err::read_to_string(&entry.path).unwrap_or_default();
    let mut header = patchfile::header(&old).to_string();
    if header.trim().is_empty() {
        header = format!(
            "Subject: {}: <one line, imperative>\n\n<Why: the failure, the fix, the upstream issue.>\n",
            entry.krate
        );
    }
    if !header.ends_with('\n') {
        header.push('\n');
    }
    let new = format!("{header}{diff}");
    if new == old {
        return Ok(false);
    }
    fs_err::write(&entry.path, new)?;
    Ok(true)
}
