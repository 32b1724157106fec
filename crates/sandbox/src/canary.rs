//! The canary: a write into the cache from inside the sandbox, which must be denied with the
//! sandbox's own errno before anything run there counts. The same for every sandbox; what
//! differs (the wrapper, the errno, the helper's staging) is its policy's.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::{Denial, Errno, Invocation, Layout, Sandbox, SandboxError, helper};

impl Sandbox {
    /// Prove the sandbox denies: create a new file in `layout.cache` from inside; Ok(denial seen).
    ///
    /// For `none` a created file is the expected outcome and still reported as
    /// [`SandboxError::CanaryNotDenied`]: nothing counts unless a denial was seen.
    pub fn canary(self, layout: &Layout, helper: &Path) -> Result<Denial, SandboxError> {
        self.probe_write(layout, helper, &layout.cache)
    }

    /// The canary aimed at any directory: runs `helper canary DIR` inside the sandbox (same
    /// wrapping and uid as a real command, cwd = workspace, `HOME`/`TMPDIR` from the layout) and
    /// maps the outcome. [`Sandbox::canary`] is this with `dir = layout.cache`.
    ///
    /// For `foreign-owner` as root the helper must be executable by uid 65534; if it is not (e.g.
    /// it lives under `/root`, mode 0700) it is first copied to a world-readable directory, see
    /// [`foreign::stage_executable`].
    pub fn probe_write(
        self,
        layout: &Layout,
        helper: &Path,
        dir: &Path,
    ) -> Result<Denial, SandboxError> {
        let env = vec![
            (OsString::from("HOME"), layout.home.clone().into_os_string()),
            (
                OsString::from("TMPDIR"),
                layout.tmp.clone().into_os_string(),
            ),
        ];
        let (helper, probe) =
            self.canary_invocation(helper, dir, env, layout.workspace.clone(), None)?;
        let mut output = uvfix_process::run(&mut self.command(layout, &helper, &probe), None)
            .map_err(|e| self.canary_failed(format!("running the sandbox: {e}")))?;
        self.canary_verdict(layout, dir, &mut output)
    }

    /// `inv` behind the canary, for one sandbox start that proves the denial and then runs
    /// the command: `helper canary DIR -- PROG ARGS…` execs `inv` only if its write into `dir`
    /// was denied. Run it with [`Sandbox::command`] and the helper returned (for
    /// `foreign-owner` a copy uid 65534 may execute), then read the verdict with
    /// [`Sandbox::canary_verdict`], which also takes the report line out of the output.
    pub fn behind_canary(
        self,
        helper: &Path,
        dir: &Path,
        inv: &Invocation,
    ) -> Result<(PathBuf, Invocation), SandboxError> {
        self.canary_invocation(helper, dir, inv.env.clone(), inv.cwd.clone(), Some(inv))
    }

    /// `helper canary DIR` with `env` in `cwd`, followed by `-- PROG ARGS…` of `then`.
    fn canary_invocation(
        self,
        helper: &Path,
        dir: &Path,
        env: Vec<(OsString, OsString)>,
        cwd: PathBuf,
        then: Option<&Invocation>,
    ) -> Result<(PathBuf, Invocation), SandboxError> {
        let helper = self
            .policy()
            .stage_helper(helper)
            .map_err(|detail| self.canary_failed(detail))?;
        let mut args = vec![OsString::from("canary"), dir.as_os_str().to_owned()];
        if let Some(inv) = then {
            args.push(OsString::from("--"));
            args.push(inv.program.clone().into_os_string());
            args.extend(inv.args.iter().cloned());
        }
        let wrapped = Invocation {
            program: helper.clone(),
            args,
            env,
            cwd,
        };
        Ok((helper, wrapped))
    }

    fn canary_failed(self, detail: String) -> SandboxError {
        SandboxError::CanaryFailed {
            sandbox: self.name(),
            detail,
        }
    }

    /// What the canary in `output` saw of its write into `dir`: Ok(the denial) when it is the
    /// sandbox's own. Its report line is taken out of `output.stdout`, which then holds only
    /// what the command after it printed.
    pub fn canary_verdict(
        self,
        layout: &Layout,
        dir: &Path,
        output: &mut uvfix_process::Output,
    ) -> Result<Denial, SandboxError> {
        let sandbox = self.name();
        let Some(outcome) = take_canary_report(&mut output.stdout) else {
            return Err(self.canary_failed(self.no_canary_report(layout, output)));
        };
        match outcome {
            helper::CanaryOutcome::Created(path) | helper::CanaryOutcome::Opened(path) => {
                Err(SandboxError::CanaryNotDenied { sandbox, path })
            }
            helper::CanaryOutcome::Denied(errno) => {
                match (Denial::from_errno(errno), self.denial()) {
                    (Some(seen), Some(expected)) if seen != expected => {
                        Err(SandboxError::WrongDenial {
                            sandbox,
                            got: errno,
                            expected,
                        })
                    }
                    (Some(seen), _) => Ok(seen),
                    // ENOENT, ENOSPC, …: not a denial at all, the setup is broken.
                    (None, _) => Err(self.canary_failed(format!(
                        "creating a file in {} failed with {}, which is not a denial",
                        dir.display(),
                        errno_name(errno)
                    ))),
                }
            }
            helper::CanaryOutcome::Error(msg) => Err(self.canary_failed(msg)),
        }
    }

    /// Why the canary printed no report, with a hint where the cause is known.
    fn no_canary_report(self, layout: &Layout, output: &uvfix_process::Output) -> String {
        let stderr = output.stderr_text();
        let hint = self
            .policy()
            .no_report_hint(layout, &stderr)
            .unwrap_or_default();
        format!(
            "no canary report ({}); stdout: {:?}; stderr: {:?}{hint}",
            output.status_text(),
            output.stdout_text().trim(),
            stderr.trim()
        )
    }
}

/// The first canary report line in `stdout`, removed from it (the other bytes untouched).
fn take_canary_report(stdout: &mut Vec<u8>) -> Option<helper::CanaryOutcome> {
    let mut start = 0;
    for line in stdout.split_inclusive(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line);
        if let Some(outcome) = helper::CanaryOutcome::parse(text.trim_end_matches(['\n', '\r'])) {
            stdout.drain(start..start + line.len());
            return Some(outcome);
        }
        start += line.len();
    }
    None
}

/// "EROFS (errno 30)" for reports.
pub fn errno_name(errno: Errno) -> String {
    // Errno's Debug is the symbolic name.
    format!("{errno:?} (errno {})", errno as i32)
}
