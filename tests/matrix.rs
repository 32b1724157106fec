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

use libtest_mimic::{Arguments, Failed, Trial};
use uvfix_scenario::cell::run_cell;
use uvfix_scenario::expect::Outcome;
use uvfix_scenario::plan::{self, Filter, Planned};

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let uvs = match uvfix::builds_under_test(args.list) {
        Ok(uvs) => uvs,
        Err(err) => {
            eprintln!("matrix: {err}");
            return ExitCode::FAILURE;
        }
    };
    let trials = plan::cells(&uvs, &Filter::default())
        .into_iter()
        .map(|cell| {
            let skip = cell.sandbox.skip_reason().is_some();
            Trial::test(cell.name(), move || run(&cell)).with_ignored_flag(skip)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

fn run(cell: &Planned) -> Result<(), Failed> {
    if let Some(why) = &cell.unavailable {
        return Err(format!(
            "sandbox `{}` is required here but unavailable: {why}",
            cell.sandbox
        )
        .into());
    }
    let helper = uvfix::sandbox_helper()?;
    let result = run_cell(&cell.uv, cell.sandbox, cell.scenario, cell.state, &helper);
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
            Ok(())
        }
        Outcome::Fail(why) | Outcome::Skip(why) => Err(format!(
            "{}: {} — {why}\n  expected {:?} ({})\n  command: {}\n  exit: {:?}\n  canary: {:?}\n  cache diff: {:?}\n  stdout:\n{}\n  stderr:\n{}",
            cell.name(),
            result.outcome.word(),
            result.expected,
            result.expected_why,
            result.command,
            result.exit_code,
            result.canary,
            result.cache_diff,
            result.stdout,
            result.stderr
        )
        .into()),
    }
}
