//! The cells of a plan ([`crate::plan`]) run many at a time, as `cargo xtask matrix`, `bench`,
//! `matrix --steps` and `upstream validate` run them (the test suite runs its cells through
//! nextest instead): a small thread pool, one run store for everything the cells put on disk,
//! and an order that keeps cells sharing a warm cache apart.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use uvfix_run::RunStore;
use uvfix_sandbox::Sandbox;

use crate::Build;
use crate::cell::{CellOptions, CellResult, UvUnderTest, run_cell_with, store_peak};
use crate::plan::Planned;
use crate::report::Cost;

/// Cells run at once: `--jobs`, else the number of CPUs.
pub fn jobs(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
        .max(1)
}

/// Run `cells` on `jobs` threads; the results in the cells' order, and what they cost.
///
/// Everything the cells put on disk lives in this run's store (`uvfix_run::RunStore`): unless
/// `warm_per_cell`, the warm snapshots and slots the cells share (see
/// [`CellOptions::store`]), else every cell's own root. The store is
/// removed before this returns, also when the run was interrupted (then the result is
/// `uvfix_run::Interrupted`) or a cell failed.
///
/// `pristine` is a pristine uv at hand outside the run (`$UVFIX_UV_PRISTINE`): the writable
/// cells' reference when the run tests no pristine build ([`reference`]).
pub fn run_cells(
    cells: &[Planned],
    jobs: usize,
    helper: &Path,
    warm_per_cell: bool,
    pristine: Option<&Path>,
) -> Result<(Vec<CellResult>, Cost)> {
    uvfix_run::interrupt::check()?;
    let store = RunStore::create(&std::env::temp_dir()).context("creating the run's store")?;
    let opts = if warm_per_cell {
        CellOptions {
            temp_parent: Some(store.path().to_owned()),
            store: None,
            reference: reference(cells, pristine),
            ..CellOptions::default()
        }
    } else {
        CellOptions {
            store: Some(store.path().to_owned()),
            reference: reference(cells, pristine),
            ..CellOptions::default()
        }
    };
    eprintln!(
        "uvfix: running {} cells, {jobs} at a time, {}",
        cells.len(),
        if warm_per_cell {
            "each warming its own cache"
        } else {
            "each (uv, scenario, state) warmed once and copied per cell"
        }
    );
    let order = execution_order(cells);
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(cells.len()));
    // Claude Code's sandbox runtime starts two socat bridges per run and waits at most
    // ~0.6 s for them; its cells take turns to keep that margin on a small machine.
    let one_at_a_time = Mutex::new(());
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    // Interrupted: no new cell (the running ones were stopped).
                    if uvfix_run::interrupt::interrupted().is_some() {
                        break;
                    }
                    let done = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&index) = order.get(done) else { break };
                    let cell = &cells[index];
                    let _turn = (cell.sandbox == Sandbox::SandboxRuntime
                        && cell.unavailable.is_none())
                    .then(|| one_at_a_time.lock().unwrap_or_else(|e| e.into_inner()));
                    let result = run_cell_with(
                        &cell.uv,
                        cell.sandbox,
                        cell.scenario,
                        cell.state,
                        helper,
                        &opts,
                    );
                    eprintln!(
                        "[{}/{}] {} {} {:.1}s",
                        done + 1,
                        cells.len(),
                        cell.name(),
                        result.outcome.word(),
                        result.duration_ms as f64 / 1000.0
                    );
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((index, result));
                }
            });
        }
    });
    let wall = start.elapsed();
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(index, _)| *index);
    let results: Vec<CellResult> = results.into_iter().map(|(_, r)| r).collect();
    let mut cost = Cost::of(&results, wall);
    cost.store_peak_bytes = store_peak(store.path());
    let closed = store.close();
    uvfix_run::interrupt::check()?;
    closed?;
    Ok((results, cost))
}

/// The build every writable cell's writes are compared with (see [`crate::writeset`]): the
/// run's pristine build, else `pristine`, the one `$UVFIX_UV_PRISTINE` names (a job that tests
/// one build, `ci/job.sh none patched`, still has pristine's binary at hand).
fn reference(cells: &[Planned], pristine: Option<&Path>) -> Option<UvUnderTest> {
    cells
        .iter()
        .map(|c| &c.uv)
        .find(|uv| uv.build == Build::Pristine)
        .cloned()
        .or_else(|| {
            let uv = UvUnderTest::new(Build::Pristine, pristine?);
            uv.check().is_ok().then_some(uv)
        })
}

/// The order to run `cells` in: cells of one (uv, scenario, state) share a slot and take
/// turns, so they are spread out. Round `r` runs the `r`-th cell of every key, each key's
/// cells rotated by its position, so that a round mixes sandboxes (srt's cells, which run one
/// at a time, do not bunch up) and the first round warms every key.
pub fn execution_order(cells: &[Planned]) -> Vec<usize> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (index, cell) in cells.iter().enumerate() {
        let key = format!("{}/{}/{}", cell.uv.build, cell.scenario, cell.state);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(index),
            None => groups.push((key, vec![index])),
        }
    }
    let rounds = groups.iter().map(|(_, m)| m.len()).max().unwrap_or(0);
    let mut order = Vec::with_capacity(cells.len());
    for round in 0..rounds {
        for (position, (_, members)) in groups.iter().enumerate() {
            if round < members.len() {
                order.push(members[(round + position) % members.len()]);
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{self, Filter};
    use crate::{CacheState, ScenarioId};

    #[test]
    fn cells_of_one_key_are_spread_and_every_key_warms_in_the_first_round() {
        let uvs = [UvUnderTest::new(Build::Patched, "/nonexistent/uv")];
        let filter = Filter {
            sandboxes: Some(vec![Sandbox::None, Sandbox::RoHome, Sandbox::Landlock]),
            scenarios: Some(vec![ScenarioId::S1, ScenarioId::S2]),
            states: Some(vec![CacheState::Warm, CacheState::LockMissing]),
        };
        let cells = plan::cells(&uvs, &filter);
        let order = execution_order(&cells);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..cells.len()).collect::<Vec<_>>(),
            "each cell once"
        );
        let key = |i: usize| (cells[i].scenario, cells[i].state);
        for pair in order.windows(2) {
            assert_ne!(key(pair[0]), key(pair[1]), "neighbours share a slot");
        }
        let first_round: Vec<_> = order[..4].iter().map(|&i| key(i)).collect();
        assert_eq!(first_round.len(), 4);
        let sandboxes: std::collections::BTreeSet<_> =
            order[..4].iter().map(|&i| cells[i].sandbox).collect();
        assert!(sandboxes.len() > 1, "a round mixes sandboxes");
    }
}
