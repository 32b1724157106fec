//! The sandbox matrix as tests: one test per cell, named `uv/sandbox/scenario/state`.
//!
//! Each cell warms a fresh cache with the uv under test, damages it as the state says,
//! proves the sandbox denies a write into it (canary), runs the scenario inside the sandbox
//! and compares the outcome with the expectation table in `uvfix_scenario::expect`. A cell
//! fails if patched uv does not pass where it must, if pristine uv unexpectedly passes, if
//! the canary is not denied, or if the cache changed.

use std::process::ExitCode;

use libtest_mimic::{Arguments, Failed, Trial};
use uvfix_pipeline::builder::{Variant, uv_for_tests};
use uvfix_scenario::Build;
use uvfix_scenario::cell::{UvUnderTest, run_cell};
use uvfix_scenario::expect::Outcome;
use uvfix_scenario::plan::{self, Filter, Planned};

const HELPER: &str = env!("CARGO_BIN_EXE_uvfix-sandbox");

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let uvs = match builds_under_test(args.list) {
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

/// Patched and pristine always; the official release too when one is installed
/// (`UVFIX_UV`, see `ci/fetch-official-uv.sh`). Listing must not build uv, so while listing
/// the paths are placeholders.
fn builds_under_test(listing: bool) -> Result<Vec<UvUnderTest>, String> {
    let mut uvs = Vec::new();
    for variant in Variant::ALL {
        let uv = if listing {
            std::path::PathBuf::from(variant.name())
        } else {
            uv_for_tests(variant).map_err(|err| err.to_string())?
        };
        let build: Build = variant.name().parse().map_err(|e| format!("{e}"))?;
        uvs.push(UvUnderTest::new(build, uv));
    }
    uvs.extend(UvUnderTest::official()?);
    Ok(uvs)
}

fn run(cell: &Planned) -> Result<(), Failed> {
    if let Some(why) = &cell.unavailable {
        return Err(format!(
            "sandbox `{}` is required here but unavailable: {why}",
            cell.sandbox
        )
        .into());
    }
    let result = run_cell(
        &cell.uv,
        cell.sandbox,
        cell.scenario,
        cell.state,
        HELPER.as_ref(),
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
