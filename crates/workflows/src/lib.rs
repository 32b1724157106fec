//! The GitHub workflows as data, and a local emulation of every job × matrix entry.
//!
//! The runners GitHub gives our jobs differ from this machine (a non-root `runner` with sudo,
//! macOS's bash 3.2, Windows' pwsh, apt sources as `mirror+file:`), and a workflow is only
//! ever run there. This crate reads `.github/workflows/*.yml` with zizmor's models
//! ([`workflow`]), expands each job's matrix as GitHub does, and runs each entry's steps with
//! the real scripts but stub tools ([`emulate`]): what the scripts *decide* (which installer
//! runs for which sandbox, what `UVFIX_REQUIRE_SANDBOXES` says, which script calls which) is
//! real; what they would *do* to a machine (apt, npm, cargo, docker, sudo) is recorded
//! instead. [`check`] turns an entry and its trace into findings; [`bash32`] is the lint
//! for the scripts a macOS job runs. The test `tests/workflows.rs` makes one test per entry.

pub mod bash32;
pub mod check;
pub mod emulate;
pub mod expr;
pub mod runner;
pub mod workflow;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{path}: not a workflow we can read: {detail}")]
    Yaml { path: PathBuf, detail: String },
    #[error("expression `{expr}`: {detail}")]
    Expression { expr: String, detail: String },
    #[error(
        "the expression reads `{0}`, which the emulation does not provide (crates/workflows/src/workflow.rs sets the contexts)"
    )]
    UnknownContext(String),
    #[error("not supported by the emulation: {0}")]
    Unsupported(String),
    #[error("emulation: {0}")]
    Process(#[from] uvfix_process::Error),
}

/// The repository the checks read: `$UVFIX_WORKFLOWS_ROOT` (another checkout, e.g. an old
/// commit, to see what the checks say about it), else this workspace.
pub fn repo_root() -> PathBuf {
    match std::env::var_os("UVFIX_WORKFLOWS_ROOT").filter(|v| !v.is_empty()) {
        Some(root) => PathBuf::from(root),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
    }
}
