//! Tests against a real uv: the official 0.12.5 binary (`$UVFIX_UV` or
//! `/tmp/uvwheel/x/uv-0.12.5.data/scripts/uv`). Without one they print why and pass as skipped.

use std::path::Path;
use std::process::Command;

use assert_fs::prelude::*;
use predicates::prelude::*;
use rstest::rstest;
use uvfix_sandbox::Sandbox;
use uvfix_scenario::cell::{CellOptions, UvUnderTest, run_cell_with};
use uvfix_scenario::expect::Outcome;
use uvfix_scenario::wheel::{build_fixture_wheels, fixture};
use uvfix_scenario::{CacheState, ScenarioId, run_cell};

fn official() -> Option<UvUnderTest> {
    match UvUnderTest::official() {
        Ok(uv) => Some(uv),
        Err(reason) => {
            eprintln!("SKIP: {reason}");
            None
        }
    }
}

fn python() -> Option<std::path::PathBuf> {
    match uvfix_scenario::python::find_python() {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("SKIP: {e}");
            None
        }
    }
}

/// The fixture wheels install with a real installer and do what they say.
#[test]
fn fixture_wheels_install_with_uv() {
    let (Some(uv), Some(python)) = (official(), python()) else {
        return;
    };
    let dir = assert_fs::TempDir::new().unwrap();
    let wheels = dir.child("wheels");
    build_fixture_wheels(wheels.path()).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(&uv.uv)
            .args(args)
            .env_clear()
            .env("HOME", dir.path())
            .env("UV_CACHE_DIR", dir.path().join("cache"))
            .env("UV_PYTHON_DOWNLOADS", "never")
            .env("UV_NO_PROGRESS", "1")
            .env("PATH", "/usr/bin:/bin")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "uv {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["venv", "--python", python.to_str().unwrap(), "venv"]);
    run(&[
        "pip",
        "install",
        "--python",
        "venv",
        "--offline",
        "--no-index",
        "--find-links",
        wheels.path().to_str().unwrap(),
        fixture::EXTRA,
        fixture::TOOL,
    ]);
    let out = Command::new(dir.path().join("venv/bin/python"))
        .args([
            "-c",
            "import uvfix_dep, uvfix_extra; print(uvfix_dep.VALUE); print(uvfix_extra.VALUE)",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        predicate::str::contains(fixture::DEP_VALUE).eval(&stdout),
        "{stdout}"
    );
    assert!(predicate::str::contains(fixture::EXTRA_VALUE).eval(&stdout));
    let tool = Command::new(dir.path().join("venv/bin/uvfix-tool"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&tool.stdout).trim(),
        fixture::TOOL_OUTPUT
    );
}

/// Unsandboxed baseline with the official uv: the warm cells pass.
#[rstest]
#[case(ScenarioId::S1)]
#[case(ScenarioId::S2)]
fn run_cell_unsandboxed_warm(#[case] scenario: ScenarioId) {
    let Some(uv) = official() else { return };
    // `none` needs no helper binary.
    let result = run_cell(
        &uv,
        Sandbox::None,
        scenario,
        CacheState::Warm,
        Path::new("/nonexistent"),
    );
    assert_eq!(result.outcome, Outcome::Pass, "{result:#?}");
    assert_eq!(result.exit_code, Some(0));
    assert!(result.stdout.contains(&scenario.spec().stdout_line));
    assert!(result.canary.is_none());
    assert!(result.cache_diff.is_some());
}

/// Absent cache unsandboxed: uv just creates it. The diff is recorded, not judged.
#[test]
fn run_cell_unsandboxed_cache_absent() {
    let Some(uv) = official() else { return };
    let opts = CellOptions::default();
    let result = run_cell_with(
        &uv,
        Sandbox::None,
        ScenarioId::S1,
        CacheState::CacheAbsent,
        Path::new("/nonexistent"),
        &opts,
    );
    assert_eq!(result.outcome, Outcome::Pass, "{result:#?}");
    assert!(result.cache_diff.unwrap().root_created);
}

/// Skips never need uv: they are decided before anything runs.
#[test]
fn unavailable_sandbox_and_meaningless_state_skip() {
    let uv = UvUnderTest::new("pristine", "/nonexistent/uv");
    let helper = Path::new("/nonexistent");
    if !cfg!(target_os = "macos") {
        let r = run_cell(
            &uv,
            Sandbox::Seatbelt,
            ScenarioId::S1,
            CacheState::Warm,
            helper,
        );
        assert!(matches!(r.outcome, Outcome::Skip(_)), "{r:#?}");
    }
    if rustix::process::geteuid().is_root() {
        let r = run_cell(
            &uv,
            Sandbox::None,
            ScenarioId::S1,
            CacheState::LockMode000,
            helper,
        );
        assert!(
            matches!(&r.outcome, Outcome::Skip(reason) if reason.contains("non-root")),
            "{r:#?}"
        );
    }
}

/// A broken uv is the fixture's failure, reported in words.
#[test]
fn missing_uv_is_a_fail_not_a_panic() {
    let uv = UvUnderTest::new("patched", "/nonexistent/uv");
    let r = run_cell(
        &uv,
        Sandbox::None,
        ScenarioId::S1,
        CacheState::Warm,
        Path::new("/x"),
    );
    assert!(
        matches!(&r.outcome, Outcome::Fail(reason) if reason.contains("/nonexistent/uv")),
        "{r:#?}"
    );
}

/// The official uv in real denying sandboxes: the canary proves the denial, and the cell is the
/// expected failure, with the cache untouched. (Once the patch lands, the same cell with the
/// patched build is a pass: see the workspace's matrix tests.)
#[rstest]
#[case(Sandbox::RoHome, "EROFS", CacheState::Warm)]
#[case(Sandbox::Landlock, "EACCES", CacheState::Warm)]
#[case(Sandbox::ForeignOwner, "EACCES", CacheState::Warm)]
#[case(Sandbox::ForeignOwner, "EACCES", CacheState::CacheAbsent)]
#[case(Sandbox::RoHome, "EROFS", CacheState::CacheAbsent)]
fn official_uv_fails_in_denying_sandboxes(
    #[case] sandbox: Sandbox,
    #[case] errno: &str,
    #[case] state: CacheState,
) {
    let Some(uv) = official() else { return };
    if let uvfix_sandbox::Availability::Unavailable(reason) = sandbox.availability() {
        eprintln!("SKIP: {sandbox}: {reason}");
        return;
    }
    let helper = Path::new(env!("CARGO_BIN_EXE_uvfix-scenario-helper"));
    let r = run_cell(&uv, sandbox, ScenarioId::S2, state, helper);
    assert_eq!(r.outcome, Outcome::ExpectedFail, "{r:#?}");
    assert_eq!(r.canary.as_deref(), Some(errno));
    assert_eq!(r.exit_code, Some(2));
    assert!(
        r.stderr.contains(&format!(
            "os error {}",
            if errno == "EROFS" { 30 } else { 13 }
        )),
        "{}",
        r.stderr
    );
    // Absent stays absent: nothing was created in the read-only home.
    let diff = r.cache_diff.unwrap();
    assert!(diff.is_empty(), "{diff}");
}
