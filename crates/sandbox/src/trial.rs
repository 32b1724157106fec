//! Tests whose skips are skips. The suites that need a sandbox or a binary this machine may
//! lack are generated with libtest-mimic, so such a test is *ignored* (nextest counts it as
//! skipped) instead of returning early and counting as passed.
//!
//! An ignored test still knows why: run it anyway (`--run-ignored all`) and it fails with its
//! reason; run the test binary directly and the reasons are printed first.

use std::process::ExitCode;

pub use libtest_mimic::Failed;
use libtest_mimic::{Arguments, Trial};

/// A test, and why it cannot run here (`None`: it runs).
pub struct Case {
    trial: Trial,
    skip: Option<(String, String)>,
}

/// A test that runs unless `skip` says why it cannot.
pub fn case(
    name: impl Into<String>,
    skip: Option<String>,
    test: impl FnOnce() -> Result<(), Failed> + Send + 'static,
) -> Case {
    let name = name.into();
    let skip = skip.map(|why| (name.clone(), why));
    let reason = skip.as_ref().map(|(_, why)| why.clone());
    let trial = Trial::test(name, move || match reason {
        // Asked to run although it cannot: say why instead of running half a test.
        Some(why) => Err(format!("skipped here: {why}").into()),
        None => test(),
    })
    .with_ignored_flag(skip.is_some());
    Case { trial, skip }
}

/// The first skip reason among `reasons`, for tests that need several things.
pub fn first_skip(reasons: impl IntoIterator<Item = Option<String>>) -> Option<String> {
    reasons.into_iter().flatten().next()
}

/// Run the cases as the test binary's `main`.
pub fn run(cases: Vec<Case>) -> ExitCode {
    let args = Arguments::from_args();
    // nextest lists, then runs one exact test per process: no reasons there (they would repeat
    // in every test's output). Run by hand, the binary names what it skips and why.
    if !args.list && !args.exact {
        for (name, why) in cases.iter().filter_map(|c| c.skip.as_ref()) {
            eprintln!("skipped {name}: {why}");
        }
    }
    let trials = cases.into_iter().map(|c| c.trial).collect();
    libtest_mimic::run(&args, trials).exit_code()
}
