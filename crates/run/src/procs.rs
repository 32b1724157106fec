//! What the cleaners ask about processes: a process's start time (a pid is reused, a pid and
//! its start time are not) and its parent.

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

/// SIGKILL to the process group `pgid` if it is still the one a journal recorded: its leader
/// is the process that started at `start`, or the leader is gone and members are left (a pid
/// that leads a group with members is not given to a new process, so those are the recorded
/// group's). A leader with another start time is a stranger: left alone.
pub(crate) fn kill_recorded_group(pgid: u32, start: u64) -> bool {
    if exists(pgid) && start_time(pgid) != Some(start) {
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
    }
}
