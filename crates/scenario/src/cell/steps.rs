//! The steps of one cell, in order, over one context: warm → damage → prove denial and run
//! sandboxed (one sandbox start: the canary execs the scenario's first command only once its
//! own write was denied) → (if uv stopped: prove uv starts in the sandbox) → judge. Each step
//! records what it saw in the cell's [`CellResult`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};
use uvfix_sandbox::{Layout, Sandbox};

use super::layout::CellDirs;
use super::{CellOptions, CellResult, millis, truncate};
use crate::digest::TreeDigest;
use crate::expect::{self, Observed, Outcome};
use crate::scenario::{Arg, Ctx, Program, Scenario, Step, WarmStep};
use crate::state::CacheState;

/// Everything one cell works with, laid out in its temp root.
pub(super) struct Cell<'a> {
    pub sandbox: Sandbox,
    pub state: CacheState,
    pub spec: Scenario,
    pub helper: &'a Path,
    pub opts: &'a CellOptions,
    pub dirs: CellDirs,
    pub uv: PathBuf,
    pub uvx: PathBuf,
    pub python: PathBuf,
    pub result: &'a mut CellResult,
}

impl Cell<'_> {
    fn layout(&self) -> &Layout {
        &self.dirs.layout
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            layout: &self.dirs.layout,
            wheels: &self.dirs.wheels,
            uv: &self.uv,
            uvx: &self.uvx,
            python: &self.python,
        }
    }

    /// Write the workspace and warm the cache: what every cell of a (uv, scenario, state)
    /// shares, done once per key when the cell has a slot (see `super::slot`).
    pub fn warm_up(&mut self) -> anyhow::Result<()> {
        let start = Instant::now();
        self.spec
            .setup_workspace(&self.layout().workspace, &self.dirs.wheels, &self.python)
            .context("writing the workspace")?;
        self.warm()?;
        self.result.timing.warm_ms = Some(millis(start.elapsed()));
        Ok(())
    }

    /// The rest of the cell on a warm tree: `Ok` with the verdict, `Err` for trouble in the
    /// fixture itself.
    pub fn run(&mut self) -> anyhow::Result<Outcome> {
        self.damage()?;
        let observed = match self.run_sandboxed()? {
            Sandboxed::Ran(observed) => observed,
            Sandboxed::NotProven(verdict) => return Ok(verdict),
        };
        // A scenario that ran to its end has shown that uv starts inside the sandbox; one
        // that stopped must show it before its failure can count as uv's. Asked only then, it
        // saves every passing cell one sandbox start (a second or more for srt and docker).
        if observed.exit_code != Some(0)
            && let Some(verdict) = self.prove_uv_starts()?
        {
            return Ok(verdict);
        }
        Ok(expect::judge(self.result.expected, &observed))
    }

    /// Warm the cache unsandboxed, with a writable cache and the same uv, as a user would.
    fn warm(&self) -> anyhow::Result<()> {
        for warm in &self.spec.warm {
            match warm {
                WarmStep::Run(step) => {
                    let inv = step.invocation(&self.ctx());
                    let mut cmd = Command::new(&inv.program);
                    cmd.args(&inv.args)
                        .env_clear()
                        .envs(inv.env.iter().map(|(k, v)| (k, v)))
                        .current_dir(&inv.cwd);
                    let out = uvfix_process::run(&mut cmd, Some(self.opts.timeout))?;
                    if !out.success() {
                        bail!(
                            "warm step `{}` failed ({}): {}",
                            step.display(),
                            out.status_text(),
                            expect::first_error_line(&out.stderr_text())
                        );
                    }
                }
                WarmStep::RemoveVenv => {
                    let venv = self.layout().workspace.join(".venv");
                    if venv.exists() {
                        fs_err::remove_dir_all(&venv)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Damage the cache as the state says, then let the sandbox prepare the host.
    fn damage(&self) -> anyhow::Result<()> {
        let layout = self.layout();
        self.state.apply(&layout.cache)?;
        self.sandbox.prepare(layout)?;
        if self.state == CacheState::CacheAbsent && layout.cache.exists() {
            // foreign-owner's prepare creates an empty cache so that its canary has a target;
            // this state is about no cache at all, so take it away again (only if still empty).
            fs_err::remove_dir(&layout.cache).context("removing the cache prepare() created")?;
        }
        Ok(())
    }

    /// `uv --version` must run inside the sandbox (exec permission, libraries, mounts), so
    /// that a failure is uv's and not the fixture's: without it, a uv that cannot even start
    /// would "pass" as an expected failure vacuously. `Some(verdict)` is the cell's FAIL.
    fn prove_uv_starts(&mut self) -> anyhow::Result<Option<Outcome>> {
        let sandbox = self.sandbox;
        let version = Step {
            program: Program::Uv,
            args: vec![Arg::Lit("--version".into())],
        };
        let mut command =
            sandbox.command(self.layout(), self.helper, &version.invocation(&self.ctx()));
        let out = uvfix_process::run(&mut command, Some(self.opts.timeout))?;
        if out.exit_code != Some(0) || !out.stdout_text().starts_with("uv ") {
            return Ok(Some(Outcome::Fail(format!(
                "`uv --version` does not run inside {sandbox} ({}): {}",
                out.status_text(),
                expect::first_error_line(&out.stderr_text())
            ))));
        }
        Ok(None)
    }

    /// Run the scenario inside the sandbox with the cache digested before and after; stop at
    /// the first step that fails. In a denying sandbox the first step runs behind the canary:
    /// its write must be denied with the sandbox's errno, or a passing uv would prove nothing;
    /// if it is not, uv does not run and the cell is a FAIL.
    fn run_sandboxed(&mut self) -> anyhow::Result<Sandboxed> {
        // The canary writes into the cache; with the cache absent it writes into its nearest
        // existing ancestor (`~/.cache`), which is where uv would have to create it.
        let canary = self
            .sandbox
            .denial()
            .map(|_| nearest_existing(&self.layout().cache));
        let before = TreeDigest::of(&self.layout().cache)?;
        let (mut stdout, mut stderr, mut last_stdout) =
            (String::new(), String::new(), String::new());
        let mut last = uvfix_process::Output::default();
        let start = Instant::now();
        for (index, step) in self.spec.sandboxed.iter().enumerate() {
            let inv = step.invocation(&self.ctx());
            let canary = canary.as_deref().filter(|_| index == 0);
            let (helper, inv) = match canary {
                Some(dir) => match self.sandbox.behind_canary(self.helper, dir, &inv) {
                    Ok(wrapped) => wrapped,
                    Err(e) => return Ok(Sandboxed::not_proven(&e)),
                },
                None => (self.helper.to_path_buf(), inv),
            };
            let mut command = self.sandbox.command(self.layout(), &helper, &inv);
            last = uvfix_process::run(&mut command, Some(self.opts.timeout))?;
            if let Some(dir) = canary {
                match self.sandbox.canary_verdict(self.layout(), dir, &mut last) {
                    Ok(seen) => self.result.canary = Some(seen),
                    Err(e) => return Ok(Sandboxed::not_proven(&e)),
                }
            }
            last_stdout = last.stdout_text();
            if self.spec.sandboxed.len() > 1 {
                stderr.push_str(&format!("$ {}\n", step.display()));
            }
            stdout.push_str(&last_stdout);
            stderr.push_str(&last.stderr_text());
            if let Some(sig) = last.signal {
                stderr.push_str(&format!("[killed by signal {sig}]\n"));
            }
            if !last.success() {
                break;
            }
        }
        self.result.timing.uv_ms = millis(start.elapsed());
        let diff = before.diff(&TreeDigest::of(&self.layout().cache)?);
        let observed = Observed {
            exit_code: last.exit_code,
            timed_out: last.timed_out,
            stdout_ok: last.exit_code == Some(0) && self.spec.stdout_ok(&last_stdout),
            stderr: stderr.clone(),
            // Only a denying sandbox promises an unchanged cache.
            cache_change: (self.sandbox != Sandbox::None && !diff.is_empty())
                .then(|| diff.summary()),
        };
        self.result.exit_code = last.exit_code;
        self.result.stdout = truncate(&stdout, self.opts.output_limit);
        self.result.stderr = truncate(&stderr, self.opts.output_limit);
        self.result.cache_diff = Some(diff);
        Ok(Sandboxed::Ran(observed))
    }
}

/// What the sandboxed run came to.
enum Sandboxed {
    /// The canary was denied as the sandbox promises (or there is none), and the scenario ran.
    Ran(Observed),
    /// The sandbox did not prove its denial: the cell's FAIL, uv not run.
    NotProven(Outcome),
}

impl Sandboxed {
    fn not_proven(canary: &uvfix_sandbox::SandboxError) -> Self {
        Self::NotProven(Outcome::Fail(format!("canary: {canary}")))
    }
}

fn nearest_existing(path: &Path) -> PathBuf {
    path.ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_existing_ancestor() {
        let dir = assert_fs::TempDir::new().unwrap();
        assert_eq!(nearest_existing(&dir.path().join("a/b/c")), dir.path());
    }
}
