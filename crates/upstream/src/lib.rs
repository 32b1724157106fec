//! `cargo xtask upstream …`: take the series to astral-sh/uv and keep checking it there. The
//! commands and their logic; `xtask` parses the command line into [`UpstreamCommand`] and
//! calls [`run`].
//!
//! * [`export`]: the series as `git format-patch` mail with repo-relative paths
//!   (`crates/uv-cache/src/lib.rs`), plus a PR description. Made by the real tools: a
//!   scratch git repository holding the pristine crates, one `git apply` + `git commit` per
//!   patch, then `git format-patch`.
//! * [`check`]: apply that export to an astral-sh/uv checkout (or bare clone) in a
//!   throwaway worktree, build uv there, run the touched crates' unit tests, then the matrix;
//!   with `--tests`, upstream's own integration tests instead, step by step ([`integration`]).
//! * [`validate`]: build any astral-sh/uv revision and the one it is compared with, run the
//!   matrix with both and say per sandbox what turned green and what turned red.
//! * [`forward`]: try every patch against newer crates.io releases of the pinned crates with
//!   GNU `patch --dry-run --verbose`, and report each hunk.
//!
//! Everything is written below `target/uvfix/upstream/` (and `target/uvfix/upstream-target/`
//! for the upstream build). Nothing is ever committed to, or pushed from, a checkout given
//! to `check`: it only gains a detached worktree under our `target/`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Subcommand;
use uvfix_pipeline::Paths;

mod check;
mod checkout;
mod command;
mod diff;
mod export;
mod forward;
mod gate_records;
mod gates;
mod git;
mod gnu_patch;
mod integration;
mod message;
mod rebase;
mod records;
mod suite;
mod toolchain;
pub mod user;
#[cfg(unix)]
mod validate;
mod workdir;

#[derive(Subcommand)]
pub enum UpstreamCommand {
    /// Write the series as `git format-patch` files with repo-relative paths, plus
    /// PR-DESCRIPTION.md.
    Export {
        /// Output directory [default: target/uvfix/upstream/export, for another base
        /// target/uvfix/bases/<VERSION>/upstream/export].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Apply the exported series to an astral-sh/uv checkout or bare clone, build uv there,
    /// run the touched crates' unit tests and the matrix against that build (or, with
    /// --tests, upstream's own integration tests).
    Check(check::Options),
    /// Build an astral-sh/uv revision and the one it is compared with (its merge base with the
    /// release the stack is written against, else its parent), run the matrix with both, and
    /// print per sandbox the cells that succeed before and after, turned green and turned red.
    /// Fails if a cell turned red.
    #[cfg(unix)]
    Validate(validate::Options),
    /// Try every patch against newer crates.io releases of the pinned crates and report
    /// each hunk (applies, offset, fuzz, FAILS). Failing hunks are a finding, not an error.
    ///
    /// With `--base VERSION` (a base with a `[forward]` table in its series.toml), write that
    /// base's stack instead: every hunk that applies, plus the base's recorded hand work.
    Forward {
        /// A uv release (`0.13.6`): try the crate versions it was published with
        /// [default: each pinned crate's newest release].
        #[arg(long, value_name = "UV_VERSION", conflicts_with_all = ["record", "checkout"])]
        to: Option<String>,
        /// Try the stack on the crates of an astral-sh/uv checkout (or bare clone) instead of
        /// crates.io releases: the rebase cost against `main`.
        #[arg(long, value_name = "PATH", conflicts_with = "record")]
        checkout: Option<PathBuf>,
        /// With `--checkout`: the revision whose crates to try.
        #[arg(
            long,
            value_name = "REV",
            default_value = "HEAD",
            requires = "checkout"
        )]
        rev: String,
        /// With `--base`: record the hand work on STEP, the difference between what carries
        /// over and its edited build tree (`cargo xtask patch edit --base … STEP`), as the
        /// base's `fixups/` patch.
        #[arg(long, value_name = "STEP")]
        record: Option<String>,
    },
}

pub fn run(paths: &Paths, command: UpstreamCommand) -> Result<()> {
    match command {
        UpstreamCommand::Export { out } => {
            let out = out.unwrap_or_else(|| export::default_out(paths));
            export::run(paths, &out).map(drop)
        }
        UpstreamCommand::Check(options) => check::run(paths, &options),
        #[cfg(unix)]
        UpstreamCommand::Validate(options) => validate::run(paths, &options),
        UpstreamCommand::Forward {
            checkout: Some(checkout),
            rev,
            ..
        } => {
            if paths.base.is_some() {
                bail!(
                    "--checkout tries the default stack on an upstream tree; --base writes a \
                     base's stack: give one of them"
                );
            }
            forward::run_on_checkout(paths, &checkout, &rev)
        }
        UpstreamCommand::Forward { to, record, .. } => match (&paths.base, to) {
            (Some(_), Some(_)) => bail!(
                "--to tries the default stack on a release; --base writes a base's stack from its \
                 [forward] table: give one of them"
            ),
            (Some(_), None) => rebase::run(paths, record.as_deref()),
            (None, to) if record.is_none() => forward::run(paths, to.as_deref()),
            (None, _) => bail!("--record needs --base: the base whose hand work it records"),
        },
    }
}
