//! The cells of a plan ([`crate::plan`]) run many at a time, as `cargo xtask matrix`, `bench`,
//! `matrix --steps` and `upstream validate` run them (the test suite runs its cells through
//! nextest instead): a small thread pool, one run store for everything the cells put on disk,
//! and an order that keeps cells sharing a warm cache apart while holding few warm caches at
//! once.

use std::collections::VecDeque;
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
    let reference = reference(cells, pristine);
    let opts = if warm_per_cell {
        CellOptions {
            temp_parent: Some(store.path().to_owned()),
            store: None,
            reference: reference.clone(),
            ..CellOptions::default()
        }
    } else {
        CellOptions {
            store: Some(store.path().to_owned()),
            reference: reference.clone(),
            reference_apart: true,
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
    let order = execution_order(cells, window(jobs));
    // The last cell of each key removes its slot: nothing later in this run reads it, and the
    // store would otherwise hold every key's warm tree until the run ends (one sandbox's keys
    // once filled a CI machine's disk).
    let last = last_of_key(cells, &order, reference.as_ref());
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
                    let opts = CellOptions {
                        release_slot: last[index],
                        ..opts.clone()
                    };
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

/// The (uv, scenario, state) a cell warms: cells with the same key share one slot.
fn key_of(cell: &Planned) -> String {
    format!("{}/{}/{}", cell.uv.build, cell.scenario, cell.state)
}

/// How many keys [`execution_order`] keeps open at once for `jobs` threads: enough that the
/// threads never wait for one another's slot, few enough that the store holds a handful of
/// warm trees rather than all of them.
fn window(jobs: usize) -> usize {
    2 * jobs.max(1)
}

/// The order to run `cells` in. Cells of one (uv, scenario, state) share a slot and take
/// turns, so they are spread out; and a slot's warm tree stays on disk from its first cell to
/// its last, so few keys are open at a time. The keys are taken in plan order, at most
/// `window` of them open at once, and the open keys give a cell each in turn; a key whose cells
/// are all given out makes room for the next one. Each key's cells are rotated by its position,
/// so that neighbouring keys start in different sandboxes (srt's cells, which run one at a
/// time, do not bunch up).
pub fn execution_order(cells: &[Planned], window: usize) -> Vec<usize> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (index, cell) in cells.iter().enumerate() {
        let key = key_of(cell);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(index),
            None => groups.push((key, vec![index])),
        }
    }
    let mut waiting = groups
        .into_iter()
        .enumerate()
        .map(|(position, (_, mut members))| {
            let len = members.len();
            members.rotate_left(position % len);
            VecDeque::from(members)
        });
    let mut open: VecDeque<VecDeque<usize>> = VecDeque::new();
    let mut order = Vec::with_capacity(cells.len());
    loop {
        while open.len() < window.max(1) {
            match waiting.next() {
                Some(members) => open.push_back(members),
                None => break,
            }
        }
        let Some(mut members) = open.pop_front() else {
            break;
        };
        if let Some(index) = members.pop_front() {
            order.push(index);
        }
        if !members.is_empty() {
            open.push_back(members);
        }
    }
    order
}

/// For each cell (by index into `cells`): whether it is the last in `order` to claim its
/// key's slot. Skipped cells claim none, and neither do the reference build's writable cells,
/// whose run is the write-set record, made apart from the slots
/// ([`CellOptions::reference_apart`]).
fn last_of_key(cells: &[Planned], order: &[usize], reference: Option<&UvUnderTest>) -> Vec<bool> {
    let mut last = vec![false; cells.len()];
    let mut seen = std::collections::HashSet::new();
    for &index in order.iter().rev() {
        let cell = &cells[index];
        let skipped = cell.unavailable.is_some() || cell.not_applicable.is_some();
        let recorded = cell.sandbox == Sandbox::None && reference == Some(&cell.uv);
        if !skipped && !recorded && seen.insert(key_of(cell)) {
            last[index] = true;
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{self, Filter};
    use crate::{CacheState, ScenarioId};

    fn planned() -> Vec<Planned> {
        let uvs = [UvUnderTest::new(Build::Patched, "/nonexistent/uv")];
        let filter = Filter {
            sandboxes: Some(vec![Sandbox::None, Sandbox::RoHome, Sandbox::Landlock]),
            scenarios: Some(vec![ScenarioId::S1, ScenarioId::S2]),
            states: Some(vec![CacheState::Warm, CacheState::LockMissing]),
        };
        plan::cells(&uvs, &filter)
    }

    #[test]
    fn cells_of_one_key_are_spread_and_neighbouring_keys_start_in_other_sandboxes() {
        let cells = planned();
        let order = execution_order(&cells, 2);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..cells.len()).collect::<Vec<_>>(),
            "each cell once"
        );
        for pair in order.windows(2) {
            assert_ne!(
                key_of(&cells[pair[0]]),
                key_of(&cells[pair[1]]),
                "neighbours share a slot"
            );
        }
        let sandboxes: std::collections::BTreeSet<_> =
            order[..2].iter().map(|&i| cells[i].sandbox).collect();
        assert_eq!(sandboxes.len(), 2, "the first two cells run in one sandbox");
    }

    #[test]
    fn no_more_keys_are_open_at_once_than_the_window() {
        let cells = planned();
        let keys: std::collections::BTreeSet<_> = cells.iter().map(key_of).collect();
        assert_eq!(keys.len(), 4, "the plan has more keys than the window");
        for window in [1, 2, 3] {
            let order = execution_order(&cells, window);
            // A key is open from its first cell in `order` to its last.
            let span = |key: &String| {
                let at: Vec<usize> = (0..order.len())
                    .filter(|&p| key_of(&cells[order[p]]) == *key)
                    .collect();
                (at[0], at[at.len() - 1])
            };
            for position in 0..order.len() {
                let open = keys
                    .iter()
                    .map(span)
                    .filter(|&(first, last)| first <= position && position <= last)
                    .count();
                assert!(
                    open <= window,
                    "{open} keys open at {position}, window {window}"
                );
            }
        }
    }

    #[test]
    fn only_the_last_cell_of_a_key_releases_its_slot() {
        let cells = planned();
        let order = execution_order(&cells, 2);
        let last = last_of_key(&cells, &order, None);
        assert_eq!(last.iter().filter(|&&l| l).count(), 4, "one per key");
        for (position, &index) in order.iter().enumerate() {
            let later = order[position + 1..]
                .iter()
                .any(|&i| key_of(&cells[i]) == key_of(&cells[index]));
            assert_eq!(last[index], !later, "cell {}", cells[index].name());
        }
        // The reference build's writable cells make the write-set records, apart from the
        // slots: the last of their keys to claim the slot is a cell in another sandbox.
        let last = last_of_key(&cells, &order, Some(&cells[0].uv));
        assert_eq!(last.iter().filter(|&&l| l).count(), 4, "one per key");
        assert!(
            (0..cells.len()).all(|i| !(last[i] && cells[i].sandbox == Sandbox::None)),
            "a record releases a slot"
        );
    }
}
