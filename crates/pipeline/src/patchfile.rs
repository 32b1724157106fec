//! Patch files: a commit-style header, then a git-style unified diff whose paths start with
//! the crate they patch (`a/uv-cache/src/lib.rs`), so one patch (one upstream pull request)
//! may touch several crates.
//!
//! Parsing and hunk application are diffy's; this module only maps its results onto crate
//! trees and into errors that name the patch file, the target file and the hunk. We use
//! diffy rather than shelling out to `patch(1)`/`git apply` so that the same strict
//! behaviour (no fuzz, all-or-nothing) holds on every runner, macOS included.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use diffy::patch_set::{FileOperation, ParseOptions, PatchSet};

use crate::Error;

/// Crates' files as text, keyed by `/`-separated path below the crates directory.
pub type Tree = BTreeMap<String, String>;

/// The part of a patch file before the diff: subject, why, upstream link.
pub fn header(text: &str) -> &str {
    match text.find("\ndiff --git ") {
        Some(at) => &text[..=at],
        None if text.starts_with("diff --git ") => "",
        None => text,
    }
}

/// Apply the patch file `patch_path` (already read as `text`) to `tree`.
///
/// All or nothing: on error `tree` is left as it was.
pub fn apply(patch_path: &Path, text: &str, tree: &mut Tree) -> Result<(), Error> {
    let mut staged = tree.clone();
    let mut files = 0;
    for file in PatchSet::parse(text, ParseOptions::gitdiff()) {
        let file = file.map_err(|err| Error::PatchParse {
            patch: patch_path.to_path_buf(),
            message: err.to_string(),
        })?;
        files += 1;
        let Some(patch) = file.patch().as_text() else {
            return Err(Error::PatchParse {
                patch: patch_path.to_path_buf(),
                message: "binary patches are not supported".to_string(),
            });
        };
        match file.operation().strip_prefix(1) {
            FileOperation::Create(path) => {
                let path = path.into_owned();
                if staged.contains_key(&path) {
                    return Err(Error::PatchCreatesExisting {
                        patch: patch_path.to_path_buf(),
                        file: PathBuf::from(path),
                    });
                }
                let new = apply_one(patch_path, &path, "", patch)?;
                staged.insert(path, new);
            }
            FileOperation::Delete(path) => {
                let path = path.into_owned();
                let old = take(patch_path, &mut staged, &path)?;
                apply_one(patch_path, &path, &old, patch)?;
            }
            FileOperation::Modify { original, modified } if original == modified => {
                let path = original.into_owned();
                let old = take(patch_path, &mut staged, &path)?;
                let new = apply_one(patch_path, &path, &old, patch)?;
                staged.insert(path, new);
            }
            _ => {
                return Err(Error::PatchParse {
                    patch: patch_path.to_path_buf(),
                    message: "renames and copies are not supported; write them as delete + create"
                        .to_string(),
                });
            }
        }
    }
    if files == 0 {
        return Err(Error::PatchParse {
            patch: patch_path.to_path_buf(),
            message: "no diff found (expected `diff --git a/… b/…` sections after the header)"
                .to_string(),
        });
    }
    *tree = staged;
    Ok(())
}

fn take(patch_path: &Path, tree: &mut Tree, path: &str) -> Result<String, Error> {
    tree.remove(path).ok_or_else(|| Error::PatchMissingFile {
        patch: patch_path.to_path_buf(),
        file: PathBuf::from(path),
    })
}

fn apply_one(
    patch_path: &Path,
    path: &str,
    base: &str,
    patch: &diffy::Patch<'_, str>,
) -> Result<String, Error> {
    diffy::apply(base, patch).map_err(|err| {
        // diffy reports "error applying hunk #N"; recover N to quote the hunk's header.
        let number: usize = err
            .to_string()
            .rsplit('#')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let hunk = patch
            .hunks()
            .get(number.saturating_sub(1))
            .map(|h| {
                format!(
                    "@@ -{},{} +{},{} @@",
                    h.old_range().start(),
                    h.old_range().len(),
                    h.new_range().start(),
                    h.new_range().len()
                )
            })
            .unwrap_or_default();
        Error::HunkFailed {
            patch: patch_path.to_path_buf(),
            file: PathBuf::from(path),
            number,
            hunk,
        }
    })
}

/// Render the difference between two trees as the diff part of a patch file.
///
/// Deterministic: files in path order, three lines of context, so regenerating a patch
/// from an unchanged edit reproduces it byte for byte.
pub fn diff(old: &Tree, new: &Tree) -> String {
    let mut out = String::new();
    let paths: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for path in paths {
        let (before, after) = (old.get(path), new.get(path));
        if before == after {
            continue;
        }
        let mut options = diffy::DiffOptions::new();
        options.set_original_filename(match before {
            Some(_) => format!("a/{path}"),
            None => "/dev/null".to_string(),
        });
        options.set_modified_filename(match after {
            Some(_) => format!("b/{path}"),
            None => "/dev/null".to_string(),
        });
        out.push_str(&format!("diff --git a/{path} b/{path}\n"));
        match (before, after) {
            (None, Some(_)) => out.push_str("new file mode 100644\n"),
            (Some(_), None) => out.push_str("deleted file mode 100644\n"),
            _ => {}
        }
        let patch = options.create_patch(
            before.map_or("", String::as_str),
            after.map_or("", String::as_str),
        );
        // Keep the space on blank context lines, as git does, so the output is what
        // `git apply` and `git format-patch` users expect.
        let formatter = diffy::PatchFormatter::new().suppress_blank_empty(false);
        out.push_str(&formatter.fmt_patch(&patch).to_string());
    }
    out
}
