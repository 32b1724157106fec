//! Locks still mean something on a read-only cache: several sandboxed `uv run`s hold shared
//! locks (through read-only descriptors where the cache cannot be opened for writing) while
//! an unsandboxed `uv cache clean` waits for all of them, and nothing crashes.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use uvfix_pipeline::builder::{Variant, uv_for_tests};
use uvfix_sandbox::trial::{self, Failed, case};
use uvfix_sandbox::{Invocation, Sandbox};
use uvfix_scenario::cell::{CellDirs, make_layout, stage_binary};
use uvfix_scenario::python::find_python;
use uvfix_scenario::scenario::{Ctx, uv_env};

const RUNS: usize = 3;
const HOLD: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    // Not `immutable`: its attribute denies the unsandboxed `uv cache clean` as well.
    let cases = [Sandbox::Landlock, Sandbox::RoHome, Sandbox::ForeignOwner]
        .into_iter()
        .map(|sandbox| {
            case(
                format!("cache_clean_waits_for_sandboxed_runs_holding_shared_locks/{sandbox}"),
                sandbox.skip_reason(),
                move || cache_clean_waits_for_sandboxed_runs_holding_shared_locks(sandbox),
            )
        })
        .collect();
    trial::run(cases)
}

/// A cell's layout with the patched uv staged in it and a warm cache.
struct Warm {
    dirs: CellDirs,
    uv: PathBuf,
    uvx: PathBuf,
    python: PathBuf,
    _root: TempDir,
}

impl Warm {
    fn new(helper: &Path) -> Result<Self, Failed> {
        let root = tempfile::Builder::new()
            .prefix("uvfix-concurrency-")
            .tempdir()?;
        let dirs = make_layout(root.path())?;
        let (uv, uvx) = (dirs.bin.join("uv"), dirs.bin.join("uvx"));
        let built = uv_for_tests(Variant::Patched)?;
        stage_binary(&built, &uv)?;
        stage_binary(&built.with_file_name("uvx"), &uvx)?;
        let warm = Self {
            python: find_python()?,
            dirs,
            uv,
            uvx,
            _root: root,
        };
        let out = Sandbox::None
            .command(&warm.dirs.layout, helper, &warm.uv_run("pass"))
            .output()?;
        assert!(out.status.success(), "warming failed: {out:?}");
        Ok(warm)
    }

    fn env(&self) -> Vec<(OsString, OsString)> {
        uv_env(&Ctx {
            layout: &self.dirs.layout,
            wheels: &self.dirs.wheels,
            uv: &self.uv,
            uvx: &self.uvx,
            python: &self.python,
        })
    }

    fn uv_run(&self, code: &str) -> Invocation {
        Invocation {
            program: self.uv.clone(),
            args: ["run", "python3", "-c", code].map(OsString::from).to_vec(),
            env: self.env(),
            cwd: self.dirs.layout.workspace.clone(),
        }
    }
}

fn cache_clean_waits_for_sandboxed_runs_holding_shared_locks(
    sandbox: Sandbox,
) -> Result<(), Failed> {
    sandbox.usable()?;
    let helper = uvfix::sandbox_helper()?;
    let cell = Warm::new(&helper)?;
    let dirs = &cell.dirs;
    // Prove the sandbox denies writes into the warm cache.
    sandbox.prepare(&dirs.layout)?;
    sandbox.canary(&dirs.layout, &helper)?;

    // Each sandboxed run prints once it is inside Python (so past uv's shared lock), then holds.
    let hold = format!(
        "import time; print('holding', flush=True); time.sleep({})",
        HOLD.as_secs()
    );
    let mut runs: Vec<Child> = (0..RUNS)
        .map(|_| {
            sandbox
                .command(&dirs.layout, &helper, &cell.uv_run(&hold))
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
    let clean = Command::new(&cell.uv)
        .args(["cache", "clean"])
        .env_clear()
        .envs(cell.env())
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
    sandbox.release(&dirs.layout)?;
    Ok(())
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
