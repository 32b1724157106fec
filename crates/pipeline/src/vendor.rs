//! Extract verified pristine crates and apply a prefix of the stack, into a generated
//! workspace's `crates-<variant>/` directory.
//!
//! Invariants: a crate is only extracted from a `.crate` whose sha256 matches the pin; a
//! tree is only put in place once every patch for it applied; a rerun with the same inputs
//! touches nothing; a maintainer's uncommitted edit is never silently overwritten.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::manifest::Step;
use crate::patchfile::{self, Tree};
use crate::{Error, hex};

/// Bump when the way trees are produced changes, so old stamps stop matching.
const FORMAT: &str = "uvfix-vendor-2";
const STAMP: &str = "stamp.json";

/// A pinned `.crate` file and the checksum it must have.
#[derive(Debug, Clone)]
pub struct CrateSource {
    pub name: String,
    pub version: String,
    pub crate_file: PathBuf,
    /// Expected sha256, lowercase hex.
    pub checksum: String,
    /// Where the expected checksum comes from, for error messages.
    pub origin: String,
}

/// What [`prepare`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Inputs and trees unchanged since the last run: nothing was touched.
    UpToDate,
    /// The crates were (re-)extracted and patched.
    Prepared,
    /// Inputs unchanged, but these crates carry a maintainer's edits; they were left alone.
    LocalEdits(Vec<String>),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stamp {
    inputs: String,
    trees: BTreeMap<String, String>,
}

/// Refuse a `.crate` whose sha256 differs from the pin.
pub fn verify(source: &CrateSource) -> Result<(), Error> {
    let actual = crate::sha256_file(&source.crate_file)?;
    if actual != source.checksum {
        return Err(Error::ChecksumMismatch {
            file: source.crate_file.clone(),
            expected: source.checksum.clone(),
            actual,
            origin: source.origin.clone(),
        });
    }
    Ok(())
}

/// Verify, then unpack `<name>-<version>/…` from the `.crate` into `dest` (which must not exist).
pub fn extract(source: &CrateSource, dest: &Path) -> Result<(), Error> {
    verify(source)?;
    let prefix = format!("{}-{}", source.name, source.version);
    let file = fs_err::File::open(&source.crate_file)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    fs_err::create_dir_all(dest)?;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Ok(rel) = path.strip_prefix(&prefix) else {
            return Err(Error::Other(format!(
                "{}: entry {} is outside {prefix}/",
                source.crate_file.display(),
                path.display()
            )));
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        // A hostile archive must not escape `dest` through `..` or an absolute path.
        if !rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            return Err(Error::Other(format!(
                "{}: refusing entry {}",
                source.crate_file.display(),
                path.display()
            )));
        }
        let target = dest.join(rel);
        if let Some(parent) = target.parent() {
            fs_err::create_dir_all(parent)?;
        }
        entry.unpack(&target)?;
    }
    Ok(())
}

/// Bring `crates_dir/<name>` up to date for every source, with `steps` (a prefix of the
/// stack, empty for pristine) applied.
pub fn prepare(
    crates_dir: &Path,
    sources: &[CrateSource],
    steps: &[Step],
    force: bool,
) -> Result<Outcome, Error> {
    let inputs = inputs_hash(sources, steps)?;
    let stamp_path = crates_dir.with_extension(STAMP);
    let stamp: Option<Stamp> = fs_err::read_to_string(&stamp_path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());

    let edited = match &stamp {
        Some(stamp) => match compare_with_stamp(crates_dir, stamp, &inputs)? {
            // `--force` discards the edits even when nothing else changed.
            StampCheck::Current(Outcome::LocalEdits(edited)) if force => edited,
            StampCheck::Current(outcome) => return Ok(outcome),
            StampCheck::Stale { edited } => edited,
        },
        None => Vec::new(),
    };

    // Build every tree in a staging area first: a failing hunk leaves `crates/` untouched.
    let staging = crates_dir.with_extension("staging");
    if staging.exists() {
        fs_err::remove_dir_all(&staging)?;
    }
    for source in sources {
        extract(source, &staging.join(&source.name))?;
    }
    apply_steps(steps, &staging)?;
    let mut trees = BTreeMap::new();
    for source in sources {
        trees.insert(
            source.name.clone(),
            tree_digest(&staging.join(&source.name))?,
        );
    }
    // An edited tree is only lost if the new inputs do not reproduce it: right after
    // `patch refresh` or `upstream forward record`, the edit *is* the new patch.
    if !force {
        for krate in &edited {
            let now = tree_digest(&crates_dir.join(krate))?;
            if trees.get(krate) != Some(&now) {
                fs_err::remove_dir_all(&staging)?;
                return Err(Error::LocalEdits {
                    dir: crates_dir.join(krate),
                    step: steps.last().map(|step| step.id.clone()),
                });
            }
        }
    }

    let stale = stamp.iter().flat_map(|s| s.trees.keys().cloned()).collect();
    install_staged(crates_dir, &staging, stale, Stamp { inputs, trees })?;
    Ok(Outcome::Prepared)
}

/// What the stamp says of the trees on disk.
enum StampCheck {
    /// The inputs are the stamp's and every tree is there: nothing to do.
    Current(Outcome),
    /// The inputs changed or a tree is missing; `edited` trees differ from their stamp.
    Stale { edited: Vec<String> },
}

