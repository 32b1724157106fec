//! A run's store: created with its lock held and its journal attached, closed by removing it
//! after undoing what the journal says; and the sweep that cleans the stores of runs that died.

use std::fs::TryLockError;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::journal::{self, Entry};
use crate::procs;

/// A run's store is `<temp dir>/uvr-XXXXXX`: short, because srt puts unix sockets below a
/// cell's TMPDIR inside it and a socket path may not exceed 108 bytes.
pub const STORE_PREFIX: &str = "uvr-";

/// The lock file in a store, locked for the run's lifetime.
pub const LOCK: &str = "run.lock";

/// The label of every container a run starts: `uvfix.store=<store path>`.
pub const DOCKER_LABEL: &str = "uvfix.store";

/// A store without a lock file counts as dead once it was not changed for this long: one whose
/// creator died between `mkdir` and creating the lock, or one of a version of the fixture
/// before the lock, which may still be running (a nextest run of that version held its store
/// for its whole length without a lock). So the rule for those is that version's own: six
/// hours.
const UNLOCKED_GRACE: Duration = Duration::from_secs(6 * 3600);

/// Stores open in this process: the interruption handler leaves the exit to the run while one
/// is open, so that the run closes it.
pub(crate) static OPEN: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("creating a store in {parent}: {source}")]
    Create {
        parent: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cleaning {store}: {problems}")]
    Clean { store: PathBuf, problems: String },
}

/// One run's store, removed (with what its journal says undone first) by [`RunStore::close`],
/// or on drop.
#[derive(Debug)]
pub struct RunStore {
    path: PathBuf,
    lock: Option<fs_err::File>,
}

