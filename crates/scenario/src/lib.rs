//! Everything one matrix cell needs except the sandboxes themselves and the uv build.
//!
//! A cell is (uv under test — a [`Build`] —, sandbox, scenario S1–S10, cache state). [`cell::run_cell`] builds
//! a fresh temp root, local wheels ([`wheel`]), a workspace ([`scenario`]), warms the cache
//! unsandboxed with the same uv, damages it ([`state`]), proves the sandbox denies (canary),
//! runs the scenario inside the sandbox with the cache digested before and after ([`digest`]),
//! and judges the outcome against one table of expectations ([`expect`]), chosen by what the
//! build is. [`report`] renders many results as a terminal summary, the grid (text and
//! Markdown), JSON and JUnit; [`plan`] says which cells exist. [`stepwise`] compares the
//! builds of a stack step by step (`cargo xtask matrix --steps`); [`explicit`] fails a run
//! that was asked for by name and tested nothing.
//!
//! No network, ever: packages come from a `find-links` directory of wheels built at test time,
//! and `UV_PYTHON_DOWNLOADS=never` with the system interpreter ([`python`]).
//!
//! What the official release does in each sandbox, cell by cell, is in docs/matrix.md ("What
//! the release does in each sandbox"); the expectation table ([`expect`]) is built on it.

pub mod build;
pub mod cell;
pub mod compare;
pub mod digest;
pub mod expect;
pub mod explicit;
pub mod plan;
pub mod pool;
pub mod python;
pub mod report;
pub mod scenario;
pub mod stack;
pub mod state;
pub mod stepwise;
pub mod wheel;
pub mod writeset;

pub use build::{Build, UvSel};
pub use cell::{CellOptions, CellResult, Timing, UvUnderTest, run_cell, run_cell_with};
pub use digest::{TreeDiff, TreeDigest};
pub use expect::{Expect, Outcome, expected};
pub use scenario::{Scenario, ScenarioId};
pub use state::CacheState;
