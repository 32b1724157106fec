//! How much a store took on disk at its peak, for the run's summary.
//!
//! Walking the whole store after every cell would cost a walk of every warm cache per cell.
//! Instead each slot is measured once, right after its warm: its snapshot and its pinned
//! directories (a walk of each, summing allocated blocks as `du` does). A copy of the warm
//! tree into the slot is then known to take the snapshot's size, and a cleared slot nothing.
//! The store's size is the sum over its slots, and the peak is its largest value after any
//! warm or copy. What a cell writes on top of its copy (uv's own writes in a writable
//! sandbox) is not counted: it is small next to the caches, and measuring it is the per-cell
//! walk this avoids.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Default)]
struct Slot {
    snapshot: u64,
    pinned: u64,
    /// The unpinned tree in the slot's root: the warm tree or a copy of it, or nothing.
    live: u64,
}

#[derive(Default)]
struct Store {
    slots: HashMap<PathBuf, Slot>,
    peak: u64,
}

static STORES: Mutex<Option<HashMap<PathBuf, Store>>> = Mutex::new(None);

/// Bytes allocated below `path` (not following symlinks); what cannot be read counts nothing.
pub(super) fn measure(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.metadata().ok())
        .map(|meta| meta.blocks() * 512)
        .sum()
}

/// Change the slot at `root` (its store is the parent) and take the store's new size.
fn update(root: &Path, change: impl FnOnce(&mut HashMap<PathBuf, Slot>)) {
    let Some(store) = root.parent() else { return };
    let mut stores = STORES.lock().unwrap_or_else(|e| e.into_inner());
    let store = stores
        .get_or_insert_with(HashMap::new)
        .entry(store.to_owned())
        .or_default();
    change(&mut store.slots);
    let size: u64 = store
        .slots
        .values()
        .map(|s| s.snapshot + s.pinned + s.live)
        .sum();
    store.peak = store.peak.max(size);
}

/// The slot at `root` was warmed and snapshotted.
pub(super) fn warmed(root: &Path, snapshot: u64, pinned: u64) {
    update(root, |slots| {
        slots.insert(
            root.to_owned(),
            Slot {
                snapshot,
                pinned,
                live: snapshot,
            },
        );
    });
}

/// The warm tree was copied into the slot at `root`.
pub(super) fn copied(root: &Path) {
    update(root, |slots| {
        if let Some(slot) = slots.get_mut(root) {
            slot.live = slot.snapshot;
        }
    });
}

/// The slot at `root` was cleared (`all`: its snapshot and pinned directories too).
pub(super) fn cleared(root: &Path, all: bool) {
    update(root, |slots| {
        if all {
            slots.remove(root);
        } else if let Some(slot) = slots.get_mut(root) {
            slot.live = 0;
        }
    });
}

/// The most `store`'s slots took at once, as far as this process measured (see the module
/// docs); `None` when no slot of it was warmed here.
pub fn store_peak(store: &Path) -> Option<u64> {
    let stores = STORES.lock().unwrap_or_else(|e| e.into_inner());
    stores
        .as_ref()?
        .get(store)
        .map(|s| s.peak)
        .filter(|&p| p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_the_largest_sum_of_slots() {
        let store = Path::new("/nonexistent/uvr-usage-test");
        let (a, b) = (store.join("a"), store.join("b"));
        warmed(&a, 100, 10); // 110 + live 100 = 210
        warmed(&b, 50, 5); // + 105 = 315
        cleared(&a, false); // 215
        copied(&a); // 315 again
        cleared(&a, true); // 105
        assert_eq!(store_peak(store), Some(315));
        assert_eq!(store_peak(Path::new("/nonexistent/other")), None);
    }
}
