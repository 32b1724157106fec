//! What the cleaners ask about processes: a process's start time (a pid is reused, a pid and
//! its start time are not) and its parent; and which processes belong to a run.

use std::path::Path;

/// When `pid` started, in clock ticks after boot; `None` if there is no such process (or no
/// way to tell: not Linux).
#[cfg(target_os = "linux")]
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let pid = i32::try_from(pid).ok()?;
    procfs::process::Process::new(pid)
        .and_then(|p| p.stat())
        .ok()
        .map(|stat| stat.starttime)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn start_time(_pid: u32) -> Option<u64> {
    None
}

/// `pid`'s parent and command name (`comm`).
#[cfg(target_os = "linux")]
pub(crate) fn parent(pid: u32) -> Option<(u32, String)> {
    let stat = procfs::process::Process::new(i32::try_from(pid).ok()?)
        .and_then(|p| p.stat())
        .ok()?;
    Some((u32::try_from(stat.ppid).ok()?, stat.comm))
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn parent(_pid: u32) -> Option<(u32, String)> {
    None
}

/// Whether a process `pid` exists (of any user).
pub(crate) fn exists(pid: u32) -> bool {
    use rustix::io::Errno;
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    // EPERM: it exists, and is another user's.
    matches!(
        rustix::process::test_kill_process(pid),
        Ok(()) | Err(Errno::PERM)
    )
}

/// SIGKILL to the process group `pgid` if its leader is still the process a journal recorded
/// (the one that started at `start`). A leader that is gone proves nothing about a group of
/// that id (its pid may have gone to a stranger that made a group of its own and left it):
/// what is left of such a group is found by [`kill_referencing`].
pub(crate) fn kill_recorded_group(pgid: u32, start: u64) -> bool {
    if start_time(pgid) != Some(start) {
        return false;
    }
    let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    rustix::process::kill_process_group(pid, rustix::process::Signal::KILL).is_ok()
}

/// SIGKILL to every process (but this one) that belongs to the run of `store`: its `HOME` or
/// `TMPDIR` lies in the store (every command of a cell gets both, inside containers and
/// bubblewrap too), or its command line names the store (a `docker run` client, a copy of a
/// warm tree). A random path in the temp directory names nothing else. Returns how many.
#[cfg(target_os = "linux")]
pub(crate) fn kill_referencing(store: &Path) -> usize {
    let me = i32::try_from(std::process::id()).unwrap_or_default();
    let text = store.to_string_lossy();
    let Ok(all) = procfs::process::all_processes() else {
        return 0;
    };
    let mut killed = 0;
    for process in all.flatten().filter(|p| p.pid != me) {
        let in_env = process.environ().is_ok_and(|env| {
            ["HOME", "TMPDIR"].iter().any(|key| {
                env.get(std::ffi::OsStr::new(key))
                    .is_some_and(|value| Path::new(value).starts_with(store))
            })
        });
        let in_args = || {
            process
                .cmdline()
                .is_ok_and(|args| args.iter().any(|arg| arg.contains(&*text)))
        };
        if (in_env || in_args())
            && let Some(pid) = rustix::process::Pid::from_raw(process.pid)
            && rustix::process::kill_process(pid, rustix::process::Signal::KILL).is_ok()
        {
            killed += 1;
        }
    }
    killed
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn kill_referencing(_store: &Path) -> usize {
    0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn start_time_tells_a_process_apart() {
        let me = std::process::id();
        let start = start_time(me).unwrap();
        assert!(exists(me));
        assert_eq!(start_time(me), Some(start));
        let (ppid, _) = parent(me).unwrap();
        assert!(exists(ppid));
        // A recorded group whose leader is alive with another start time is not ours.
        assert!(!kill_recorded_group(me, start + 1));
        // Nothing names a path that does not exist.
        assert_eq!(kill_referencing(Path::new("/nonexistent/uvr-none")), 0);
    }
}
