//! Tests against a real uv: the official release binary named by `$UVFIX_UV`
//! (`ci/fetch-official-uv.sh 0.12.5` prints one). Without it, or without the sandbox a test
//! needs, the test is skipped (ignored, with its reason), never passed.

use std::path::Path;
use std::process::{Command, ExitCode};

use assert_fs::prelude::*;
use predicates::prelude::*;
use uvfix_sandbox::Sandbox;
use uvfix_sandbox::trial::{self, Case, Failed, case, first_skip};
use uvfix_scenario::cell::{CellOptions, UvUnderTest, run_cell_with};
use uvfix_scenario::expect::Outcome;
use uvfix_scenario::wheel::{build_fixture_wheels, fixture};
use uvfix_scenario::{Build, CacheState, ScenarioId, run_cell};

fn main() -> ExitCode {
    // `Err`: $UVFIX_UV names something broken, which fails the tests that need it.
    let official = UvUnderTest::official();
    let no_official = match &official {
        Ok(None) => Some(format!(
            "${} is not set (ci/fetch-official-uv.sh 0.12.5 prints a path for it)",
            uvfix_scenario::cell::OFFICIAL_UV_ENV
        )),
        _ => None,
    };
    let no_python = uvfix_scenario::python::find_python()
        .err()
        .map(|e| e.to_string());
    let uv = move || -> Result<UvUnderTest, Failed> {
        match UvUnderTest::official() {
            Ok(Some(uv)) => Ok(uv),
            Ok(None) => Err("no official uv".into()),
            Err(why) => Err(why.into()),
        }
    };
    let mut cases = vec![
        case(
            "fixture_wheels_install_with_uv",
            first_skip([no_official.clone(), no_python]),
            move || fixture_wheels_install_with_uv(&uv()?),
        ),
        case(
            "run_cell_unsandboxed_cache_absent",
            no_official.clone(),
            move || run_cell_unsandboxed_cache_absent(&uv()?),
        ),
        case(
            "unavailable_sandbox_and_meaningless_state_skip",
            None,
            unavailable_sandbox_and_meaningless_state_skip,
        ),
        case(
            "missing_uv_is_a_fail_not_a_panic",
            None,
            missing_uv_is_a_fail_not_a_panic,
        ),
        case(
            "uv_that_cannot_start_in_the_sandbox_is_a_fail_not_an_xfail",
            Sandbox::Landlock.skip_reason(),
            uv_that_cannot_start_in_the_sandbox_is_a_fail_not_an_xfail,
        ),
    ];
    for scenario in [ScenarioId::S1, ScenarioId::S2] {
        cases.push(case(
            format!("run_cell_unsandboxed_warm/{scenario}"),
            no_official.clone(),
            move || run_cell_unsandboxed_warm(&uv()?, scenario),
        ));
    }
    cases.extend(denying_cases(&no_official, uv));
    trial::run(cases)
}

/// The official uv in real denying sandboxes: the canary proves the denial, and the cell is the
/// expected failure, with the cache untouched. (Once the patch lands, the same cell with the
/// patched build is a pass: see the workspace's matrix tests.)
fn denying_cases(
    no_official: &Option<String>,
    uv: impl Fn() -> Result<UvUnderTest, Failed> + Copy + Send + 'static,
) -> Vec<Case> {
    [
        (Sandbox::RoHome, CacheState::Warm),
        (Sandbox::Landlock, CacheState::Warm),
        (Sandbox::ForeignOwner, CacheState::Warm),
        (Sandbox::ForeignOwner, CacheState::CacheAbsent),
        (Sandbox::RoHome, CacheState::CacheAbsent),
    ]
    .into_iter()
    .map(|(sandbox, state)| {
        case(
            format!("official_uv_fails_in_denying_sandboxes/{sandbox}/{state}"),
            first_skip([no_official.clone(), sandbox.skip_reason()]),
            move || official_uv_fails_in(&uv()?, sandbox, state),
        )
    })
    .collect()
}

/// The fixture wheels install with a real installer and do what they say.
fn fixture_wheels_install_with_uv(uv: &UvUnderTest) -> Result<(), Failed> {
    let python = uvfix_scenario::python::find_python()?;
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
    Ok(())
}

