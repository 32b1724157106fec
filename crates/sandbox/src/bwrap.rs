//! `ro-home` and `ro-root`: bubblewrap with user, mount and network namespaces.
//!
//! ```text
//! ro-home:  --dev-bind / /          everything as on the host …
//!           --tmpfs /tmp            … with a private /tmp
//!           --ro-bind HOME HOME     $HOME read-only (the cache with it)
//!           --bind WS WS            workspace writable
//!           --bind TMP TMP          TMPDIR writable
//! ro-root:  --ro-bind / /           like `docker run --read-only -v WS:WS`:
//!           --dev /dev --proc /proc fresh /dev and /proc (hence --unshare-pid)
//!           --bind WS WS            only the workspace writable; TMPDIR is read-only
//! both:     --unshare-user --unshare-net --die-with-parent --cap-drop ALL
//! ```
//!
//! bwrap applies mounts in argument order and later ones cover earlier ones, so the private
//! `/tmp` comes before the layout binds: the layout dirs usually live under `/tmp` themselves.
//! Denied writes get EROFS. `--cap-drop ALL` makes a run as root behave like a user's run (no
//! `CAP_DAC_OVERRIDE` inside); the mounts stay locked read-only either way, because they were
//! created in a less privileged user namespace.
//!
//! The private `/tmp` of `ro-home` hides everything under the host's `/tmp` that is not in the
//! layout; the helper and the program are bound back read-only when they live there (so a
//! test's temp dir still works), anything else they need from `/tmp` must be in the layout.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::policy::{Policy, base_command};
use crate::probe::{find_in_path, run_probe, tool};
use crate::{Availability, Denial, Invocation, Layout};

/// The two bubblewrap policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bwrap {
    RoHome,
    RoRoot,
}

const COMMON: [&str; 5] = [
    "--unshare-user",
    "--unshare-net",
    "--die-with-parent",
    "--cap-drop",
    "ALL",
];

/// The mount part of each policy, in order.
fn mounts(policy: Bwrap, layout: &Layout) -> Vec<OsString> {
    let bind = |flag: &str, dir: &Path| [flag.into(), dir.into(), dir.into()];
    let mut args: Vec<OsString> = Vec::new();
    match policy {
        Bwrap::RoHome => {
            args.extend(["--dev-bind", "/", "/", "--tmpfs", "/tmp"].map(OsString::from));
            args.extend(bind("--ro-bind", &layout.home));
            args.extend(bind("--bind", &layout.workspace));
            args.extend(bind("--bind", &layout.tmp));
        }
        Bwrap::RoRoot => {
            args.extend(
                [
                    "--unshare-pid",
                    "--ro-bind",
                    "/",
                    "/",
                    "--dev",
                    "/dev",
                    "--proc",
                    "/proc",
                ]
                .map(OsString::from),
            );
            args.extend(bind("--bind", &layout.workspace));
        }
    }
    args
}

fn bwrap_command(policy: Bwrap, layout: &Layout, helper: &Path, inv: &Invocation) -> Command {
    let mut cmd = base_command(tool("bwrap"), inv);
    cmd.args(COMMON).args(mounts(policy, layout));
    if policy == Bwrap::RoHome {
        for file in [helper, inv.program.as_path()] {
            if hidden_by_private_tmp(file, layout) {
                cmd.arg("--ro-bind").arg(file).arg(file);
            }
        }
    }
    cmd.arg("--chdir").arg(&inv.cwd);
    cmd.arg("--").arg(&inv.program).args(&inv.args);
    cmd
}

/// A file under the host's /tmp and outside the layout dirs is invisible behind `--tmpfs /tmp`.
fn hidden_by_private_tmp(file: &Path, layout: &Layout) -> bool {
    file.is_absolute()
        && file.starts_with("/tmp")
        && ![&layout.home, &layout.workspace, &layout.tmp]
            .iter()
            .any(|dir| file.starts_with(dir))
        && file.exists()
}

impl Policy for Bwrap {
    fn name(&self) -> &str {
        match self {
            Bwrap::RoHome => "ro-home",
            Bwrap::RoRoot => "ro-root",
        }
    }

    fn denial(&self) -> Option<Denial> {
        Some(Denial::Erofs)
    }

    fn availability(&self) -> Availability {
        availability(*self)
    }

    /// ro-root leaves only the workspace writable: TMPDIR is read-only too.
    fn tmp_writable(&self) -> bool {
        *self != Bwrap::RoRoot
    }

    fn command(&self, layout: &Layout, helper: &Path, inv: &Invocation) -> Command {
        bwrap_command(*self, layout, helper, inv)
    }
}

/// Installed is not enough (user namespaces may be off, e.g. inside an unprivileged container):
/// run the policy's own flags once on `/bin/sh -c :`.
fn availability(policy: Bwrap) -> Availability {
    if find_in_path("bwrap").is_none() {
        return Availability::Unavailable("bwrap not installed: apt-get install bubblewrap".into());
    }
    // Any existing directory will do for the probe's layout.
    let dir = std::env::temp_dir();
    let layout = Layout {
        home: dir.clone(),
        cache: dir.clone(),
        workspace: dir.clone(),
        tmp: dir,
    };
    let mut probe = Command::new(tool("bwrap"));
    probe
        .args(COMMON)
        .args(mounts(policy, &layout))
        .args(["--", "/bin/sh", "-c", ":"]);
    match run_probe(probe, Duration::from_secs(20)) {
        Ok(out) if out.success => Availability::Available,
        Ok(out) => Availability::Unavailable(format!(
            "bwrap cannot create its namespaces here (are unprivileged user namespaces enabled?): {}",
            out.text
        )),
        Err(e) => Availability::Unavailable(e),
    }
}