impl RunStore {
    /// Clean the stores runs that died left in `parent` ([`sweep`]), then create this run's,
    /// lock it and attach this process to its journal.
    pub fn create(parent: &Path) -> Result<Self, Error> {
        let create = |source| Error::Create {
            parent: parent.to_owned(),
            source,
        };
        // A live run's store is no news here; `cargo xtask cell-store --clear` says so.
        for swept in sweep(parent).map_err(create)? {
            if !swept.live {
                eprintln!("uvfix: {}", swept.line);
            }
        }
        let path = tempfile::Builder::new()
            .prefix(STORE_PREFIX)
            .tempdir_in(parent)
            .map_err(create)?
            .keep();
        let lock = fs_err::File::create(path.join(LOCK)).map_err(create)?;
        lock.file().lock().map_err(create)?;
        journal::attach(&path).map_err(create)?;
        journal::record(&Entry::Run {
            pid: std::process::id(),
            uid: rustix::process::geteuid().as_raw(),
        });
        OPEN.fetch_add(1, Ordering::SeqCst);
        Ok(Self {
            path,
            lock: Some(lock),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Kill what is left of the run's commands, remove its containers, undo its preparations
    /// and remove the store.
    pub fn close(mut self) -> Result<(), Error> {
        self.finish()
    }

    /// Hand the store to another process that holds `lock` from now on (see [`crate::keeper`]);
    /// this value no longer cleans it. The returned file is the locked one.
    pub fn hand_over(mut self) -> (PathBuf, fs_err::File) {
        let lock = self.lock.take().expect("an open store holds its lock");
        journal::detach(&self.path);
        OPEN.fetch_sub(1, Ordering::SeqCst);
        (std::mem::take(&mut self.path), lock)
    }

    fn finish(&mut self) -> Result<(), Error> {
        let Some(lock) = self.lock.take() else {
            return Ok(());
        };
        journal::detach(&self.path);
        let result = clean(&self.path);
        drop(lock);
        OPEN.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

impl Drop for RunStore {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            eprintln!("uvfix: {e}");
        }
    }
}

/// Clean the store at `store` from what its journal says, whoever's run it was (the caller
/// holds its lock, or knows the run is dead): SIGKILL the process groups still alive, remove
/// the containers, remove the store, undoing the preparations first where the removal needs it.
pub fn clean(store: &Path) -> Result<(), Error> {
    let entries = journal::read(store);
    let mut problems = Vec::new();
    for entry in &entries {
        if let Entry::Group { pgid, start } = entry {
            procs::kill_recorded_group(*pgid, *start);
        }
    }
    procs::kill_referencing(store);
    if entries.contains(&Entry::Docker)
        && let Err(e) = remove_containers(store)
    {
        problems.push(e);
    }
    if let Err(e) = remove(store, &entries) {
        problems.push(e);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Clean {
            store: store.to_owned(),
            problems: problems.join("; "),
        })
    }
}

/// Remove the store. A run that ended cleanly released every preparation itself, so the
/// first try is a plain removal; only if that fails are the journal's preparations undone,
/// and as root, last, the immutable attribute lifted from the whole store (a store from
/// before the journal).
fn remove(store: &Path, entries: &[Entry]) -> Result<(), String> {
    if try_remove(store).is_ok() {
        return Ok(());
    }
    let mut undo_problems = Vec::new();
    for entry in entries {
        if let Err(e) = crate::undo::undo(entry) {
            undo_problems.push(e);
        }
    }
    if try_remove(store).is_ok() {
        return Ok(());
    }
    if rustix::process::geteuid().is_root() {
        let _ = crate::undo::lift_immutable(store);
    }
    try_remove(store).map_err(|e| {
        undo_problems.push(format!("removing it: {e}"));
        undo_problems.join("; ")
    })
}

fn try_remove(store: &Path) -> io::Result<()> {
    match fs_err::remove_dir_all(store) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// `docker rm -f` every container labelled with `store`: a killed `docker run` client leaves
/// its container running. A container that goes away by itself meanwhile (`--rm`, its
/// process killed) makes `docker rm` fail ("removal … already in progress"), so what counts
/// is that none is left a little later.
pub fn remove_containers(store: &Path) -> Result<(), String> {
    let limit = Some(Duration::from_secs(60));
    let list = || -> Result<Vec<String>, String> {
        let mut ps = Command::new("docker");
        ps.args(["ps", "-aq", "--filter"])
            .arg(format!("label={DOCKER_LABEL}={}", store.display()));
        let out = uvfix_process::run_anyway(&mut ps, limit).map_err(|e| e.to_string())?;
        if !out.success() {
            return Err(format!(
                "listing the run's containers: {}",
                out.stderr_text().trim()
            ));
        }
        Ok(out
            .stdout_text()
            .split_whitespace()
            .map(String::from)
            .collect())
    };
    let ids = list()?;
    if ids.is_empty() {
        return Ok(());
    }
    let mut rm = Command::new("docker");
    rm.args(["rm", "-f"]).args(&ids);
    let out = uvfix_process::run_anyway(&mut rm, limit).map_err(|e| e.to_string())?;
    if out.success() {
        return Ok(());
    }
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(500));
        if list()?.is_empty() {
            return Ok(());
        }
    }
    Err(format!(
        "removing the run's containers {}: {}",
        ids.join(" "),
        out.stderr_text().trim()
    ))
}

/// What [`sweep`] found of one store.
enum Found {
    /// Its lock is held: a live run's. Never touched.
    Live,
    /// Another user's: theirs to remove.
    Foreign,
    /// Dead, and now locked by us: to be cleaned.
    Dead(Option<fs_err::File>),
    /// Unlocked, but too young to be taken for dead.
    Young,
}

fn examine(store: &Path) -> io::Result<Found> {
    let meta = fs_err::symlink_metadata(store)?;
    if !meta.is_dir() {
        return Ok(Found::Young);
    }
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return Ok(Found::Foreign);
    }
    let lock = match fs_err::OpenOptions::new()
        .write(true)
        .open(store.join(LOCK))
    {
        Ok(lock) => lock,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let age = meta.modified()?.elapsed().unwrap_or_default();
            return Ok(if age >= UNLOCKED_GRACE {
                Found::Dead(None)
            } else {
                Found::Young
            });
        }
        Err(e) => return Err(e),
    };
    match lock.file().try_lock() {
        Ok(()) => Ok(Found::Dead(Some(lock))),
        Err(TryLockError::WouldBlock) => Ok(Found::Live),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// One store [`sweep`] cleaned or left alone, in words.
#[derive(Debug)]
pub struct Swept {
    pub line: String,
    /// Left alone: a live run holds it.
    pub live: bool,
}

/// Clean every store in `parent` that a run which died left behind (its lock is free), this
/// user's only; a live run's store and another user's are left alone.
pub fn sweep(parent: &Path) -> io::Result<Vec<Swept>> {
    let mut lines = Vec::new();
    let entries = match fs_err::read_dir(parent) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(lines),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with(STORE_PREFIX)
        {
            continue;
        }
        let store = entry.path();
        match examine(&store) {
            Ok(Found::Dead(lock)) => {
                let line = match clean(&store) {
                    Ok(()) => format!(
                        "removed {}, left by a run that was killed (its processes, \
                         containers and preparations too)",
                        store.display()
                    ),
                    Err(e) => format!("could not clean a dead run's store: {e}"),
                };
                drop(lock);
                lines.push(Swept { line, live: false });
            }
            Ok(Found::Live) => lines.push(Swept {
                line: format!(
                    "left {} alone: a run that is still going holds it{}",
                    store.display(),
                    holder(&store)
                ),
                live: true,
            }),
            Ok(Found::Foreign | Found::Young) => {}
            // Raced with its owner removing it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => lines.push(Swept {
                line: format!("could not examine {}: {e}", store.display()),
                live: false,
            }),
        }
    }
    Ok(lines)
}

