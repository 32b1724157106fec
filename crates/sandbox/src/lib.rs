//! Run a command with the uv cache denied the way real users meet it.
//!
//! Each [`Sandbox`] is one small declarative policy: a type implementing the crate's `Policy`
//! trait (`policy.rs`) in the sandbox's own module, found through one row of `Sandbox::policy`.
//! Its kebab-case name is an identity shared by test names, report columns, CLI values and
//! JSON, so renaming one changes every report.
//! Every use is proven by a canary: [`Sandbox::canary`] tries to create a new file in the
//! cache *inside* the sandbox and must see the expected [`Denial`] before a matrix cell counts.
//!
//! # The policies (one module each, each fits on a screen)
//!
//! | name            | module        | how the cache is denied                                     | errno  |
//! |-----------------|---------------|-------------------------------------------------------------|--------|
//! | `none`          | `policy`      | not at all (baseline; its canary must fail)                 | –      |
//! | `landlock`      | [`landlock`]  | helper applies a Landlock ruleset (read `/`, write ws/tmp/dev) | EACCES |
//! | `ro-home`       | [`bwrap`]     | bubblewrap, `$HOME` bind-mounted read-only                  | EROFS  |
//! | `ro-root`       | [`bwrap`]     | bubblewrap, `/` read-only, only the workspace writable      | EROFS  |
//! | `foreign-owner` | [`foreign`]   | root: run as uid 65534; else: write bits stripped           | EACCES |
//! | `immutable`     | `immutable`   | `chattr +i` on the cache (root; Seatbelt's errno on Linux) | EPERM  |
//! | `codex`         | [`external`]  | `codex sandbox linux --full-auto` (0.63: Landlock+seccomp)  | EACCES |
//! | `codex-current` | [`external`]  | `codex sandbox -P uvfix` (current release: bubblewrap)      | EROFS  |
//! | `sandbox-runtime` | [`external`] | Anthropic `srt` with a settings JSON (bubblewrap)          | EROFS  |
//! | `docker-ro`     | [`docker`]    | `docker run --read-only`, `$HOME` volume `:ro`              | EROFS  |
//! | `seatbelt`      | [`external`]  | macOS `sandbox-exec`, `(deny file-write* (subpath home))`   | EPERM  |
//! | (yours)         | [`custom`]    | `NAME[:ERRNO]=COMMAND PREFIX` with `{workspace}` `{cache}` … | given  |
//!
//! Adding a built-in sandbox: a module with a type that implements `Policy` (name, denial,
//! availability, command; prepare, release, TMPDIR and the helper where they differ from the
//! defaults), a [`Sandbox`] variant, its row in `Sandbox::policy` and its entry in
//! [`Sandbox::ALL`]. A sandbox for one run needs no code: [`custom`].
//!
//! # Environment
//!
//! The sandboxed command gets exactly [`Invocation::env`] (the host environment is cleared), plus
//! `PATH` when the caller did not set one (the host's `PATH`, else a standard one), and runs in
//! [`Invocation::cwd`]. External tools may add variables of their own (`codex` prepends to `PATH`
//! and sets `CODEX_SANDBOX_NETWORK_DISABLED`; `srt` sets proxy variables and `TMPDIR=/tmp/claude`).
//!
//! # Network
//!
//! Every policy that can take the network away does: bubblewrap `--unshare-net`, Landlock denies
//! TCP bind/connect (ABI 4+), foreign-owner as root runs under `unshare --net`, codex uses seccomp,
//! srt has an empty domain allow-list, docker gets `--network none`, seatbelt `(deny network*)`.
//! `none` and foreign-owner as a non-root user keep the network.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use strum::{Display, EnumString, IntoStaticStr, VariantArray};

pub mod bwrap;
mod canary;
pub mod custom;
pub mod docker;
pub mod external;
pub mod foreign;
mod helper;
mod immutable;
pub mod landlock;
pub mod owner;
mod policy;
mod probe;
pub mod trial;

use policy::Policy;

pub use canary::errno_name;
pub use helper::helper_main;
pub use nix::errno::Errno;
pub use probe::is_root;

