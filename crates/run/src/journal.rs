//! What a run did that outlives a process, one JSON line per thing, appended to its store's
//! `journal` (see the crate docs). Appends of one short line with `O_APPEND` do not interleave,
//! so the processes of one run (nextest's test processes) share the file.
//!
//! A process writes into the journal of the store it is *attached* to ([`attach`]): the run's
//! own process when it creates the store, a nextest test process when its first cell uses the
//! store it was handed. Unattached, [`record`] does nothing.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

/// The journal's file name in a store.
pub const FILE: &str = "journal";

/// One thing a run did that a later cleaner may have to undo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Entry {
    /// The process that created the store (for messages: whose live store it is).
    Run { pid: u32, uid: u32 },
    /// A process group started by `uvfix_process::run`; `start` is its leader's start time
    /// (clock ticks after boot), which tells it from a later process given the same pid.
    Group { pgid: u32, start: u64 },
    /// `chattr +i` below this directory (sandbox `immutable`).
    Immutable { dir: PathBuf },
    /// Handed to root with `sudo -n chown -R 0:0` (sandbox `foreign-owner` as non-root);
    /// `owner` (`UID:GID`) is whom it goes back to.
    SudoChown { path: PathBuf, owner: String },
    /// Write bits stripped below this path (sandbox `foreign-owner` as non-root without sudo).
    WriteBits { path: PathBuf },
    /// Docker containers were started, labelled [`crate::store::DOCKER_LABEL`]`=<store>`.
    Docker,
}

struct Attached {
    store: PathBuf,
    file: fs_err::File,
    /// Lines this process wrote already: a cell repeats its preparations, the journal need not.
    written: HashSet<String>,
}

static ATTACHED: Mutex<Option<Attached>> = Mutex::new(None);

fn attached_lock() -> MutexGuard<'static, Option<Attached>> {
    ATTACHED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Write this process's records into `store`'s journal from now on (again attaching to the
/// same store does nothing), and record every process group `uvfix_process::run` starts.
pub fn attach(store: &Path) -> std::io::Result<()> {
    let mut attached = attached_lock();
    if attached.as_ref().is_some_and(|a| a.store == store) {
        return Ok(());
    }
    let file = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(store.join(FILE))?;
    *attached = Some(Attached {
        store: store.to_owned(),
        file,
        written: HashSet::new(),
    });
    drop(attached);
    uvfix_process::on_spawn(record_group);
    Ok(())
}

/// Stop writing into `store`'s journal (it is being removed).
pub(crate) fn detach(store: &Path) {
    let mut attached = attached_lock();
    if attached.as_ref().is_some_and(|a| a.store == store) {
        *attached = None;
    }
}

/// The store this process is attached to: Docker containers are labelled with it.
pub fn attached() -> Option<PathBuf> {
    attached_lock().as_ref().map(|a| a.store.clone())
}

/// Append `entry` to the attached store's journal, before the thing it records is done. A
/// journal that cannot be written is said once per process; the run goes on (the store is
/// still removed at its end, only a SIGKILL would leave more to the next run).
pub fn record(entry: &Entry) {
    let mut attached = attached_lock();
    let Some(a) = attached.as_mut() else { return };
    let line = serde_json::to_string(entry).expect("journal entries serialize") + "\n";
    if a.written.contains(&line) {
        return;
    }
    if let Err(e) = a.file.write_all(line.as_bytes()) {
        eprintln!("uvfix: cannot write the run's journal: {e}");
    }
    a.written.insert(line);
}

/// `uvfix_process`'s spawn hook: a group with its leader's start time. A leader already gone
/// has nothing left to stop (its group may, but then no start time tells it apart: left out).
fn record_group(pgid: u32) {
    if let Some(start) = crate::procs::start_time(pgid) {
        record(&Entry::Group { pgid, start });
    }
}

/// The entries of `store`'s journal; lines that do not parse (a line cut by a power loss) are
/// skipped.
pub fn read(store: &Path) -> Vec<Entry> {
    let Ok(text) = fs_err::read_to_string(store.join(FILE)) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_one_line_each() {
        let entries = [
            Entry::Run { pid: 1, uid: 0 },
            Entry::Group { pgid: 42, start: 7 },
            Entry::Immutable {
                dir: "/tmp/uvr-x/k/home/.cache".into(),
            },
            Entry::SudoChown {
                path: "/tmp/uvr-x/k/home/.cache/uv".into(),
                owner: "1000:1000".into(),
            },
            Entry::WriteBits {
                path: "/tmp/uvr-x/k".into(),
            },
            Entry::Docker,
        ];
        for entry in &entries {
            let line = serde_json::to_string(entry).unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(&serde_json::from_str::<Entry>(&line).unwrap(), entry);
        }
    }
}
