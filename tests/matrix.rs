//! The sandbox matrix as tests: one test per cell, named `uv/sandbox/scenario/state`.
//!
//! Each cell warms a fresh cache with the uv under test (once per uv, scenario and state when
//! the nextest setup script hands over `$UVFIX_CELL_STORE`; the other cells get a checked copy
//! of that warm tree), damages it as the state says,
//! proves the sandbox denies a write into it (canary), runs the scenario inside the sandbox
//! and compares the outcome with the expectation table in `uvfix_scenario::expect`. A cell
//! fails if patched uv does not pass where it must, if pristine uv unexpectedly passes, if
//! the canary is not denied, or if the cache changed.

use std::process::ExitCode;

use libtest_mimic::{Arguments, Failed};
use uvfix_sandbox::trial::{self, case, first_skip};
use uvfix_scenario::Build;
use uvfix_scenario::cell::{CellOptions, run_cell_with};
use uvfix_scenario::expect::Outcome;
use uvfix_scenario::plan::{self, Filter, Planned};

fn main() -> ExitCode {
    let listing = Arguments::from_args().list;
    let uvs = match uvfix::builds_under_test(listing) {
        Ok(uvs) => uvs,
        Err(err) => {
            eprintln!("matrix: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Every writable cell's writes are compared with pristine's cell of the same key, run
    // once per run through the store (uvfix_scenario::writeset).
    let opts = CellOptions {
        reference: uvs.iter().find(|uv| uv.build == Build::Pristine).cloned(),
        ..CellOptions::default()
    };
    let cases = plan::cells(&uvs, &Filter::default())
        .into_iter()
        .map(|cell| {
            let skip = first_skip([cell.sandbox.skip_reason(), cell.not_applicable.clone()]);
            let opts = opts.clone();
            case(cell.name(), skip, move || run(&cell, &opts))
        })
        .collect();
    trial::run(cases)
}

fn run(cell: &Planned, opts: &CellOptions) -> Result<(), Failed> {
    if let Some(why) = &cell.unavailable {
        return Err(format!(
            "sandbox `{}` is required here but unavailable: {why}",
            cell.sandbox
        )
        .into());
    }
    let helper = uvfix::sandbox_helper()?;
    let result = run_cell_with(
        &cell.uv,
        cell.sandbox,
        cell.scenario,
        cell.state,
        &helper,
        opts,
    );
    match &result.outcome {
        Outcome::Pass | Outcome::ExpectedFail => {
            println!(
                "{}: {} (expected {:?}: {}); canary {}; exit {:?}",
                cell.name(),
                result.outcome.word(),
                result.expected,
                result.expected_why,
                result.canary.map_or("n/a", |d| d.into()),
                result.exit_code
            );
            for line in [
                result.state_proof.as_ref().map(|p| format!("state proof: {p}")),
                result.write_check.as_ref().map(ToString::to_string),
                result.lock.as_ref().map(ToString::to_string),
            ]
            .into_iter()
            .flatten()
            {
                println!("  {line}");
            }
            Ok(())
        }
        Outcome::Fail(why) | Outcome::Skip(why) => Err(format!(
            "{}: {} — {why}\n  expected {:?} ({})\n  command: {}\n  exit: {:?}\n  canary: {:?}\n  state proof: {:?}\n  writes: {}\n  cache diff: {:?}\n  stdout:\n{}\n  stderr:\n{}",
            cell.name(),
            result.outcome.word(),
            result.expected,
            result.expected_why,
            result.command,
            result.exit_code,
            result.canary,
            result.state_proof,
            result
                .write_set
                .as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string),
            result.cache_diff,
            result.stdout,
            result.stderr
        )
        .into()),
    }
}