/// The ways a write to the cache is denied. Shown and serialized as the errno's name
/// (`EACCES`, `EROFS`, `EPERM`); the numbers come from libc's constants, not from a table here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[derive(Serialize, Deserialize)]
#[derive(Display, EnumString, IntoStaticStr, VariantArray)]
#[serde(rename_all = "UPPERCASE")]
#[strum(serialize_all = "UPPERCASE")]
pub enum Denial {
    /// Landlock, permission bits.
    Eacces,
    /// Read-only bind mounts (bubblewrap, `docker -v …:ro`).
    Erofs,
    /// macOS Seatbelt, the immutable attribute.
    Eperm,
}

impl Denial {
    /// The errno a denied write gets.
    pub fn errno(self) -> Errno {
        match self {
            Denial::Eacces => Errno::EACCES,
            Denial::Erofs => Errno::EROFS,
            Denial::Eperm => Errno::EPERM,
        }
    }

    /// The denial an errno stands for, if it is one of the three.
    pub fn from_errno(errno: Errno) -> Option<Denial> {
        Denial::VARIANTS
            .iter()
            .copied()
            .find(|d| d.errno() == errno)
    }
}

/// Every sandbox the matrix knows. `None` is the unsandboxed baseline. The kebab-case names
/// ("ro-home", "docker-ro") are test names, table columns, CLI values and JSON values alike.
///
/// A variant is an identity; what it does is its policy (`Sandbox::policy`, one row per
/// variant), which also carries its name: written out there rather than derived, since a
/// custom sandbox carries its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(test, derive(strum::EnumIter))]
pub enum Sandbox {
    None,
    Landlock,
    RoHome,
    RoRoot,
    ForeignOwner,
    /// The cache carries the immutable attribute: EPERM on Linux, the errno of macOS Seatbelt.
    Immutable,
    Codex,
    /// Codex CLI's current release: bubblewrap, EROFS.
    CodexCurrent,
    SandboxRuntime,
    DockerReadOnly,
    Seatbelt,
    /// A sandbox the user brought (`cargo xtask matrix --custom-sandbox`), see [`custom`].
    /// Not in [`Sandbox::ALL`]; [`custom::all`] lists the registered ones.
    Custom(u8),
}

impl std::fmt::Display for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Reports and JSON name a sandbox by [`Sandbox::name`].
impl Serialize for Sandbox {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Sandbox {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Sandbox::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown sandbox `{name}`")))
    }
}

impl std::str::FromStr for Sandbox {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Sandbox::from_name(name).ok_or_else(|| format!("unknown sandbox `{name}`"))
    }
}

/// The directories of one cell. All absolute. `cache` lies inside `home`
/// (`$HOME/.cache/uv`), `workspace` and `tmp` do not.
#[derive(Debug, Clone)]
pub struct Layout {
    pub home: PathBuf,
    pub cache: PathBuf,
    pub workspace: PathBuf,
    /// Scratch dir handed to the command as TMPDIR (writable unless the policy says otherwise).
    pub tmp: PathBuf,
}

