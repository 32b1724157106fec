//! The steps of one cell, in order, over one context: warm → damage → prove denial and run
//! sandboxed (one sandbox start: the canary execs the scenario's first command only once its
//! own write was denied) → (if uv stopped: prove uv starts in the sandbox) → judge. Each step
//! records what it saw in the cell's [`CellResult`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};
use uvfix_sandbox::owner::{self, Seen};
use uvfix_sandbox::{Errno, Invocation, Layout, Sandbox};

use super::layout::CellDirs;
use super::{CellOptions, CellResult, millis, truncate};
use crate::digest::TreeDigest;
use crate::expect::{self, Observed, Outcome};
use crate::scenario::{Arg, Ctx, Program, Scenario, ScenarioId, Step, WarmStep};
use crate::state::{CacheState, FOREIGN_OWNER, Uids};
use crate::writeset::{WriteCheck, WriteSet};

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
    /// Who uv runs as (see [`CacheState::uids`]).
    pub uids: Uids,
    /// Pristine's writes to compare this cell's with (`super::writes`); `None`: not checked.
    pub reference: Option<Result<super::writes::Reference, String>>,
    /// The paths the state gave to another user (known once the cache is damaged).
    pub foreign: Vec<String>,
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
    pub(super) fn warm_up(&mut self) -> anyhow::Result<()> {
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
    pub(super) fn run(&mut self) -> anyhow::Result<Outcome> {
        self.damage()?;
        if let Some(verdict) = self.prove_state()? {
            return Ok(verdict);
        }
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
        let mut verdict = expect::judge(self.result.expected, &observed);
        // A build that ran to success in a writable cache must have written what pristine
        // writes there: a build that moves writes out of the cache fails here, by name.
        if let (Some(seen), Some(reference)) = (&self.result.write_set, &self.reference)
            && observed.exit_code == Some(0)
            && observed.stdout_ok
        {
            let check = super::writes::check(seen, reference, &self.foreign);
            self.result.write_check = Some(check.clone());
            if let WriteCheck::Differs { .. } = check {
                verdict = also_fail(verdict, check.to_string());
            }
        }
        // Where uv goes ahead, S1's plain `uv run` races `uv cache clean` (`super::lock`).
        if self.spec.id == ScenarioId::S1 && observed.exit_code == Some(0) && observed.stdout_ok {
            let report = self.lock_probe()?;
            self.result.lock = Some(report.clone());
            if report.fail {
                verdict = also_fail(verdict, report.to_string());
            }
        }
        Ok(verdict)
    }

    /// Hold a `uv run` in this cell's sandbox, as this cell's uid, while the cache's owner
    /// runs `uv cache clean` outside it.
    fn lock_probe(&self) -> anyhow::Result<super::lock::LockReport> {
        if let Some(why) = super::lock::unavailable() {
            return Ok(super::lock::LockReport {
                held: false,
                clean: "was not run".into(),
                verdict: format!("not probed: {why}"),
                fail: false,
            });
        }
        let layout = self.layout();
        let release = layout.workspace.join(".uvfix-release");
        let step = |args: Vec<Arg>| Step {
            program: Program::Uv,
            args,
        };
        let held = step(
            ["run", "python3", "-c", &super::lock::hold_code(&release)]
                .map(|a| Arg::Lit(a.to_owned()))
                .to_vec(),
        );
        let clean = step(vec![Arg::Lit("cache".into()), Arg::Lit("clean".into())]);
        let report = super::lock::probe(super::lock::Probe {
            cache: &layout.cache,
            release: &release,
            held: self.command(self.helper, &held.invocation(&self.ctx())),
            clean: super::lock::clean_as_owner(&layout.cache, &clean.invocation(&self.ctx())),
            lockless_allowed: self
                .result
                .canary
                .map(|denial| format!("the cache refused writes (the canary saw {denial})")),
            timeout: self.opts.timeout,
        });
        let _ = fs_err::remove_file(&release);
        report
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
    fn damage(&mut self) -> anyhow::Result<()> {
        self.state.apply(&self.layout().cache)?;
        self.foreign = self.state.foreign_paths(&self.layout().cache)?;
        let layout = self.layout();
        if self.state.is_foreign() {
            self.hand_over()?;
        }
        self.sandbox.prepare(layout)?;
        if self.state == CacheState::CacheAbsent && layout.cache.exists() {
            // foreign-owner's prepare creates an empty cache so that its canary has a target;
            // this state is about no cache at all, so take it away again (only if still empty).
            fs_err::remove_dir(&layout.cache).context("removing the cache prepare() created")?;
        }
        Ok(())
    }

    /// A foreign state's owners: the piece goes to [`FOREIGN_OWNER`]; where the cell itself
    /// switches users (root in `none`), everything uv may write (the cache, the rest of the
    /// home, the workspace, TMPDIR) goes to uv's uid first, as a user's own home is theirs.
    fn hand_over(&self) -> anyhow::Result<()> {
        let layout = self.layout();
        let Uids { uid, gid, switch } = self.uids;
        if switch {
            // foreign-owner's preparation as root: the workspace and TMPDIR to uid 65534, every
            // directory on the way traversable. It is the uid the cell runs uv as.
            anyhow::ensure!(
                uid == uvfix_sandbox::foreign::UID,
                "the cell runs uv as uid {uid}, foreign-owner prepares for {}",
                uvfix_sandbox::foreign::UID
            );
            Sandbox::ForeignOwner.prepare(layout)?;
            self.walk_home(&mut |path, whole| {
                if whole {
                    owner::give(path, uid, gid)
                } else {
                    fs_err::os::unix::fs::lchown(path, Some(uid), Some(gid))
                }
            })
            .context("giving the cell's home to uv's uid")?;
        }
        let (fuid, fgid) = FOREIGN_OWNER;
        for rel in self.state.foreign_paths(&layout.cache)? {
            owner::give(&layout.cache.join(&rel), fuid, fgid)
                .with_context(|| format!("giving {rel} to uid {fuid}"))?;
        }
        Ok(())
    }

    /// Visit the home's entries but the pinned directories (the wheels and the staged
    /// binaries, shared by every cell of the slot and compared by ctime): `whole` for a tree
    /// to take as a whole, not for a directory on the way to a pinned one.
    fn walk_home(
        &self,
        visit: &mut dyn FnMut(&Path, bool) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        fn walk(
            dir: &Path,
            pinned: &[&Path],
            visit: &mut dyn FnMut(&Path, bool) -> std::io::Result<()>,
        ) -> std::io::Result<()> {
            visit(dir, false)?;
            for entry in fs_err::read_dir(dir)? {
                let path = entry?.path();
                if pinned.contains(&path.as_path()) {
                    continue;
                }
                if pinned.iter().any(|p| p.starts_with(&path)) {
                    walk(&path, pinned, visit)?;
                } else {
                    visit(&path, true)?;
                }
            }
            Ok(())
        }
        let pinned = [self.dirs.wheels.as_path(), self.dirs.bin.as_path()];
        walk(&self.dirs.layout.home, &pinned, visit)
    }

    /// Undo what [`Cell::hand_over`] and the sandbox's preparation did where it would keep
    /// the tree from being removed or the next cell of the slot from getting the warm tree:
    /// the foreign piece back to us (a user cannot remove what root owns), the directories on
    /// the way to the pinned ones back to us (the slot keeps them).
    pub(super) fn release(&self) {
        let layout = self.layout();
        if self.state.is_foreign() {
            let (uid, gid) = (owner::my_uid(), owner::my_gid());
            if let Ok(paths) = self.state.foreign_paths(&layout.cache) {
                for rel in paths {
                    let path = layout.cache.join(rel);
                    if fs_err::symlink_metadata(&path).is_ok()
                        && let Err(e) = owner::give(&path, uid, gid)
                    {
                        eprintln!("uvfix: {e}");
                    }
                }
            }
            if self.uids.switch {
                let mine = self.walk_home(&mut |path, whole| {
                    if whole {
                        Ok(())
                    } else {
                        fs_err::os::unix::fs::lchown(path, Some(uid), Some(gid))
                    }
                });
                if let Err(e) = mine {
                    eprintln!("uvfix: taking the cell's home back: {e}");
                }
            }
        }
        if let Err(e) = self.sandbox.release(layout) {
            eprintln!("uvfix: {e}");
        }
    }

    /// A foreign state counts only once uv's uid has been shown, outside any sandbox, that
    /// the piece is closed to it (and, in a writable cell, that the cache around it is
    /// open): otherwise the cell would pass on the warm state. `Some(verdict)` is the FAIL.
    fn prove_state(&mut self) -> anyhow::Result<Option<Outcome>> {
        if !self.state.is_foreign() {
            return Ok(None);
        }
        let cache = self.layout().cache.clone();
        let Uids { uid, gid, .. } = self.uids;
        let mut seen = Vec::new();
        for proof in self.state.proofs(&cache, self.sandbox == Sandbox::None)? {
            let probe = proof.probe();
            let got = owner::probe_as(uid, gid, self.helper, probe).map_err(anyhow::Error::msg)?;
            let rel = proof.path.strip_prefix(&cache).unwrap_or(&proof.path);
            let rel = if rel.as_os_str().is_empty() {
                ".".into()
            } else {
                rel.display().to_string()
            };
            match (proof.denied, got) {
                (true, Seen::Denied(Errno::EACCES)) => seen.push(format!("{rel} denied")),
                (false, Seen::Allowed) => seen.push(format!("{rel} open")),
                (denied, got) => {
                    return Ok(Some(Outcome::Fail(format!(
                        "state proof: uid {uid} {probe}: expected {}, saw {got:?}; the state does not bite",
                        if denied { "EACCES" } else { "success" }
                    ))));
                }
            }
        }
        self.result.state_proof = Some(format!("uid {uid}: {}", seen.join(", ")));
        Ok(None)
    }

    /// The host-side command for `inv` in this cell: the sandbox's, or where the cell runs
    /// uv as another user itself, that user's.
    fn command(&self, helper: &Path, inv: &Invocation) -> Command {
        if self.uids.switch {
            owner::command_as(self.uids.uid, self.uids.gid, inv)
        } else {
            self.sandbox.command(self.layout(), helper, inv)
        }
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
        let mut command = self.command(self.helper, &version.invocation(&self.ctx()));
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
            let mut command = self.command(&helper, &inv);
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
        let after = TreeDigest::of(&self.layout().cache)?;
        let diff = before.diff(&after);
        // A writable cache: what uv wrote there is compared with pristine's (`super::writes`).
        if self.sandbox == Sandbox::None {
            self.result.write_set = Some(WriteSet::of(&before, &after));
        }
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

/// `verdict`, failed for `why` as well: one FAIL names every guard that failed.
fn also_fail(verdict: Outcome, why: String) -> Outcome {
    match verdict {
        Outcome::Fail(first) => Outcome::Fail(format!("{first}; {why}")),
        _ => Outcome::Fail(why),
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
