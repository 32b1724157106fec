//! `landlock`: the policy Codex CLI's Linux sandbox used up to 2025 (Landlock ABI 5 rights):
//! read and execute everywhere, full access only beneath the writable roots.
//!
//! ```text
//! handled:  all filesystem rights of ABI 5 (+ TCP bind/connect, ABI 4+, for offline)
//! /         read + execute
//! workspace, tmp, /dev   everything   (/dev so that /dev/null, /dev/tty work)
//! ```
//!
//! Anything else, the cache included, is denied with EACCES. The ruleset is applied by the helper
//! (`uvfix-sandbox landlock --rw … -- PROG`) to itself right before `exec`, so no `unsafe`
//! `pre_exec` is needed. A kernel without Landlock makes the helper exit 125 instead of running
//! the program unsandboxed.
//!
//! Side effect worth knowing: with `Refer` handled (ABI 2+), hard-linking or renaming a file from
//! the read-only part (e.g. the cache) into the workspace fails with EXDEV, exactly as under Codex.

use std::path::{Path, PathBuf};
use std::process::Command;

#[cfg(target_os = "linux")]
use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd,
    PathFdError, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetError, RulesetStatus,
};

use crate::policy::{Policy, base_command};
use crate::{Availability, Denial, Invocation, Layout};

/// The ABI whose rights are handled: Codex's choice. Best effort above V1: older kernels enforce
/// what they know, and [`restrict_self`] refuses only when nothing is enforced at all.
#[cfg(target_os = "linux")]
const ABI_USED: ABI = ABI::V5;

/// The directories the command may write: the workspace, TMPDIR and /dev.
pub fn writable_roots(layout: &Layout) -> Vec<PathBuf> {
    vec![
        layout.workspace.clone(),
        layout.tmp.clone(),
        PathBuf::from("/dev"),
    ]
}

/// `landlock`: the helper restricts itself, then execs the command.
pub(crate) struct Landlock;

impl Policy for Landlock {
    fn name(&self) -> &str {
        "landlock"
    }

    fn denial(&self) -> Option<Denial> {
        Some(Denial::Eacces)
    }

    /// Landlock is there if a ruleset for the first ABI can be created (no restriction is applied:
    /// the ruleset fd is dropped unused).
    fn availability(&self) -> Availability {
        #[cfg(not(target_os = "linux"))]
        return Availability::Unavailable("Landlock is a Linux security module".into());
        #[cfg(target_os = "linux")]
        {
            let probe = Ruleset::default()
                .set_compatibility(CompatLevel::HardRequirement)
                .handle_access(AccessFs::from_all(ABI::V1))
                .and_then(|ruleset| ruleset.create());
            match probe {
                Ok(_) => Availability::Available,
                Err(e) => Availability::Unavailable(format!(
                    "Landlock is not supported or not enabled by this kernel ({e}); it needs Linux >= 5.13 \
                     with `landlock` in the `lsm=` boot parameter"
                )),
            }
        }
    }

    fn command(&self, layout: &Layout, helper: &Path, inv: &Invocation) -> Command {
        let mut cmd = base_command(helper, inv);
        cmd.arg("landlock");
        for dir in writable_roots(layout) {
            cmd.arg("--rw").arg(dir);
        }
        cmd.arg("--deny-tcp")
            .arg("--")
            .arg(&inv.program)
            .args(&inv.args);
        cmd
    }
}

/// Why the helper refuses to go on.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[cfg(target_os = "linux")]
    #[error("building the ruleset: {0}")]
    Ruleset(#[from] RulesetError),
    #[cfg(target_os = "linux")]
    #[error("opening {path}: {source}")]
    Path {
        path: PathBuf,
        #[source]
        source: PathFdError,
    },
    #[error(
        "the kernel enforced nothing (Landlock unsupported or disabled); refusing to run unsandboxed"
    )]
    NotEnforced,
    /// The `landlock` crate is only built on Linux (it uses Linux-only items from libc).
    #[cfg(not(target_os = "linux"))]
    #[error("Landlock is a Linux security module; refusing to run unsandboxed")]
    Unsupported,
}

/// Not Linux: there is nothing to restrict with, and running unsandboxed is never an option.
#[cfg(not(target_os = "linux"))]
pub fn restrict_self(_rw: &[PathBuf], _deny_tcp: bool) -> Result<(), LandlockError> {
    Err(LandlockError::Unsupported)
}

/// Restrict the calling process (and whatever it execs) to the policy above.
#[cfg(target_os = "linux")]
pub fn restrict_self(rw: &[PathBuf], deny_tcp: bool) -> Result<(), LandlockError> {
    let mut ruleset = Ruleset::default().handle_access(AccessFs::from_all(ABI_USED))?;
    if deny_tcp {
        // Handled with no port rule at all: every TCP bind/connect is denied.
        ruleset = ruleset.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)?;
    }
    let mut rules = vec![rule(Path::new("/"), AccessFs::from_read(ABI_USED))?];
    for dir in rw {
        rules.push(rule(dir, AccessFs::from_all(ABI_USED))?);
    }
    let status = ruleset
        .create()?
        .add_rules(rules.into_iter().map(Ok::<_, RulesetError>))?
        .restrict_self()?;
    match status.ruleset {
        RulesetStatus::NotEnforced => Err(LandlockError::NotEnforced),
        RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced => Ok(()),
    }
}

#[cfg(target_os = "linux")]
/// One rule; unlike `landlock::path_beneath_rules`, which silently skips paths it cannot open, a
/// missing writable root is an error here: it means the caller's layout is not what it thinks.
fn rule(path: &Path, access: BitFlags<AccessFs>) -> Result<PathBeneath<PathFd>, LandlockError> {
    let fd = PathFd::new(path).map_err(|source| LandlockError::Path {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(PathBeneath::new(fd, access))
}
