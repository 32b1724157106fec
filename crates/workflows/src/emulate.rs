//! One job × matrix entry, run here the way its runner would run it, with stub tools.
//!
//! A throwaway copy of the checkout's `ci/`, `.ci/` and `patches/` is the workspace. Each
//! `run:` step whose shell is bash runs as GitHub runs it (`bash --noprofile --norc -eo
//! pipefail FILE`, in the workspace, with the workflow's, job's and step's `env:`), and the
//! scripts it calls run for real, so their own decisions are what is checked. Everything that
//! would change a machine or take minutes is a stub on `PATH` that writes a line to the trace
//! and prints what its callers read (`cargo xtask uv-path` a path, `id -u` the runner's uid
//! 1001, `uname -s` the runner's OS). A few scripts are replaced whole, named in
//! [`STUBBED_SCRIPTS`] with the reason. `BASH_ENV` records every bash script that starts, so
//! the trace also says which scripts a job ran, in order.
//!
//! State the stubs share lives in the copy: `cargo nextest` exists only once the job installed
//! it (the install action, or `cargo install cargo-nextest`), `cargo +TOOLCHAIN` only once a
//! step ran `rustup toolchain install TOOLCHAIN`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::Error;
use crate::runner::Os;
use crate::workflow::{Entry, StepKind};

/// Scripts replaced by a stub, and why they cannot run here for real.
pub const STUBBED_SCRIPTS: &[(&str, &str, &str)] = &[
    // (path, what the stub prints on stdout, why)
    (
        "ci/docker-image.sh",
        "echo uvfix-python:emulated",
        "bootstraps an image from the host's apt sources (minutes, root)",
    ),
    (
        "ci/fetch-official-uv.sh",
        "echo \"$EMU_ROOT/.emu/bin/uv\"",
        "downloads a wheel from PyPI",
    ),
    (
        "ci/install-lint-tools.sh",
        "echo \"$EMU_ROOT/.emu/bin\"",
        "installs from PyPI",
    ),
    (
        "ci/upstream-check.sh",
        ":",
        "reads the reports of real `cargo xtask upstream` runs",
    ),
    (
        "ci/as-runner.sh",
        ":",
        "creates a user and runs the matrix as it",
    ),
];

/// Tools every emulated step finds first on `PATH`, all one stub.
const STUB_TOOLS: &[&str] = &[
    "cargo",
    "rustup",
    "rustc",
    "docker",
    "dockerd",
    "sudo",
    "npm",
    "node",
    "apt-get",
    "git",
    "id",
    "uname",
    "sysctl",
    "mmdebstrap",
    "actionlint",
    "zizmor",
    "shellcheck",
    "uv",
    "uvx",
    "sandbox-exec",
];

