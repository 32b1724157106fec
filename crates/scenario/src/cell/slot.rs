//! Warm once, copy per cell: the slots of a [`CellOptions::store`](super::CellOptions).
//!
//! Warming (the scenario run unsandboxed with a writable cache) is the same for every sandbox
//! column, so each (uv, scenario, cache state) is warmed once and every later cell gets its own
//! copy of that warm tree. Two facts of uv decide how:
//!
//! - uv writes absolute paths into what it warms (the `.venv`'s scripts, the environments
//!   `uvx` and `uv run --with` keep in the cache, the interpreter cache's keys). A copy at
//!   another path would be a different cache. So a key has one *slot*, a fixed directory
//!   `<store>/<key>/` that is the root of every cell with that key, warmed there once; cells of
//!   one key take turns (a lock file), cells of different keys run side by side.
//! - uv decides whether a cache entry is still fresh by the source's ctime (`uv-cache-info`'s
//!   `Timestamp`), e.g. an unzipped find-links wheel against the wheel file. A copy gets a new
//!   ctime, so the wheels and the staged binaries are *pinned*: they stay in the slot from the
//!   warm on, untouched by any cell (no sandbox's preparation touches them).
//!
//! Everything else (cache, workspace, TMPDIR, the rest of HOME) is snapshotted after the warm,
//! before any damage, to `<store>/<key>.warm/`, with the digest of its cache next to it. A cell
//! clears the slot but for the pinned directories, copies the snapshot in, and checks the
//! cache's digest against the recorded one before its state's damage and its sandbox's
//! preparation: a cell gets exactly the warm tree, and no earlier cell can have left anything
//! in it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use sha2::{Digest as _, Sha256};

use crate::digest::TreeDigest;

/// Below a slot: the directories that stay from the warm on (see the module docs).
const PINNED: [&str; 2] = ["home/wheels", "home/.local/bin"];

/// One key's slot, locked for as long as this value lives.
pub(super) struct Slot {
    pub root: PathBuf,
    snapshot: PathBuf,
    digest_file: PathBuf,
    _lock: fs_err::File,
}

/// A short, stable key: short because srt puts unix sockets below the cell's TMPDIR and a
/// socket path may not exceed 108 bytes.
pub(super) fn key(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
        hasher.update([0]);
    }
    format!("{:x}", hasher.finalize())[..10].to_owned()
}

impl Slot {
    /// Wait for and lock `key`'s slot in `store`.
    pub(super) fn claim(store: &Path, key: &str) -> anyhow::Result<Self> {
        fs_err::create_dir_all(store)?;
        let lock = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(store.join(format!("{key}.lock")))?;
        lock.file()
            .lock()
            .with_context(|| format!("locking the slot {key} in {}", store.display()))?;
        Ok(Self {
            root: store.join(key),
            snapshot: store.join(format!("{key}.warm")),
            digest_file: store.join(format!("{key}.digest")),
            _lock: lock,
        })
    }

    /// Whether a complete snapshot exists (its directory is renamed into place last).
    pub(super) fn is_warm(&self) -> bool {
        self.snapshot.is_dir() && self.root.is_dir()
    }

    /// Start from nothing: the warm happens in the slot's root itself.
    pub(super) fn reset(&self) -> anyhow::Result<()> {
        super::usage::cleared(&self.root, true);
        for path in [&self.snapshot, &self.root] {
            if path.exists() {
                fs_err::remove_dir_all(path)?;
            }
        }
        Ok(())
    }

    /// Snapshot the just-warmed root (all but the pinned directories) and its cache's digest.
    pub(super) fn save(&self, cache: &Path) -> anyhow::Result<()> {
        let partial = self.snapshot.with_extension("partial");
        if partial.exists() {
            fs_err::remove_dir_all(&partial)?;
        }
        fs_err::create_dir(&partial)?;
        copy_unpinned(&self.root, &partial, Path::new(""))?;
        fs_err::write(&self.digest_file, TreeDigest::of(cache)?.fingerprint())?;
        fs_err::rename(&partial, &self.snapshot)?;
        let pinned = PINNED
            .iter()
            .map(|p| super::usage::measure(&self.root.join(p)));
        super::usage::warmed(
            &self.root,
            super::usage::measure(&self.snapshot),
            pinned.sum(),
        );
        Ok(())
    }

    /// Give the slot the warm tree again: clear all but the pinned directories, copy the
    /// snapshot in, and prove the cache is the one the warm left.
    pub(super) fn restore(&self, cache: &Path) -> anyhow::Result<()> {
        clear_unpinned(&self.root, Path::new(""))?;
        copy_unpinned(&self.snapshot, &self.root, Path::new(""))?;
        super::usage::copied(&self.root);
        let expected = fs_err::read_to_string(&self.digest_file)?;
        let seen = TreeDigest::of(cache)?.fingerprint();
        if seen != expected {
            bail!(
                "the copy of the warm cache in {} differs from the snapshot (digest {seen}, warm {expected})",
                self.root.display()
            );
        }
        Ok(())
    }

    /// After the cell: drop what it changed, keep the slot small (the snapshot stays).
    pub(super) fn clear(&self) -> anyhow::Result<()> {
        super::usage::cleared(&self.root, false);
        clear_unpinned(&self.root, Path::new(""))
    }
}

/// Whether `rel` is pinned, or a directory on the way to one (to be walked, not copied).
fn classify(rel: &Path) -> (bool, bool) {
    let pinned = PINNED.iter().any(|p| rel == Path::new(p));
    let on_the_way = PINNED.iter().any(|p| Path::new(p).starts_with(rel));
    (pinned, on_the_way && !pinned)
}

