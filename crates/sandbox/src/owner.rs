//! Other local users, outside any sandbox: giving a piece of a cache to one, running a
//! command as one, and proving what a uid may open.
//!
//! Cache states whose one piece belongs to someone else (a bucket, the `.lock`, the markers)
//! need it: permission bits mean nothing to root (CAP_DAC_OVERRIDE), so such a state only
//! bites for an unprivileged uid, and a cell must prove that it does ([`probe_as`]) before it
//! counts. Switching users needs root (`setpriv`, as [`crate::foreign`] does) or, for
//! GitHub's `runner`, passwordless `sudo`.
//!
//! ```text
//! command_as(uid, inv)   uid is ours:  inv as it is
//!                        we are root:  setpriv --reuid=UID --regid=GID --clear-groups -- PROG …
//!                        else:         sudo -n -u #UID -g #GID -- env -i K=V… PROG …
//! give(path, uid, gid)   we are root:  lchown every entry (symlinks themselves, never targets)
//!                        else:         sudo -n chown -hR UID:GID PATH
//! ```

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::process::Command;

use fs_err as fs;

use crate::helper::CanaryOutcome;
use crate::policy::{base_command, direct_command, sandbox_env};
use crate::probe::{is_root, tool};
use crate::{Errno, Invocation, foreign};

/// Whether this process may give files away and run commands as other users: root with
/// `setpriv`, or passwordless sudo.
pub fn can_switch_users() -> bool {
    if is_root() {
        return crate::probe::find_in_path("setpriv").is_some();
    }
    foreign::passwordless_sudo()
}

/// This process's effective uid.
pub fn my_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// This process's effective gid.
pub fn my_gid() -> u32 {
    rustix::process::getegid().as_raw()
}

/// `inv` as `uid`:`gid` (no supplementary groups), outside any sandbox. Check
/// [`can_switch_users`] first when `uid` is not ours: otherwise the command fails with sudo's
/// own message.
pub fn command_as(uid: u32, gid: u32, inv: &Invocation) -> Command {
    if uid == my_uid() {
        return direct_command(inv);
    }
    if is_root() {
        let mut cmd = base_command(tool("setpriv"), inv);
        cmd.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .args(["--clear-groups", "--"])
            .arg(&inv.program)
            .args(&inv.args);
        return cmd;
    }
    // sudo resets the environment: hand it over through env(1), which sudo runs as `uid`.
    let mut cmd = Command::new(tool("sudo"));
    cmd.args(["-n", "-u"])
        .arg(format!("#{uid}"))
        .arg("-g")
        .arg(format!("#{gid}"))
        .args(["--", "env", "-i"]);
    for (key, value) in sandbox_env(inv) {
        let mut pair = key;
        pair.push("=");
        pair.push(value);
        cmd.arg(pair);
    }
    cmd.arg(&inv.program)
        .args(&inv.args)
        .current_dir(&inv.cwd)
        .env_clear()
        .env("PATH", crate::probe::DEFAULT_PATH);
    cmd
}

/// Give `path` and everything below it to `uid`:`gid`, never following symlinks.
pub fn give(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    if is_root() {
        for entry in walkdir::WalkDir::new(path).follow_root_links(false) {
            fs::os::unix::fs::lchown(entry?.path(), Some(uid), Some(gid))?;
        }
        return Ok(());
    }
    crate::foreign::sudo_chown(path, &format!("{uid}:{gid}"))
}

/// What a uid may do with one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe<'a> {
    /// Create a new file in this directory (and remove it again).
    Create(&'a Path),
    /// Open this existing file for reading.
    OpenRead(&'a Path),
    /// Open this existing file for writing (never truncated, never written).
    OpenWrite(&'a Path),
}

impl Probe<'_> {
    pub fn path(&self) -> &Path {
        match self {
            Probe::Create(p) | Probe::OpenRead(p) | Probe::OpenWrite(p) => p,
        }
    }

    fn args(&self) -> [OsString; 2] {
        let sub = match self {
            Probe::Create(_) => "canary",
            Probe::OpenRead(_) => "open-read",
            Probe::OpenWrite(_) => "open-write",
        };
        [sub.into(), self.path().as_os_str().to_owned()]
    }
}

impl std::fmt::Display for Probe<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self {
            Probe::Create(_) => "creating a file in",
            Probe::OpenRead(_) => "opening for reading",
            Probe::OpenWrite(_) => "opening for writing",
        };
        write!(f, "{what} {}", self.path().display())
    }
}

/// What the probe saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Allowed,
    Denied(Errno),
}

/// Run `probe` as `uid`:`gid` outside any sandbox, with the `uvfix-sandbox` helper; `Err` when
/// the probe could not run at all.
pub fn probe_as(uid: u32, gid: u32, helper: &Path, probe: Probe<'_>) -> Result<Seen, String> {
    let helper = if uid == my_uid() {
        helper.to_owned()
    } else {
        foreign::stage_executable(helper)
            .map_err(|e| format!("staging the helper for uid {uid}: {e}"))?
    };
    let inv = Invocation {
        program: helper,
        args: probe.args().to_vec(),
        env: Vec::new(),
        cwd: "/".into(),
    };
    let output = uvfix_process::run(&mut command_as(uid, gid, &inv), None)
        .map_err(|e| format!("running the probe as uid {uid}: {e}"))?;
    let report = output
        .stdout_text()
        .lines()
        .find_map(CanaryOutcome::parse)
        .ok_or_else(|| {
            format!(
                "the probe as uid {uid} printed no report ({}): {}",
                output.status_text(),
                output.stderr_text().trim()
            )
        })?;
    match report {
        CanaryOutcome::Created(_) | CanaryOutcome::Opened(_) => Ok(Seen::Allowed),
        CanaryOutcome::Denied(errno) => Ok(Seen::Denied(errno)),
        CanaryOutcome::Error(msg) => Err(format!("the probe as uid {uid} failed: {msg}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_uid_runs_the_command_as_it_is() {
        let inv = Invocation {
            program: "/bin/true".into(),
            args: vec!["x".into()],
            env: vec![("A".into(), "1".into())],
            cwd: "/".into(),
        };
        let cmd = command_as(my_uid(), 0, &inv);
        assert_eq!(cmd.get_program(), "/bin/true");
    }

    #[test]
    fn probes_name_what_they_try() {
        let p = Path::new("/c/.lock");
        assert_eq!(
            Probe::OpenRead(p).to_string(),
            "opening for reading /c/.lock"
        );
        assert_eq!(Probe::Create(p).args()[0], "canary");
        assert_eq!(Probe::OpenWrite(p).args()[0], "open-write");
    }
}