/// The stub: records `cmd STEP NAME ARGS REQUIRE` and answers what callers read.
const STUB: &str = r#"#!/bin/bash
name=${0##*/}
printf 'cmd\t%s\t%s\t%s\t%s\n' "${EMU_STEP:-}" "$name" "$*" "${UVFIX_REQUIRE_SANDBOXES-}" >>"$EMU_TRACE"
state=$EMU_ROOT/.emu/state
case "$name" in
  id)
    case "${1:-}" in
      -u | -g) echo 1001 ;;
      -un) echo runner ;;
      -Gn) echo "runner docker" ;;
      *) echo "uid=1001(runner) gid=1001(runner) groups=1001(runner),118(docker)" ;;
    esac ;;
  uname)
    case "${1:-}" in
      -m) echo "$EMU_UNAME_M" ;;
      -sm) echo "$EMU_UNAME_S $EMU_UNAME_M" ;;
      *) echo "$EMU_UNAME_S" ;;
    esac ;;
  cargo)
    if [ "${1#+}" != "${1:-}" ]; then
      toolchain=${1#+}
      shift
      if [ ! -e "$state/toolchain-$toolchain" ]; then
        echo "error: toolchain '$toolchain' is not installed (emulated)" >&2
        exit 1
      fi
    fi
    case "${1:-}" in
      nextest)
        [ -e "$state/nextest" ] || { echo "error: no such command: \`nextest\` (emulated)" >&2; exit 101; }
        [ "${2:-}" != --version ] || echo "cargo-nextest 0.9.0 (emulated)" ;;
      install)
        case " $* " in *" cargo-nextest "*) touch "$state/nextest" ;; esac ;;
      xtask)
        work=${UVFIX_WORK_DIR:-$EMU_ROOT/target/uvfix}
        case "${2:-}" in
          uv-path) echo "$work/bin/${3:-patched}/uv" ;;
          # xtask's contract (ARCHITECTURE.md): bin/<variant>/{uv,uvx}.
          build)
            case "${3:-all}" in all) variants="patched pristine" ;; *) variants=$3 ;; esac
            for v in $variants; do
              mkdir -p "$work/bin/$v"
              for t in uv uvx; do printf '#!/bin/sh\necho "uv 0.0.0 (emulated)"\n' >"$work/bin/$v/$t"; chmod +x "$work/bin/$v/$t"; done
            done ;;
        esac ;;
      --version) echo "cargo 1.95.0 (emulated)" ;;
    esac ;;
  rustup)
    if [ "${1:-}" = toolchain ] && [ "${2:-}" = install ]; then
      shift 2
      while [ $# -gt 0 ]; do
        case "$1" in
          --profile | --component | -c | --target | -t) shift ;;
          -*) ;;
          *) touch "$state/toolchain-$1" ;;
        esac
        shift
      done
    fi ;;
  uv | uvx) echo "uv 0.0.0 (emulated)" ;;
  git) case " $* " in *" rev-parse "*) echo 0000000 ;; esac ;;
esac
exit 0
"#;

