//! Locks still mean something on a read-only cache: several sandboxed `uv run`s hold shared
//! locks (through read-only descriptors where the cache cannot be opened for writing) while
//! an unsandboxed `uv cache clean` waits for all of them, and nothing crashes.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rstest::rstest;
use uvfix_pipeline::builder::{Variant, uv_for_tests};
use uvfix_sandbox::{Availability, Invocation, Sandbox};
use uvfix_scenario::cell::{make_layout, stage_binary};
use uvfix_scenario::python::find_python;
use uvfix_scenario::scenario::{Ctx, uv_env};

const HELPER: &str = env!("CARGO_BIN_EXE_uvfix-sandbox");
const RUNS: usize = 3;
const HOLD: Duration = Duration::from_secs(3);

#[rstest]
#[case::landlock(Sandbox::Landlock)]
#[case::ro_home(Sandbox::RoHome)]
#[case::foreign_owner(Sandbox::ForeignOwner)]
// Not `immutable`: its attribute denies the unsandboxed `uv cache clean` as well.
fn cache_clean_waits_for_sandboxed_runs_holding_shared_locks(#[case] sandbox: Sandbox) {
    if let Availability::Unavailable(why) = sandbox.availability() {
        assert!(
            !uvfix_scenario::plan::required_sandboxes().contains(&sandbox),
            "{sandbox} is required here but unavailable: {why}"
        );
        eprintln!("SKIP {sandbox}: {why}");
        return;
    }
    let root = tempfile::Builder::new()
        .prefix("uvfix-concurrency-")
        .tempdir()
        .unwrap();
    let dirs = make_layout(root.path()).unwrap();
    let (uv, uvx) = (dirs.bin.join("uv"), dirs.bin.join("uvx"));
    let built = uv_for_tests(Variant::Patched).unwrap();
    stage_binary(&built, &uv).unwrap();
    stage_binary(&built.with_file_name("uvx"), &uvx).unwrap();
    let python = find_python().unwrap();
    let ctx = Ctx {
        layout: &dirs.layout,
        wheels: &dirs.wheels,
        uv: &uv,
        uvx: &uvx,
        python: &python,
    };
    let uv_run = |code: &str| Invocation {
        program: uv.clone(),
        args: ["run", "python3", "-c", code].map(OsString::from).to_vec(),
        env: uv_env(&ctx),
        cwd: dirs.layout.workspace.clone(),
    };

    // Warm the cache, then prove the sandbox denies writes into it.
    let warm = Sandbox::None
        .command(&dirs.layout, HELPER.as_ref(), &uv_run("pass"))
        .output()
        .unwrap();
    assert!(warm.status.success(), "warming failed: {warm:?}");
    sandbox.prepare(&dirs.layout).unwrap();
    sandbox
        .canary(&dirs.layout, HELPER.as_ref())
        .expect("the sandbox must deny cache writes");

    // Each sandboxed run prints once it is inside Python (so past uv's shared lock), then holds.
    let hold = format!(
        "import time; print('holding', flush=True); time.sleep({})",
        HOLD.as_secs()
    );
    let mut runs: Vec<Child> = (0..RUNS)
        .map(|_| {
            sandbox
                .command(&dirs.layout, HELPER.as_ref(), &uv_run(&hold))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in &mut runs {
        let mut line = String::new();
        BufReader::new(run.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "holding",
            "a sandboxed run did not start: {:?}",
            run.wait_with_output_lossy()
        );
    }

    let clean_started = Instant::now();
    let clean = Command::new(&uv)
        .args(["cache", "clean"])
        .env_clear()
        .envs(uv_env(&ctx))
        .current_dir(&dirs.layout.workspace)
        .output()
        .unwrap();
    let clean_took = clean_started.elapsed();

    for run in runs {
        let output = run.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "a sandboxed run failed while clean waited: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stderr = String::from_utf8_lossy(&clean.stderr);
    assert!(clean.status.success(), "uv cache clean failed: {stderr}");
    assert!(
        stderr.contains("waiting for other uv processes"),
        "uv cache clean did not wait for the shared locks: {stderr}"
    );
    assert!(
        clean_took >= HOLD / 2,
        "uv cache clean finished after {clean_took:?}, before the runs released their locks"
    );
    assert!(
        !dirs.layout.cache.join("interpreter-v4").exists(),
        "the cache was not cleaned"
    );
    sandbox.release(&dirs.layout).unwrap();
}

trait Lossy {
    fn wait_with_output_lossy(&mut self) -> String;
}

impl Lossy for Child {
    fn wait_with_output_lossy(&mut self) -> String {
        let _ = self.kill();
        let mut stderr = String::new();
        if let Some(err) = self.stderr.as_mut() {
            let _ = std::io::Read::read_to_string(err, &mut stderr);
        }
        stderr
    }
}