/// Copy `src/rel` into `dst/rel`, all but the pinned directories. The copy is `cp -a`
/// (`--reflink=auto` on Linux): uv compares cache entries with file times, so modes, times and
/// symlinks must come over exactly; coreutils does all of that and reflinks where the file
/// system can, which neither `std::fs::copy` nor the `reflink-copy` crate (file data only) do.
fn copy_unpinned(src: &Path, dst: &Path, rel: &Path) -> anyhow::Result<()> {
    let mut whole = Vec::new();
    for entry in fs_err::read_dir(src.join(rel))? {
        let rel = rel.join(entry?.file_name());
        match classify(&rel) {
            (true, _) => {}
            (false, true) if src.join(&rel).is_dir() => {
                if !dst.join(&rel).is_dir() {
                    fs_err::create_dir(dst.join(&rel))?;
                }
                copy_unpinned(src, dst, &rel)?;
            }
            _ => whole.push(src.join(rel)),
        }
    }
    if whole.is_empty() {
        return Ok(());
    }
    let mut cp = Command::new("cp");
    cp.arg("-a");
    if cfg!(target_os = "linux") {
        cp.arg("--reflink=auto");
    }
    cp.args(&whole).arg(dst.join(rel));
    uvfix_process::checked(&mut cp).context("copying a warm tree")?;
    Ok(())
}

/// Remove everything below `root/rel` except the pinned directories.
fn clear_unpinned(root: &Path, rel: &Path) -> anyhow::Result<()> {
    let dir = root.join(rel);
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in fs_err::read_dir(&dir)? {
        let entry = entry?;
        let rel = rel.join(entry.file_name());
        match classify(&rel) {
            (true, _) => {}
            (false, true) if entry.file_type()?.is_dir() => clear_unpinned(root, &rel)?,
            _ if entry.file_type()?.is_dir() => fs_err::remove_dir_all(entry.path())?,
            _ => fs_err::remove_file(entry.path())?,
        }
    }
    Ok(())
}

/// Keep a copy of the slot's root for inspection (`UVFIX_KEEP_CELLS`): the slot itself is
/// reused by the next cell of its key.
pub(super) fn keep_copy(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    // Beside the run's store, not in it: the store is removed when the run ends.
    let parent = root
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"));
    let kept = tempfile::Builder::new()
        .prefix(&format!("uvfix-kept-{name}-"))
        .tempdir_in(parent)?
        .keep();
    let mut cp = Command::new("cp");
    cp.arg("-a").arg(format!("{}/.", root.display())).arg(&kept);
    uvfix_process::checked(&mut cp).context("keeping the cell's root")?;
    let _ = writeln!(std::io::stderr(), "uvfix: kept {}", kept.display());
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn pinned_and_on_the_way() {
        assert_eq!(classify(Path::new("home")), (false, true));
        assert_eq!(classify(Path::new("home/.local")), (false, true));
        assert_eq!(classify(Path::new("home/wheels")), (true, false));
        assert_eq!(classify(Path::new("home/.cache")), (false, false));
        assert_eq!(classify(Path::new("workspace")), (false, false));
    }

    /// The round trip a cell relies on: what a cell changes is gone, modes and symlinks come
    /// back, the pinned wheels keep their inode (and so their ctime), a changed snapshot is
    /// refused.
    #[test]
    fn restore_gives_back_the_warm_tree_and_leaves_pinned_alone() {
        let store = assert_fs::TempDir::new().unwrap();
        let slot = Slot::claim(store.path(), &key(&[b"k"])).unwrap();
        assert!(!slot.is_warm());
        let root = slot.root.clone();
        let cache = root.join("home/.cache/uv");
        for dir in [&cache, &root.join("home/wheels"), &root.join("workspace")] {
            fs_err::create_dir_all(dir).unwrap();
        }
        fs_err::write(root.join("home/wheels/a.whl"), "wheel").unwrap();
        fs_err::write(cache.join(".lock"), "").unwrap();
        fs_err::set_permissions(cache.join(".lock"), PermissionsExt::from_mode(0o666)).unwrap();
        std::os::unix::fs::symlink("gone", cache.join("CACHEDIR.TAG")).unwrap();
        let wheel_ino = fs_err::metadata(root.join("home/wheels/a.whl"))
            .unwrap()
            .ino();
        slot.save(&cache).unwrap();
        assert!(slot.is_warm());

        // A cell damages its copy and leaves a file in the workspace.
        fs_err::remove_file(cache.join(".lock")).unwrap();
        fs_err::write(root.join("workspace/left-over"), "x").unwrap();
        slot.restore(&cache).unwrap();
        assert!(!root.join("workspace/left-over").exists());
        let lock = fs_err::metadata(cache.join(".lock")).unwrap();
        assert_eq!(lock.permissions().mode() & 0o777, 0o666);
        assert_eq!(
            fs_err::read_link(cache.join("CACHEDIR.TAG")).unwrap(),
            Path::new("gone")
        );
        let wheel = fs_err::metadata(root.join("home/wheels/a.whl")).unwrap();
        assert_eq!(wheel.ino(), wheel_ino);

        // Something wrote into the snapshot itself: the next restore says so.
        fs_err::write(slot.snapshot.join("home/.cache/uv/new"), "x").unwrap();
        let err = slot.restore(&cache).unwrap_err();
        assert!(
            format!("{err:#}").contains("differs from the snapshot"),
            "{err:#}"
        );
    }
}