/// ` (pid N)` of the run that created a store, if its journal says.
fn holder(store: &Path) -> String {
    journal::read(store)
        .iter()
        .find_map(|e| match e {
            Entry::Run { pid, .. } => Some(format!(" (created by pid {pid})")),
            _ => None,
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose lock is held is a live run's: the sweep names it and leaves it; once
    /// the lock is free (its run died) the sweep kills what the journal says is still
    /// running and removes it; a directory that is not a store is never looked at.
    #[test]
    fn the_sweep_leaves_live_stores_and_cleans_dead_ones() {
        let parent = assert_fs::TempDir::new().unwrap();
        let live = RunStore::create(parent.path()).unwrap();
        fs_err::write(live.path().join("k.warm"), "x").unwrap();
        fs_err::create_dir(parent.path().join("uvfix-other")).unwrap();

        let swept = sweep(parent.path()).unwrap();
        assert_eq!(swept.len(), 1, "{swept:?}");
        assert!(swept[0].live, "{swept:?}");
        assert!(live.path().join("k.warm").is_file());

        // The run dies: its lock goes, a command it started is still running.
        let mut sleeper = Command::new("sleep");
        sleeper.arg("300");
        std::os::unix::process::CommandExt::process_group(&mut sleeper, 0);
        let mut sleeper = sleeper.spawn().unwrap();
        let pgid = sleeper.id();
        let start = procs::start_time(pgid);
        let (dead, lock) = live.hand_over();
        if let Some(start) = start {
            let line = serde_json::to_string(&Entry::Group { pgid, start }).unwrap();
            let journal = dead.join(journal::FILE);
            let text = fs_err::read_to_string(&journal).unwrap_or_default();
            fs_err::write(&journal, format!("{text}{line}\n")).unwrap();
        }
        drop(lock);

        let swept = sweep(parent.path()).unwrap();
        assert_eq!(swept.len(), 1, "{swept:?}");
        assert!(!swept[0].live, "{swept:?}");
        assert!(swept[0].line.starts_with("removed"), "{swept:?}");
        assert!(!dead.exists());
        assert!(parent.path().join("uvfix-other").is_dir());
        if cfg!(target_os = "linux") {
            let status = sleeper.wait().unwrap();
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                Some(9),
                "the dead run's command was killed"
            );
        } else {
            let _ = sleeper.kill();
            let _ = sleeper.wait();
        }
    }
}
