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
    /// Carry the stack forward: how its hunks apply to newer crates, and the stacks of other
    /// bases.
    #[command(subcommand)]
    Forward(ForwardCommand),
}

/// `cargo xtask upstream forward …`: one mode each.
#[derive(Subcommand)]
pub enum ForwardCommand {
    /// Try every patch against newer crates.io releases of the pinned crates, hunk by hunk.
    ///
    /// Each hunk is reported as applies, offset, fuzz or FAILS. Failing hunks are a finding, not an error: it exits non-zero only when a tool fails.
    Release {
        /// A uv release (`0.13.6`): try the crate versions it was published with
        /// [default: each pinned crate's newest release].
        #[arg(long, value_name = "UV_VERSION")]
        to: Option<String>,
    },
    /// The same against the crates of an astral-sh/uv checkout: the rebase cost against `main`.
    ///
    /// The crates are read from REV with `git archive`, so a bare clone works and the checkout
    /// is left as it is.
    Checkout {
        /// The checkout or bare clone.
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// The revision whose crates to try.
        #[arg(long, value_name = "REV", default_value = "HEAD")]
        rev: String,
    },
    /// Write the stack of the base given with `--base VERSION`, from its `[forward]` table.
    ///
    /// Every hunk of the source stack that applies, its paths moved, plus the base's recorded
    /// hand work (`fixups/`).
    Write {
        /// Write nothing; fail if the committed stack differs from what would be written.
        #[arg(long)]
        check: bool,
    },
    /// Record the hand work on STEP of the base given with `--base VERSION`, and rewrite its
    /// stack.
    ///
    /// The hand work is the difference between what carries over and the step's edited build
    /// tree (`cargo xtask patch edit --base … STEP`); it becomes the base's `fixups/` patch.
    Record {
        /// The step whose build tree holds the edit.
        #[arg(value_name = "STEP")]
        step: String,
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
        UpstreamCommand::Forward(command) => forward_run(paths, command),
    }
}

fn forward_run(paths: &Paths, command: ForwardCommand) -> Result<()> {
    match command {
        ForwardCommand::Release { .. } | ForwardCommand::Checkout { .. }
            if paths.base.is_some() =>
        {
            bail!(
                "`upstream forward release` and `checkout` try the default stack; --base names \
                 a base whose stack `upstream forward write --base VERSION` writes: drop --base, \
                 or use `write`"
            )
        }
        ForwardCommand::Release { to } => forward::run(paths, to.as_deref()),
        ForwardCommand::Checkout { path, rev } => forward::run_on_checkout(paths, &path, &rev),
        ForwardCommand::Write { check: false } => rebase::run(paths, rebase::Mode::Write),
        ForwardCommand::Write { check: true } => rebase::run(paths, rebase::Mode::Check),
        ForwardCommand::Record { step } => rebase::run(paths, rebase::Mode::Record(&step)),
    }
}
