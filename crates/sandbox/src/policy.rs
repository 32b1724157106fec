//! What a sandbox is: one [`Policy`], implemented once in the sandbox's own file, and one row in
//! [`Sandbox::policy`](crate::Sandbox) that maps the [`Sandbox`](crate::Sandbox) identity to it.
//!
//! Every method of [`Sandbox`](crate::Sandbox) that differs from sandbox to sandbox asks the
//! policy; what is the same for all of them (the availability cache, skips, the canary and its
//! verdict, the error types) stays in the crate root and the canary module.
//!
//! Adding a sandbox: a file with a type that implements [`Policy`], a variant of `Sandbox`,
//! its row in `Sandbox::policy` (the match is exhaustive: the compiler asks for it) and its
//! name in `Sandbox::ALL` (the unit tests ask for it).

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Availability, Denial, Invocation, Layout};

/// One sandbox: how it is named, what it denies with, whether it runs here, and how a command is
/// put inside it. The defaults fit a sandbox that changes nothing on the host and leaves TMPDIR
/// writable.
pub(crate) trait Policy {
    /// The kebab-case name ("landlock", "ro-home"): test names, report columns, CLI values and
    /// JSON values alike, so renaming one changes every report.
    fn name(&self) -> &str;

    /// The errno a denied cache write gets; `None` only for `none`, which denies nothing.
    fn denial(&self) -> Option<Denial>;

    /// Whether this machine can provide the sandbox, with the reason if not. Probes may start
    /// the tool once; [`Sandbox::availability`](crate::Sandbox::availability) caches the answer.
    fn availability(&self) -> Availability;

    /// Whether TMPDIR (`layout.tmp`) is writable inside the sandbox.
    fn tmp_writable(&self) -> bool {
        true
    }

    /// Adjust the host before use (ownership, modes, attributes). Idempotent.
    fn prepare(&self, _layout: &Layout) -> io::Result<()> {
        Ok(())
    }

    /// Undo what [`Policy::prepare`] did where it would keep the layout from being deleted.
    /// Idempotent.
    fn release(&self, _layout: &Layout) -> io::Result<()> {
        Ok(())
    }

    /// The host-side command that runs `inv` inside the sandbox (`helper`: the `uvfix-sandbox`
    /// helper binary). Never fails: a missing tool makes the command fail to spawn.
    fn command(&self, layout: &Layout, helper: &Path, inv: &Invocation) -> Command;

    /// The helper as the sandboxed command can execute it (foreign-owner: a copy uid 65534 may
    /// run); `Err` says why not, in words.
    fn stage_helper(&self, helper: &Path) -> Result<PathBuf, String> {
        Ok(helper.to_path_buf())
    }

    /// Words appended to "no canary report", where the sandbox's stderr shows a known cause.
    fn no_report_hint(&self, _layout: &Layout, _stderr: &str) -> Option<String> {
        None
    }
}

/// `none`: the unsandboxed baseline. Its canary must be let through.
pub(crate) struct Unsandboxed;

impl Policy for Unsandboxed {
    fn name(&self) -> &str {
        "none"
    }

    fn denial(&self) -> Option<Denial> {
        None
    }

    fn availability(&self) -> Availability {
        Availability::Available
    }

    fn command(&self, _layout: &Layout, _helper: &Path, inv: &Invocation) -> Command {
        direct_command(inv)
    }
}

/// The environment the sandboxed command gets: `inv.env`, plus `PATH` if the caller set none.
pub(crate) fn sandbox_env(inv: &Invocation) -> Vec<(OsString, OsString)> {
    let mut env = inv.env.clone();
    if !env.iter().any(|(k, _)| k == "PATH") {
        let path =
            std::env::var_os("PATH").unwrap_or_else(|| OsString::from(crate::probe::DEFAULT_PATH));
        env.push((OsString::from("PATH"), path));
    }
    env
}

/// A command for `program` with the sandboxed environment and cwd already applied; every policy
/// starts from this and puts its wrapper in front.
pub(crate) fn base_command(program: impl AsRef<OsStr>, inv: &Invocation) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().envs(sandbox_env(inv)).current_dir(&inv.cwd);
    cmd
}

/// The command as is, with the sandboxed environment (`none`, `immutable`, `foreign-owner`
/// as a non-root user).
pub(crate) fn direct_command(inv: &Invocation) -> Command {
    let mut cmd = base_command(&inv.program, inv);
    cmd.args(&inv.args);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_is_added_only_when_missing() {
        let mut inv = Invocation {
            program: "/bin/true".into(),
            args: vec![],
            env: vec![("A".into(), "1".into())],
            cwd: "/".into(),
        };
        let env = sandbox_env(&inv);
        assert_eq!(env.len(), 2);
        assert!(env.iter().any(|(k, _)| k == "PATH"));
        inv.env.push(("PATH".into(), "/x".into()));
        assert_eq!(sandbox_env(&inv), inv.env);
    }
}