fn compare_with_stamp(crates_dir: &Path, stamp: &Stamp, inputs: &str) -> Result<StampCheck, Error> {
    let mut edited = Vec::new();
    let mut missing = false;
    for (name, recorded) in &stamp.trees {
        let dir = crates_dir.join(name);
        if !dir.is_dir() {
            missing = true;
        } else if &tree_digest(&dir)? != recorded {
            edited.push(name.clone());
        }
    }
    if stamp.inputs != inputs || missing {
        return Ok(StampCheck::Stale { edited });
    }
    Ok(StampCheck::Current(if edited.is_empty() {
        Outcome::UpToDate
    } else {
        Outcome::LocalEdits(edited)
    }))
}

/// Replace the trees under `crates_dir` (the `stale` ones and the new ones) with the staged
/// ones, then write the stamp: the stamp is the last thing written, so an interrupted
/// install is seen as stale next time.
fn install_staged(
    crates_dir: &Path,
    staging: &Path,
    stale: Vec<String>,
    stamp: Stamp,
) -> Result<(), Error> {
    fs_err::create_dir_all(crates_dir)?;
    for name in stale.iter().chain(stamp.trees.keys()) {
        let dir = crates_dir.join(name);
        if dir.exists() {
            fs_err::remove_dir_all(&dir)?;
        }
    }
    for name in stamp.trees.keys() {
        fs_err::rename(staging.join(name), crates_dir.join(name))?;
    }
    fs_err::remove_dir_all(staging)?;
    fs_err::write(
        crates_dir.with_extension(STAMP),
        serde_json::to_string_pretty(&stamp).expect("stamp serializes"),
    )?;
    Ok(())
}

/// Apply `steps` in order to the crates under `dir` (`dir/<crate>/…`, the paths the patch
/// files use), writing only once all applied.
pub fn apply_steps(steps: &[Step], dir: &Path) -> Result<(), Error> {
    if steps.is_empty() {
        return Ok(());
    }
    let before = read_text_tree(dir)?;
    let mut tree = before.clone();
    for step in steps {
        let text = fs_err::read_to_string(&step.path)?;
        patchfile::apply(&step.path, &text, &mut tree)?;
    }
    // A patch may only touch the crates that were extracted here.
    let crates: Vec<String> = fs_err::read_dir(dir)?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    for path in tree.keys().filter(|path| !before.contains_key(*path)) {
        let krate = path.split('/').next().unwrap_or_default();
        if !crates.iter().any(|c| c == krate) {
            let step = steps.last().expect("not empty");
            return Err(Error::PatchParse {
                patch: step.path.clone(),
                message: format!(
                    "creates `{path}` outside the pinned crates ({}); paths start with a crate \
                     name (`a/uv-cache/src/lib.rs`), and the crate must be a [[crate]] in series.toml",
                    crates.join(", ")
                ),
            });
        }
    }
    write_changes(dir, &before, &tree)
}

/// Every UTF-8 file under `dir`, keyed by `/`-separated relative path.
pub fn read_text_tree(dir: &Path) -> Result<Tree, Error> {
    let mut tree = Tree::new();
    for (rel, path) in files(dir)? {
        if let Ok(text) = String::from_utf8(fs_err::read(&path)?) {
            tree.insert(rel, text);
        }
    }
    Ok(tree)
}

fn write_changes(dir: &Path, before: &Tree, after: &Tree) -> Result<(), Error> {
    for (rel, text) in after {
        if before.get(rel) != Some(text) {
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                fs_err::create_dir_all(parent)?;
            }
            fs_err::write(path, text)?;
        }
    }
    for rel in before.keys().filter(|rel| !after.contains_key(*rel)) {
        fs_err::remove_file(dir.join(rel))?;
    }
    Ok(())
}

/// Regular files under `dir`, sorted, with `/`-separated relative paths.
fn files(dir: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|err| Error::Io(err.into()))?;
        if entry.file_type().is_file() {
            let rel = entry
                .path()
                .strip_prefix(dir)
                .expect("walkdir stays below its root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((rel, entry.path().to_path_buf()));
        }
    }
    Ok(out)
}

/// sha256 over every file's relative path and contents.
pub fn tree_digest(dir: &Path) -> Result<String, Error> {
    let mut hasher = sha2::Sha256::new();
    for (rel, path) in files(dir)? {
        hasher.update(rel.as_bytes());
        hasher.update([0]);
        hasher.update(fs_err::read(&path)?);
        hasher.update([0]);
    }
    Ok(hex(&hasher.finalize()))
}

fn inputs_hash(sources: &[CrateSource], steps: &[Step]) -> Result<String, Error> {
    let mut hasher = sha2::Sha256::new();
    hasher.update(FORMAT);
    for source in sources {
        hasher.update(format!(
            "\0{}\0{}\0{}",
            source.name, source.version, source.checksum
        ));
    }
    for step in steps {
        hasher.update(step.rel.to_string_lossy().as_bytes());
        hasher.update(fs_err::read(&step.path)?);
    }
    Ok(hex(&hasher.finalize()))
}
