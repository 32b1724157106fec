//! The process groups [`crate::run`] started and has not reaped yet, so that an interrupted
//! run can stop every one of them, and nothing starts after that.
//!
//! A group leaves the registry once its leader has exited but before it is reaped: until then
//! the leader's pid (the group's id) cannot be reused, so a SIGKILL to the group never reaches
//! a stranger.

use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};

use rustix::process::{Pid, Signal, kill_process_group};

struct Groups {
    /// Set by [`stop_all`]: from then on only [`crate::run_anyway`] starts commands.
    stopping: bool,
    live: Vec<u32>,
    hook: Option<fn(u32)>,
}

static GROUPS: Mutex<Groups> = Mutex::new(Groups {
    stopping: false,
    live: Vec::new(),
    hook: None,
});

fn lock() -> MutexGuard<'static, Groups> {
    GROUPS.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) enum Refused {
    Stopping,
    Spawn(crate::Error),
}

/// Spawn `command` and register its group, under the registry's lock: a [`stop_all`] running
/// at the same time either refuses the command or sees its group, never neither.
pub(crate) fn spawn(
    command: &mut Command,
    anyway: bool,
    spawn: impl FnOnce(&mut Command) -> Result<Child, crate::Error>,
) -> Result<Child, Refused> {
    let mut groups = lock();
    if groups.stopping && !anyway {
        return Err(Refused::Stopping);
    }
    let child = spawn(command).map_err(Refused::Spawn)?;
    groups.live.push(child.id());
    if let Some(hook) = groups.hook {
        hook(child.id());
    }
    Ok(child)
}

/// The group of `pid` is done with (its leader exited, not yet reaped).
pub(crate) fn forget(pid: u32) {
    lock().live.retain(|&p| p != pid);
}

/// Call `hook` with the id of every process group started from now on (one hook per process;
/// a later call replaces it). A run's journal records them, so that the next run can stop what
/// a run killed with SIGKILL left running.
pub fn on_spawn(hook: fn(u32)) {
    lock().hook = Some(hook);
}

/// Stop the run: from now on [`crate::run`] refuses to start anything ([`crate::Error::Stopped`]),
/// and every group it started and has not reaped yet gets SIGKILL (a sandbox wrapper, a uv, a
/// `docker run` client; their own children go with them, being in the group). Returns how many
/// groups were signalled.
pub fn stop_all() -> usize {
    let mut groups = lock();
    groups.stopping = true;
    for &pid in &groups.live {
        if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }
    groups.live.len()
}

/// Whether [`stop_all`] was called.
pub fn stopping() -> bool {
    lock().stopping
}