/// A command to run inside a sandbox.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The complete environment (the sandbox starts from an empty one, then adds these).
    pub env: Vec<(OsString, OsString)>,
    pub cwd: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Available,
    /// Why it cannot run here, in words for the report (e.g. "bwrap not installed: apt-get install bubblewrap").
    Unavailable(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "sandbox `{sandbox}` did not deny a write into the cache: the canary file was created at {path}"
    )]
    CanaryNotDenied {
        sandbox: &'static str,
        path: PathBuf,
    },
    #[error("sandbox `{sandbox}` denied the canary with {got:?}, expected {expected}")]
    WrongDenial {
        sandbox: &'static str,
        got: Errno,
        expected: Denial,
    },
    #[error("sandbox `{sandbox}` could not run the canary: {detail}")]
    CanaryFailed {
        sandbox: &'static str,
        detail: String,
    },
    #[error("preparing sandbox `{sandbox}`: {source}")]
    Prepare {
        sandbox: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl Sandbox {
    /// Every sandbox, in table order (the custom ones are not listed: see [`custom::all`]).
    pub const ALL: &'static [Sandbox] = &[
        Sandbox::None,
        Sandbox::Landlock,
        Sandbox::RoHome,
        Sandbox::RoRoot,
        Sandbox::ForeignOwner,
        Sandbox::Immutable,
        Sandbox::Codex,
        Sandbox::CodexCurrent,
        Sandbox::SandboxRuntime,
        Sandbox::DockerReadOnly,
        Sandbox::Seatbelt,
    ];

    /// What the sandbox does: one row per sandbox, the policy in the sandbox's own module.
    /// Every method below that differs between sandboxes asks it.
    fn policy(self) -> &'static dyn Policy {
        match self {
            Sandbox::None => &policy::Unsandboxed,
            Sandbox::Landlock => &landlock::Landlock,
            Sandbox::RoHome => &bwrap::Bwrap::RoHome,
            Sandbox::RoRoot => &bwrap::Bwrap::RoRoot,
            Sandbox::ForeignOwner => &foreign::ForeignOwner,
            Sandbox::Immutable => &immutable::Immutable,
            Sandbox::Codex => &external::Codex,
            Sandbox::CodexCurrent => &external::CodexCurrent,
            Sandbox::SandboxRuntime => &external::SandboxRuntime,
            Sandbox::DockerReadOnly => &docker::DockerReadOnly,
            Sandbox::Seatbelt => &external::Seatbelt,
            Sandbox::Custom(index) => custom::get(index),
        }
    }

    /// Short stable name used in test names, table columns and CLI flags ("landlock", "ro-home", …).
    pub fn name(self) -> &'static str {
        self.policy().name()
    }

    pub fn from_name(name: &str) -> Option<Sandbox> {
        Sandbox::ALL
            .iter()
            .copied()
            .find(|s| s.name() == name)
            .or_else(|| custom::find(name))
    }

    /// The errno a denied cache write gets; `None` for `Sandbox::None`.
    ///
    /// `codex` is EACCES for the Landlock generation (0.63.0, the one this fixture installs); a
    /// newer, bubblewrap-based codex would show EROFS and its canary then fails with
    /// [`SandboxError::WrongDenial`] instead of passing unnoticed.
    pub fn denial(self) -> Option<Denial> {
        self.policy().denial()
    }

    /// Whether this machine can provide the sandbox, with the reason if not. Cheap; may be cached.
    ///
    /// Probes really start the tool once (e.g. `bwrap … /bin/sh -c :`, `docker info`), because
    /// "installed" is not "works" (user namespaces may be disabled, the docker engine may be
    /// missing). Results are cached for the life of the process.
    pub fn availability(self) -> Availability {
        probe::cached(self, || self.policy().availability())
    }

    /// The sandboxes that must be available: `$UVFIX_REQUIRE_SANDBOXES`, a comma list of
    /// names or `all`. CI sets it so that a sandbox that silently went missing fails instead
    /// of skipping.
    pub fn required() -> Vec<Sandbox> {
        let value = std::env::var("UVFIX_REQUIRE_SANDBOXES").unwrap_or_default();
        if value.trim() == "all" {
            return Sandbox::ALL.to_vec();
        }
        value
            .split(',')
            .filter_map(|name| name.trim().parse().ok())
            .collect()
    }

    /// Why tests of this sandbox are skipped on this machine: it is unavailable and not
    /// required. A required sandbox is never skipped; its tests run and fail with
    /// [`Sandbox::usable`]'s reason.
    pub fn skip_reason(self) -> Option<String> {
        match self.availability() {
            Availability::Unavailable(why) if !Sandbox::required().contains(&self) => {
                Some(format!("sandbox `{self}` unavailable here: {why}"))
            }
            _ => None,
        }
    }

    /// `Err(reason)` when the sandbox cannot run here: what a test that was not skipped (a
    /// required sandbox, or `--include-ignored`) fails with.
    pub fn usable(self) -> Result<(), String> {
        match self.availability() {
            Availability::Available => Ok(()),
            Availability::Unavailable(why) => Err(format!(
                "sandbox `{self}` is required here but unavailable: {why}"
            )),
        }
    }

    /// Whether TMPDIR (`layout.tmp`) is writable inside the sandbox (false for ro-root).
    pub fn tmp_writable(self) -> bool {
        self.policy().tmp_writable()
    }

    /// Adjust ownership/modes on the host before use (foreign-owner: chown workspace+tmp to the
    /// unprivileged uid, make path components traversable). Idempotent.
    ///
    /// Only `foreign-owner` (see [`foreign`]) and `immutable` (`chattr +i` on the cache) change
    /// anything. Both can keep the layout from being deleted (foreign-owner as a non-root user
    /// strips the cache's write bits): call [`Sandbox::release`] before removing it.
    pub fn prepare(self, layout: &Layout) -> Result<(), SandboxError> {
        self.host_step(self.policy().prepare(layout))
    }

    /// Undo what [`Sandbox::prepare`] did where it would get in the way of deleting the layout
    /// (foreign-owner as non-root: give the owner its write bits back; immutable: lift the
    /// attribute). Idempotent; a no-op for every other sandbox.
    pub fn release(self, layout: &Layout) -> Result<(), SandboxError> {
        self.host_step(self.policy().release(layout))
    }

    fn host_step(self, result: std::io::Result<()>) -> Result<(), SandboxError> {
        result.map_err(|source| SandboxError::Prepare {
            sandbox: self.name(),
            source,
        })
    }

    /// Build the host-side command that runs `inv` inside the sandbox. `helper` is the path of the
    /// `uvfix-sandbox` helper binary (needed by landlock and the canary).
    ///
    /// Building never fails: if the tool is missing the returned command fails to spawn or exits
    /// non-zero with the tool's own message. Check [`Sandbox::availability`] first.
    ///
    /// Under `foreign-owner` as root, `inv.program` runs as uid 65534 and must be executable by
    /// it: pass it through [`foreign::stage_executable`] if it may live in a private directory.
    pub fn command(self, layout: &Layout, helper: &Path, inv: &Invocation) -> Command {
        self.policy().command(layout, helper, inv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for &s in Sandbox::ALL {
            assert_eq!(s.name().parse(), Ok(s));
        }
        let mut names: Vec<_> = Sandbox::ALL.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Sandbox::ALL.len());
        assert!("nope".parse::<Sandbox>().is_err());
        assert_eq!(Sandbox::DockerReadOnly.to_string(), "docker-ro");
    }

    /// Every variant has its row in [`Sandbox::policy`], and the row points at the variant's
    /// own policy: the policy's name is the variant's (its identifier in kebab-case, `docker-ro`
    /// shortened), finds the variant again, and is in [`Sandbox::ALL`] unless custom.
    #[test]
    fn every_variant_has_a_policy_of_its_own_name() {
        use strum::IntoEnumIterator;
        // `Sandbox::iter` yields `Custom(0)`: make sure the registry has an entry 0.
        custom::register("policy-row-test=true").unwrap();
        let kebab = |ident: &str| {
            let mut out = String::new();
            for c in ident.chars() {
                if c.is_ascii_uppercase() && !out.is_empty() {
                    out.push('-');
                }
                out.push(c.to_ascii_lowercase());
            }
            out
        };
        let mut seen = 0;
        for s in Sandbox::iter() {
            let name = s.policy().name();
            assert_eq!(Sandbox::from_name(name), Some(s), "{s:?} → policy `{name}`");
            assert_eq!(s.to_string(), name, "{s:?}");
            if let Sandbox::Custom(index) = s {
                assert_eq!(name, custom::get(index).name, "{s:?}");
                continue;
            }
            let want = match kebab(&format!("{s:?}")).as_str() {
                "docker-read-only" => "docker-ro".to_owned(),
                other => other.to_owned(),
            };
            assert_eq!(name, want, "{s:?}");
            assert!(
                Sandbox::ALL.contains(&s),
                "{s:?} is missing from Sandbox::ALL"
            );
            seen += 1;
        }
        assert_eq!(seen, Sandbox::ALL.len());
    }

    #[test]
    fn only_none_has_no_denial() {
        for &s in Sandbox::ALL {
            assert_eq!(s.denial().is_none(), s == Sandbox::None, "{s}");
        }
    }

    #[test]
    fn errno_mapping() {
        for &d in Denial::VARIANTS {
            assert_eq!(Denial::from_errno(d.errno()), Some(d));
        }
        assert_eq!(Denial::from_errno(Errno::ENOENT), None);
        assert_eq!(errno_name(Errno::EROFS), "EROFS (errno 30)");
        assert_eq!(Denial::Erofs.to_string(), "EROFS");
    }
}
