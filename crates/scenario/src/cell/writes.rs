//! The reference of the write-set check: what pristine writes into a writable cache in the
//! same scenario and state, obtained once per run.
//!
//! Every cell of a build other than the reference (pristine) in a writable cache (`none`)
//! must write what pristine writes there ([`crate::writeset`]). Pristine's own cell of that
//! key is part of the matrix anyway, so the reference is that cell's result, run once per
//! run: whichever of the two cells comes first runs pristine's cell and records its result
//! in the run's store (`<store>/references/<key>.json`, under a file lock); the other takes
//! the record. So pristine never runs twice, in any order, in one process (`cargo xtask
//! matrix`, threads) or in many (nextest, a process per cell, sharing `$UVFIX_CELL_STORE`).
//! Without a store (`--warm-per-cell`) there is nothing to share and the reference cell runs
//! again, inside the cell that needs it. Where a run removes each slot after its key's last
//! cell (`crate::pool`), the record is made in a root of its own rather than in pristine's
//! slot ([`CellOptions::reference_apart`]), so that no slot outlives the cells that use it.
//!
//! The reference is obtained before the cell claims its own slot, and pristine's cells never
//! wait for another build's, so no two cells wait for each other.
//!
//! Where pristine does not run to success in the cell's state (a `.git` directory, a foreign
//! marker, a foreign bucket it cannot write an environment into), the reference is pristine's
//! warm-state cell of the scenario, without the paths the state takes away: "writes as
//! pristine would where pristine can".

use std::path::Path;

use anyhow::Context as _;
use uvfix_sandbox::Sandbox;

use super::{CellOptions, CellResult, UvUnderTest, run_cell_inner, slot};
use crate::scenario::ScenarioId;
use crate::state::CacheState;
use crate::writeset::{WriteCheck, WriteSet};

/// Pristine's writes to compare a cell with.
#[derive(Debug, Clone)]
pub(crate) struct Reference {
    pub set: WriteSet,
    /// `pristine/none/S2/warm`, for the verdict.
    pub name: String,
    /// The reference is the warm state's: leave out the state's foreign paths on both sides.
    pub warm_for: Option<CacheState>,
}

/// The reference of a cell of `uv` in `sandbox`, or why there is none; `None` when the cell
/// is not checked at all (a denying sandbox, or the reference build itself).
pub(crate) fn reference(
    uv: &UvUnderTest,
    sandbox: Sandbox,
    scenario: ScenarioId,
    state: CacheState,
    helper: &Path,
    opts: &CellOptions,
) -> Option<Result<Reference, String>> {
    if sandbox != Sandbox::None {
        return None;
    }
    let Some(pristine) = &opts.reference else {
        return Some(Err(
            "no pristine build in this run to compare with (give one with --uv pristine=PATH)"
                .into(),
        ));
    };
    if pristine == uv {
        return None;
    }
    let same = match recorded(pristine, scenario, state, helper, opts) {
        Ok(result) => result,
        Err(e) => return Some(Err(format!("running pristine's cell: {e:#}"))),
    };
    if let Some(set) = succeeded(&same) {
        return Some(Ok(Reference {
            set,
            name: name(scenario, state),
            warm_for: None,
        }));
    }
    let warm = match recorded(pristine, scenario, CacheState::Warm, helper, opts) {
        Ok(result) => result,
        Err(e) => return Some(Err(format!("running pristine's warm cell: {e:#}"))),
    };
    Some(match succeeded(&warm) {
        Some(set) => Ok(Reference {
            set,
            name: name(scenario, CacheState::Warm),
            warm_for: Some(state),
        }),
        None => Err(format!(
            "pristine runs to success neither in {state} ({}) nor warm",
            crate::expect::first_error_line(&same.stderr)
        )),
    })
}

fn name(scenario: ScenarioId, state: CacheState) -> String {
    format!("pristine/none/{scenario}/{state}")
}

/// The writes of a cell whose scenario ran to its end with the expected output.
fn succeeded(result: &CellResult) -> Option<WriteSet> {
    let ran = result.exit_code == Some(0) && result.scenario.spec().stdout_ok(&result.stdout);
    result.write_set.clone().filter(|_| ran)
}

/// The reference build's own cell of a writable cache: the run's record, made by whichever
/// cell needed it first.
pub(crate) fn recorded(
    pristine: &UvUnderTest,
    scenario: ScenarioId,
    state: CacheState,
    helper: &Path,
    opts: &CellOptions,
) -> anyhow::Result<CellResult> {
    let apart;
    let run_opts = match &opts.store {
        Some(store) if opts.reference_apart => {
            apart = CellOptions {
                store: None,
                temp_parent: Some(store.clone()),
                release_slot: false,
                ..opts.clone()
            };
            &apart
        }
        _ => opts,
    };
    let run = || {
        run_cell_inner(
            pristine,
            Sandbox::None,
            scenario,
            state,
            helper,
            run_opts,
            None,
        )
    };
    let Some(store) = &opts.store else {
        return Ok(run());
    };
    let dir = store.join("references");
    fs_err::create_dir_all(&dir)?;
    let key = slot::key(&[
        pristine.uv.as_os_str().as_encoded_bytes(),
        pristine.build.to_string().as_bytes(),
        scenario.name().as_bytes(),
        state.name().as_bytes(),
    ]);
    let lock = fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{key}.lock")))?;
    lock.file()
        .lock()
        .with_context(|| format!("locking the reference {key} in {}", dir.display()))?;
    let record = dir.join(format!("{key}.json"));
    if let Ok(text) = fs_err::read_to_string(&record) {
        return serde_json::from_str(&text)
            .with_context(|| format!("reading the reference {}", record.display()));
    }
    let result = run();
    let partial = record.with_extension("partial");
    fs_err::write(&partial, serde_json::to_string(&result)?)?;
    fs_err::rename(&partial, &record)?;
    Ok(result)
}

/// Compare a cell's writes with its reference; `foreign` (the paths the cell's state gave
/// away) is left out on both sides when the reference is the warm state's.
pub(crate) fn check(
    seen: &WriteSet,
    reference: &Result<Reference, String>,
    foreign: &[String],
) -> WriteCheck {
    let reference = match reference {
        Ok(reference) => reference,
        Err(why) => return WriteCheck::NotChecked { why: why.clone() },
    };
    let (seen, set, name) = match reference.warm_for {
        Some(_) => {
            let paths = foreign.to_vec();
            let name = if paths.is_empty() {
                reference.name.clone()
            } else {
                format!("{} (without {})", reference.name, paths.join(", "))
            };
            (seen.without(&paths), reference.set.without(&paths), name)
        }
        None => (seen.clone(), reference.set.clone(), reference.name.clone()),
    };
    let diff = seen.compare(&set);
    if diff.is_empty() {
        WriteCheck::Same { reference: name }
    } else {
        WriteCheck::Differs {
            reference: name,
            diff,
        }
    }
}