/// Unsandboxed baseline with the official uv: the warm cells pass.
fn run_cell_unsandboxed_warm(uv: &UvUnderTest, scenario: ScenarioId) -> Result<(), Failed> {
    // `none` needs no helper binary.
    let result = run_cell(
        uv,
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
    Ok(())
}

/// Absent cache unsandboxed: uv just creates it. The diff is recorded, not judged.
fn run_cell_unsandboxed_cache_absent(uv: &UvUnderTest) -> Result<(), Failed> {
    let opts = CellOptions::default();
    let result = run_cell_with(
        uv,
        Sandbox::None,
        ScenarioId::S1,
        CacheState::CacheAbsent,
        Path::new("/nonexistent"),
        &opts,
    );
    assert_eq!(result.outcome, Outcome::Pass, "{result:#?}");
    assert!(result.cache_diff.unwrap().root_created);
    Ok(())
}

/// Skips never need uv: they are decided before anything runs.
fn unavailable_sandbox_and_meaningless_state_skip() -> Result<(), Failed> {
    let uv = UvUnderTest::new(Build::Pristine, "/nonexistent/uv");
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
    if uvfix_sandbox::is_root() {
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
    Ok(())
}

/// A broken uv is the fixture's failure, reported in words.
fn missing_uv_is_a_fail_not_a_panic() -> Result<(), Failed> {
    let uv = UvUnderTest::new(Build::Patched, "/nonexistent/uv");
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
    Ok(())
}

/// A "uv" that works unsandboxed (the warm step succeeds) and cannot do anything, not even
/// `--version`, where the cell's cache is not writable: a pristine build's failure there
/// must not count as the expected failure, since nothing of uv ran.
fn uv_that_cannot_start_in_the_sandbox_is_a_fail_not_an_xfail() -> Result<(), Failed> {
    Sandbox::Landlock.usable()?;
    let dir = assert_fs::TempDir::new()?;
    // Only in a cell (`$HOME` is the cell's `home/`) does it probe the cache, by writing.
    let script = "#!/bin/sh\n\
        cache=\"$HOME/.cache/uv\"\n\
        if [ \"${HOME##*/}\" = home ]; then\n\
          mkdir -p \"$cache\" 2>/dev/null\n\
          if ! touch \"$cache/.probe\" 2>/dev/null; then echo 'cannot start' >&2; exit 126; fi\n\
          rm -f \"$cache/.probe\"\n\
        fi\n\
        [ \"$1\" = --version ] && echo 'uv 0.0.0'\n\
        [ \"$1\" = run ] && echo 'hello world'\n\
        exit 0\n";
    for name in ["uv", "uvx"] {
        let file = dir.child(name);
        file.write_str(script)?;
        let mut perms = fs_err::metadata(file.path())?.permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        fs_err::set_permissions(file.path(), perms)?;
    }
    let uv = UvUnderTest::new(Build::Pristine, dir.child("uv").path());
    let helper = uvfix_pipeline::builder::helper_for_tests()?;
    let r = run_cell(
        &uv,
        Sandbox::Landlock,
        ScenarioId::S1,
        CacheState::Warm,
        &helper,
    );
    assert!(
        matches!(&r.outcome, Outcome::Fail(reason) if reason.contains("does not run inside")),
        "{r:#?}"
    );
    assert_eq!(r.canary, Some(uvfix_sandbox::Denial::Eacces));
    Ok(())
}

fn official_uv_fails_in(
    uv: &UvUnderTest,
    sandbox: Sandbox,
    state: CacheState,
) -> Result<(), Failed> {
    sandbox.usable()?;
    let helper = uvfix_pipeline::builder::helper_for_tests()?;
    let r = run_cell(uv, sandbox, ScenarioId::S2, state, &helper);
    assert_eq!(r.outcome, Outcome::ExpectedFail, "{r:#?}");
    let denial = sandbox.denial().ok_or("a denying sandbox")?;
    assert_eq!(r.canary, Some(denial));
    assert_eq!(r.exit_code, Some(2));
    let os_error = format!("os error {}", denial.errno() as i32);
    assert!(r.stderr.contains(&os_error), "{}", r.stderr);
    // Absent stays absent: nothing was created in the read-only home.
    let diff = r.cache_diff.ok_or("no cache diff")?;
    assert!(diff.is_empty(), "{diff}");
    Ok(())
}
