//! A run's lifetime, so that a run leaves nothing behind, however it ends.
//!
//! Everything a run puts on the host lives in its *store*, `$TMPDIR/uvr-XXXXXX` ([`RunStore`]):
//! the warm caches and every cell's root. Next to the caches the store holds two files:
//!
//! - `run.lock`, locked (`flock`) for as long as the run lives: a store whose lock is held is a
//!   live run's and is never touched by anyone else; a store whose lock is free was left by a
//!   run that died, and the next run cleans it ([`sweep`]).
//! - `journal`, one JSON line per thing the run did that outlives a process: every process
//!   group it started (with the leader's start time, so that a later process with the same
//!   pid is never taken for it), every directory given the immutable attribute, every tree
//!   handed to another owner or stripped of its write bits, and whether it started Docker
//!   containers (labelled with the store). [`clean`] undoes exactly those.
//!
//! How a run ends decides who cleans:
//!
//! | end | who cleans |
//! |---|---|
//! | normally, or with an error | the run itself, when its [`RunStore`] is closed or dropped |
//! | SIGINT, SIGTERM, SIGHUP | the run itself ([`interrupt`]): every running group is killed, containers removed, no new command starts, the cells unwind and the store is closed; exit 128 + the signal |
//! | SIGKILL, power loss | the next run that creates a store in the same directory ([`sweep`]) |
//!
//! Under nextest the store outlives the setup script that creates it (`cargo xtask
//! cell-store`), so a *keeper* process holds its lock for the nextest run's lifetime and
//! cleans it when nextest exits ([`keeper`]).

pub mod interrupt;
pub mod journal;
pub mod keeper;
mod procs;
pub mod store;
mod undo;

pub use interrupt::Interrupted;
pub use journal::Entry;
pub use store::{RunStore, STORE_PREFIX, Swept, clean, sweep};
