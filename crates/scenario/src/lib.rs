//! Everything one matrix cell needs except the sandboxes themselves and the uv build.
//!
//! A cell is (uv under test — a [`Build`] —, sandbox, scenario S1..S7, cache state). [`cell::run_cell`] builds
//! a fresh temp root, local wheels ([`wheel`]), a workspace ([`scenario`]), warms the cache
//! unsandboxed with the same uv, damages it ([`state`]), proves the sandbox denies (canary),
//! runs the scenario inside the sandbox with the cache digested before and after ([`digest`]),
//! and judges the outcome against one table of expectations ([`expect`]), chosen by what the
//! build is. [`report`] renders many results as a terminal summary, the grid (text and
//! Markdown), JSON and JUnit; [`plan`] says which cells exist.
//!
//! No network, ever: packages come from a `find-links` directory of wheels built at test time,
//! and `UV_PYTHON_DOWNLOADS=never` with the system interpreter ([`python`]).
//!
//! # Measured with the official uv 0.12.5 (Debian 12, root, Linux Landlock ABI ≥ 4)
//!
//! `cargo xtask matrix --uv official-0.12.5=$UVFIX_UV` (every sandbox, scenario and state):
//!
//! - **Unsandboxed** (writable cache): S1..S7 pass in every state except `git-marker-is-dir`,
//!   which fails everywhere with `Failed to initialize cache … failed to open file
//!   …/sdists-v9/.git: Is a directory (os error 21)`. uv repairs the other damage (recreates
//!   `.gitignore`, `.lock`, `CACHEDIR.TAG`; creates an absent cache with just those three; leaves
//!   a dangling `CACHEDIR.TAG` symlink alone). Even warm, S2 and S6 add one
//!   `interpreter-v4/<key>/<hash>.msgpack` per run: those are writes a read-only cache refuses.
//! - **landlock, foreign-owner, codex** (EACCES): every scenario, every state, exit 2 with
//!   `Failed to initialize cache at …` caused by opening `sdists-v9/.git` (warm, lock-missing,
//!   lock-mode-000, dangling-symlink-marker), `.gitignore` (marker-missing) or `CACHEDIR.TAG`
//!   (cachedir-tag-missing) for writing, or by creating the cache dir (cache-absent).
//! - **ro-home, ro-root, sandbox-runtime** (EROFS): exit 2; warm, lock-missing and
//!   dangling-symlink-marker fail first at `Could not acquire lock / Could not create temporary
//!   file / Read-only file system (os error 30) at path "…/.cache/uv/.tmpXXXX"`; the marker
//!   states and cache-absent at `Failed to initialize cache` as above.
//! - Never a panic, and the cache digest never changed inside a sandbox.

pub mod build;
pub mod cell;
pub mod digest;
pub mod expect;
pub mod plan;
pub mod python;
pub mod report;
pub mod scenario;
pub mod stack;
pub mod state;
pub mod wheel;
pub mod writeset;

pub use build::{Build, UvSel};
pub use cell::{CellOptions, CellResult, Timing, UvUnderTest, run_cell, run_cell_with};
pub use digest::{TreeDiff, TreeDigest};
pub use expect::{Expect, Outcome, expected};
pub use scenario::{Scenario, ScenarioId};
pub use state::CacheState;