/// Records every bash script that starts (bash reads `$BASH_ENV` first in every
/// non-interactive shell); the step files and the stubs themselves are not scripts of ours.
const BASH_ENV: &str = r#"case "$0" in
  "$EMU_ROOT"/.emu/*) ;;
  "$EMU_ROOT"/*) printf 'script\t%s\t%s\t%s\n' "${EMU_STEP:-}" "${0#"$EMU_ROOT"/}" "$*" >>"$EMU_TRACE" ;;
  /*) ;;
  *) if [ -f "$0" ]; then printf 'script\t%s\t%s\t%s\n' "${EMU_STEP:-}" "${0#./}" "$*" >>"$EMU_TRACE"; fi ;;
esac
"#;

/// What one entry did, in order.
#[derive(Debug, Default)]
pub struct Trace {
    pub events: Vec<Event>,
    pub steps: Vec<StepRun>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A bash script of the repository started (`ci/job.sh`), with its arguments.
    Script {
        step: usize,
        path: String,
        args: String,
    },
    /// A stub tool ran, with `$UVFIX_REQUIRE_SANDBOXES` as it saw it (`None`: unset).
    Command {
        step: usize,
        name: String,
        args: String,
        require: Option<String>,
    },
    /// A `uses:` step ran.
    Uses {
        step: usize,
        slug: String,
        with: Vec<(String, String)>,
    },
}

#[derive(Debug)]
pub struct StepRun {
    pub index: usize,
    pub outcome: Outcome,
}

#[derive(Debug)]
pub enum Outcome {
    /// Its `if:` is false for this entry.
    Skipped,
    /// Not run here: a shell that is not bash (the checks say whether that is right).
    NotBash,
    Action,
    Ran {
        success: bool,
        status: String,
        output: String,
    },
    /// An earlier step failed, so GitHub would not start this one.
    NotReached,
}

/// The artifacts the emulated jobs uploaded, by name, for the jobs that download them. Like
/// GitHub's, they keep no file modes.
pub struct Artifacts {
    dir: tempfile::TempDir,
}

impl Artifacts {
    pub fn new() -> Result<Self, Error> {
        Ok(Artifacts {
            dir: tempfile::Builder::new()
                .prefix("uvfix-artifacts-")
                .tempdir()?,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `actions/upload-artifact`: each path of `path:` (a directory uploads its contents).
    fn upload(&self, work: &Path, name: &str, paths: &str) -> Result<(), Error> {
        let dest = self.path(name);
        fs_err::create_dir_all(&dest)?;
        for path in paths.lines().map(str::trim).filter(|p| !p.is_empty()) {
            let from = work.join(path);
            if from.is_dir() {
                copy_tree(&from, &dest, false)?;
            } else if from.is_file() {
                fs_err::copy(&from, dest.join(from.file_name().unwrap_or_default()))?;
            }
        }
        Ok(())
    }

    /// `actions/download-artifact`: `false` when no emulated job uploaded `name`.
    fn download(&self, work: &Path, name: &str, path: Option<&str>) -> Result<bool, Error> {
        let from = self.path(name);
        if !from.is_dir() {
            return Ok(false);
        }
        copy_tree(&from, &work.join(path.unwrap_or(".")), false)?;
        Ok(true)
    }
}

/// Run `entry`'s steps in a copy of `root`'s CI files; `artifacts` holds what the jobs it
/// needs uploaded, and receives what it uploads.
pub fn emulate(root: &Path, entry: &Entry, artifacts: &Artifacts) -> Result<Trace, Error> {
    let dir = tempfile::Builder::new()
        .prefix("uvfix-emulate-")
        .tempdir()?;
    let work = dir.path();
    for sub in ["ci", ".ci", "patches"] {
        if root.join(sub).is_dir() {
            copy_tree(&root.join(sub), &work.join(sub), true)?;
        }
    }
    for (script, prints, why) in STUBBED_SCRIPTS {
        let path = work.join(script);
        if path.exists() {
            fs_err::write(
                &path,
                format!("#!/bin/bash\n# emulation stub: the real script {why}\n{prints}\n"),
            )?;
        }
    }
    let emu = work.join(".emu");
    let bin = emu.join("bin");
    fs_err::create_dir_all(&bin)?;
    fs_err::create_dir_all(emu.join("state"))?;
    fs_err::create_dir_all(emu.join("home"))?;
    fs_err::create_dir_all(emu.join("tmp"))?;
    for tool in STUB_TOOLS {
        write_executable(&bin.join(tool), STUB)?;
    }
    fs_err::write(emu.join("bash_env"), BASH_ENV)?;
    let trace_file = emu.join("trace");
    fs_err::write(&trace_file, "")?;
    // The runner image's own toolchain; the workflow installs the pinned ones.
    fs_err::write(emu.join("state/toolchain-stable"), "")?;

    let os = entry.os.unwrap_or(Os::Linux);
    // The entry was rendered for GitHub's workspace path; here it is this copy.
    let here = |text: &str| text.replace(crate::workflow::WORKSPACE, &work.to_string_lossy());
    let mut trace = Trace::default();
    let mut failed = false;
    for (index, step) in entry.steps.iter().enumerate() {
        let outcome = if failed {
            Outcome::NotReached
        } else if !step.runs {
            Outcome::Skipped
        } else {
            match &step.kind {
                StepKind::Other => Outcome::Skipped,
                StepKind::Uses { slug, with } => {
                    if slug == "taiki-e/install-action"
                        && with.iter().any(|(k, v)| {
                            k == "tool"
                                && v.split([',', ' ', '\n']).any(|t| {
                                    t == "cargo-nextest"
                                        || t.starts_with("cargo-nextest@")
                                        || t == "nextest"
                                })
                        })
                    {
                        fs_err::write(emu.join("state/nextest"), "")?;
                    }
                    trace.events.push(Event::Uses {
                        step: index,
                        slug: slug.clone(),
                        with: with.clone(),
                    });
                    let with: Vec<(String, String)> =
                        with.iter().map(|(k, v)| (k.clone(), here(v))).collect();
                    let input =
                        |key: &str| with.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
                    match (slug.as_str(), input("name")) {
                        ("actions/upload-artifact", Some(name)) => {
                            artifacts.upload(work, name, input("path").unwrap_or(""))?;
                            Outcome::Action
                        }
                        ("actions/download-artifact", Some(name)) => {
                            if artifacts.download(work, name, input("path"))? {
                                Outcome::Action
                            } else {
                                failed = true;
                                Outcome::Ran {
                                    success: false,
                                    status: "no such artifact".to_owned(),
                                    output: format!(
                                        "Unable to download artifact(s): Artifact not found for name: {name}"
                                    ),
                                }
                            }
                        }
                        _ => Outcome::Action,
                    }
                }
                StepKind::Run { shell, .. } if shell != "bash" => Outcome::NotBash,
                StepKind::Run { script, .. } => {
                    let file = emu.join(format!("step-{index}.sh"));
                    fs_err::write(&file, here(script))?;
                    let mut command = Command::new("bash");
                    command
                        .args(["--noprofile", "--norc", "-eo", "pipefail"])
                        .arg(&file)
                        .current_dir(work)
                        .env_clear()
                        .env(
                            "PATH",
                            format!(
                                "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                bin.display()
                            ),
                        )
                        .env("HOME", emu.join("home"))
                        .env("TMPDIR", emu.join("tmp"))
                        .env("RUNNER_TEMP", emu.join("tmp"))
                        .env("BASH_ENV", emu.join("bash_env"))
                        .env("EMU_ROOT", work)
                        .env("EMU_TRACE", &trace_file)
                        .env("EMU_STEP", index.to_string())
                        .env("EMU_UNAME_S", os.uname())
                        .env(
                            "EMU_UNAME_M",
                            if entry.runs_on.ends_with("-arm") || os == Os::MacOs {
                                "arm64"
                            } else {
                                "x86_64"
                            },
                        )
                        .env("CI", "true")
                        .env("GITHUB_ACTIONS", "true")
                        .env("GITHUB_WORKSPACE", work)
                        .env("GITHUB_STEP_SUMMARY", emu.join("summary.md"))
                        .env("RUNNER_OS", os.context_name());
                    for (key, value) in entry.env.iter().chain(&step.env) {
                        command.env(key, here(value));
                    }
                    let output = uvfix_process::run(&mut command, Some(Duration::from_secs(120)))?;
                    let success = output.success();
                    failed = !success;
                    Outcome::Ran {
                        success,
                        status: output.status_text(),
                        output: format!("{}{}", output.stdout_text(), output.stderr_text()),
                    }
                }
            }
        };
        trace.steps.push(StepRun { index, outcome });
        // Stub lines of this step, in the order they were written.
        read_trace(&trace_file, &mut trace.events)?;
        fs_err::write(&trace_file, "")?;
    }
    Ok(trace)
}

fn read_trace(file: &Path, events: &mut Vec<Event>) -> Result<(), Error> {
    for line in fs_err::read_to_string(file)?.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let step = fields
            .get(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(usize::MAX);
        match fields.first() {
            Some(&"script") => events.push(Event::Script {
                step,
                path: fields.get(2).unwrap_or(&"").to_string(),
                args: fields.get(3).unwrap_or(&"").to_string(),
            }),
            Some(&"cmd") => events.push(Event::Command {
                step,
                name: fields.get(2).unwrap_or(&"").to_string(),
                args: fields.get(3).unwrap_or(&"").to_string(),
                // `${VAR-}` prints nothing for unset and set-but-empty alike: both require nothing.
                require: fields
                    .get(4)
                    .filter(|r| !r.is_empty())
                    .map(|r| r.to_string()),
            }),
            _ => {}
        }
    }
    Ok(())
}

/// Copy a tree; with `modes`, the mode bits too (a script that is not executable fails here
/// as it would there), without them every file is 0644 (what an artifact download gives).
fn copy_tree(from: &Path, to: &Path, modes: bool) -> Result<(), Error> {
    fs_err::create_dir_all(to)?;
    for entry in fs_err::read_dir(from)? {
        let entry = entry?;
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target, modes)?;
        } else if entry.file_type()?.is_file() {
            fs_err::copy(entry.path(), &target)?;
            #[cfg(unix)]
            if !modes {
                use std::os::unix::fs::PermissionsExt;
                fs_err::set_permissions(&target, std::fs::Permissions::from_mode(0o644))?;
            }
        }
    }
    Ok(())
}

fn write_executable(path: &Path, text: &str) -> Result<(), Error> {
    fs_err::write(path, text)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}
