//! A run that is interrupted leaves nothing behind: a real `cargo xtask matrix` (immutable
//! cells, and docker-ro where it runs) is interrupted in the middle of its cells by SIGINT to
//! its process group (a Ctrl-C in a terminal), by SIGTERM to the process alone (a CI
//! timeout), or killed with SIGKILL and followed by the next run. Then no store, no immutable
//! file, no process and no container of the run may be left.
//!
//! "In the middle of its cells" is made certain, not hoped for: the uv under test is a
//! wrapper that, when it finds the cache not writable (inside a denying sandbox, after the
//! canary), sleeps with a mark the test looks for, instead of running the real uv; the
//! signal is sent once those sleeps run, i.e. with the sandbox's preparation in place (the
//! cache immutable, the container running).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use uvfix_sandbox::trial::{self, Failed, case, first_skip};
use uvfix_sandbox::{Availability, Sandbox};

fn main() -> std::process::ExitCode {
    let needs = || {
        first_skip([
            (!uvfix_sandbox::is_root())
                .then(|| "immutable cells need root (CAP_LINUX_IMMUTABLE)".to_owned()),
            Sandbox::Immutable.skip_reason(),
            real_uv().err(),
        ])
    };
    trial::run(vec![
        case(
            "sigint_to_the_group_mid_cell_leaves_nothing",
            needs(),
            || interrupted(How::Sigint),
        ),
        case("sigterm_mid_cell_leaves_nothing", needs(), || {
            interrupted(How::Sigterm)
        }),
        case(
            "sigkill_mid_cell_then_the_next_run_leaves_nothing",
            needs(),
            || interrupted(How::SigkillThenNextRun),
        ),
        case("sigint_to_nextest_mid_cell_leaves_nothing", needs(), || {
            interrupted(How::NextestSigint)
        }),
    ])
}

/// The patched uv (the nextest setup script's, `cargo xtask build all`).
fn real_uv() -> Result<PathBuf, String> {
    std::env::var_os("UVFIX_UV_PATCHED")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .ok_or_else(|| {
            "needs a built uv: run under nextest (its setup script sets UVFIX_UV_PATCHED)".into()
        })
}

#[derive(Clone, Copy, PartialEq)]
enum How {
    Sigint,
    Sigterm,
    SigkillThenNextRun,
    /// `cargo nextest run` of the matrix tests: its setup script's store is held by a keeper
    /// that cleans it when nextest is gone.
    NextestSigint,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `uv` and `uvx` that sleep with `mark` where the cache is there and not writable, and are
/// the real ones everywhere else (the warm, unsandboxed).
fn wrappers(dir: &Path, mark: u32) -> Result<PathBuf, Failed> {
    let real = real_uv()?;
    for name in ["uv", "uvx"] {
        let script = format!(
            "#!/bin/sh\n\
             cache=\"$HOME/.cache/uv\"\n\
             if [ -e \"$cache\" ] && [ ! -w \"$cache\" ]; then exec sleep {mark}; fi\n\
             exec {} \"$@\"\n",
            real.with_file_name(name).display()
        );
        let path = dir.join(name);
        fs_err::write(&path, script)?;
        fs_err::set_permissions(&path, PermissionsExt::from_mode(0o755))?;
    }
    Ok(dir.join("uv"))
}

fn docker_ro() -> bool {
    Sandbox::DockerReadOnly.availability() == Availability::Available
}

/// `cargo xtask matrix` on the immutable cells (and docker-ro's, where it runs) of S1, in
/// `tmp` as TMPDIR, in a process group of its own (as a terminal's foreground job).
fn matrix(uv: &Path, tmp: &Path, sandboxes: &str, states: &str) -> Result<Child, Failed> {
    let mut xtask = Command::new(env!("CARGO_BIN_EXE_xtask"));
    xtask
        .current_dir(root())
        .env("TMPDIR", tmp)
        .args(["matrix", "--scenario", "s1", "--jobs", "2"])
        .arg(format!("--uv=patched={}", uv.display()))
        .arg(format!("--sandbox={sandboxes}"))
        .arg(format!("--state={states}"))
        .arg("--out")
        .arg(tmp.join("out"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut xtask, 0);
    Ok(xtask.spawn()?)
}

/// `cargo nextest run` of the matrix's immutable cells (and a docker-ro one, of another key, so
/// that both run at once), with `uv` as the patched build.
fn nextest(uv: &Path, tmp: &Path, docker: bool) -> Result<Child, Failed> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut filter = String::from("test(=patched/immutable/S1/warm)");
    if docker {
        filter.push_str(" | test(=patched/docker-ro/S1/lock-missing)");
    }
    let mut nextest = Command::new(cargo);
    nextest
        .current_dir(root())
        .env("TMPDIR", tmp)
        .env("UVFIX_UV_PATCHED", uv)
        .env("UVFIX_UV_PRISTINE", real_uv()?)
        // Not the outer run's profile: its JUnit file is the outer run's to write.
        .env("NEXTEST_PROFILE", "default")
        // `--workspace` with a filter, not `-p uvfix`: the outer run's features, so its build
        // is reused rather than redone.
        // Two at a time, whatever the outer run's settings hand down.
        .args([
            "nextest",
            "run",
            "--no-fail-fast",
            "--test-threads=2",
            "--workspace",
            "-E",
        ])
        .arg(format!("package(uvfix) & binary(matrix) & ({filter})"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut nextest, 0);
    Ok(nextest.spawn()?)
}

/// The processes whose command line is `sleep MARK`.
fn sleepers(mark: u32) -> Vec<u32> {
    let want = format!("sleep\0{mark}\0");
    procs()
        .filter(|&pid| {
            fs_err::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want.as_bytes())
        })
        .collect()
}

fn procs() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
}

/// Processes of the run: a `sleep MARK`, or one whose working directory, command line or
/// environment names `tmp` (every cell's command runs in, and is handed paths in, the store).
fn run_processes(tmp: &Path, mark: u32) -> Vec<String> {
    let me = std::process::id();
    let tmp = tmp.to_string_lossy().into_owned();
    let mut found: Vec<String> = Vec::new();
    for pid in procs().filter(|&p| p != me) {
        let cwd = fs_err::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let names = |bytes: &[u8]| String::from_utf8_lossy(bytes).contains(&tmp);
        if cwd.starts_with(&tmp)
            || names(&cmdline)
            || names(&environ)
            || sleepers(mark).contains(&pid)
        {
            found.push(format!(
                "pid {pid}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ").trim()
            ));
        }
    }
    found
}

/// Containers that mount anything below `tmp`.
fn containers(tmp: &Path) -> Vec<String> {
    if !docker_ro() {
        return Vec::new();
    }
    let out = |args: &[&str]| {
        Command::new("docker")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let ids = out(&["ps", "-aq", "--no-trunc"]);
    let tmp = tmp.to_string_lossy();
    ids.split_whitespace()
        .filter(|id| {
            out(&[
                "inspect",
                "--format",
                "{{range .Mounts}}{{.Source}} {{end}}",
                id,
            ])
            .split_whitespace()
            .any(|source| source.starts_with(&*tmp))
        })
        .map(String::from)
        .collect()
}

/// Stores (`uvr-*`) and files with the immutable attribute below `tmp`.
fn leftovers(tmp: &Path) -> (Vec<String>, Vec<String>) {
    let stores = fs_err::read_dir(tmp)
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("uvr-"))
                .collect()
        })
        .unwrap_or_default();
    // `-a`: the cache is `~/.cache`, a hidden directory.
    let lsattr = Command::new("lsattr")
        .args(["-R", "-a"])
        .arg(tmp)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let immutable = lsattr
        .lines()
        .filter(|line| {
            // `FLAGS PATH` lines (flags like `----i---------e-------`); `DIR:` heads the rest.
            line.split_once(' ').is_some_and(|(flags, _)| {
                flags.contains('-')
                    && flags.chars().all(|c| c == '-' || c.is_ascii_alphabetic())
                    && flags.contains('i')
            })
        })
        // `-a` lists `.` and `..` of every directory too: each directory once is enough.
        .filter(|line| !line.ends_with("/.") && !line.ends_with("/.."))
        .map(String::from)
        .collect();
    (stores, immutable)
}

/// Everything the run left, in words; empty when nothing. Processes die asynchronously after a
/// SIGKILL (and are reaped by init), so they get a few seconds.
fn left_behind(tmp: &Path, mark: u32) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut processes = run_processes(tmp, mark);
    while !processes.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        processes = run_processes(tmp, mark);
    }
    let (stores, immutable) = leftovers(tmp);
    let mut left = Vec::new();
    left.extend(stores.iter().map(|s| format!("store {s}")));
    left.extend(immutable.iter().map(|f| format!("immutable file {f}")));
    left.extend(processes.iter().map(|p| format!("process {p}")));
    left.extend(containers(tmp).iter().map(|c| format!("container {c}")));
    left
}

/// Undo whatever a failing run left, so that one failure does not leave the machine worse.
fn scrub(tmp: &Path, mark: u32) {
    for pid in sleepers(mark) {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    for id in containers(tmp) {
        let _ = Command::new("docker").args(["rm", "-f", &id]).output();
    }
    let _ = Command::new("chattr")
        .args(["-R", "-f", "-i"])
        .arg(tmp)
        .output();
    let _ = fs_err::remove_dir_all(tmp);
}

/// A run, stopped if a failing test would leave it running: SIGTERM, then SIGKILL to its
/// group, both while it is not reaped (so that its pid is still its own).
struct Running(Option<Child>);

impl Running {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("the run is still held")
    }

    fn take(mut self) -> Child {
        self.0.take().expect("the run is still held")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while let Ok(None) = child.try_wait() {
                if Instant::now() > deadline {
                    let _ = Command::new("kill")
                        .args(["-KILL", "--", &format!("-{pid}")])
                        .status();
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let _ = child.wait();
    }
}

fn wait(child: &mut Child, limit: Duration) -> Result<std::process::ExitStatus, Failed> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!("the run did not end within {} s", limit.as_secs()).into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn output(child: Child) -> String {
    let out = child
        .wait_with_output()
        .map(|o| o.stderr)
        .unwrap_or_default();
    String::from_utf8_lossy(&out).into_owned()
}

fn interrupted(how: How) -> Result<(), Failed> {
    let bins = tempfile::Builder::new()
        .prefix("uvfix-int-bin-")
        .tempdir()?;
    // Directly in /tmp (ext4 here), so that the immutable attribute works, and short: srt's
    // socket paths live below it in other runs.
    let tmp = tempfile::Builder::new()
        .prefix("uvfix-int-")
        .tempdir()?
        .keep();
    let mark = 90_000 + std::process::id() % 9_000;
    let result = interrupted_in(how, bins.path(), &tmp, mark);
    scrub(&tmp, mark);
    result
}

fn interrupted_in(how: How, bins: &Path, tmp: &Path, mark: u32) -> Result<(), Failed> {
    let uv = wrappers(bins, mark)?;
    let docker = docker_ro();
    // Two keys (states), so that a docker-ro cell and an immutable cell run at the same time.
    let sandboxes = if docker {
        "immutable,docker-ro"
    } else {
        "immutable"
    };
    let mut run = Running(Some(if how == How::NextestSigint {
        nextest(&uv, tmp, docker)?
    } else {
        matrix(&uv, tmp, sandboxes, "warm,lock-missing")?
    }));
    let pid = run.child().id();
    let expected_sleeps = if docker { 2 } else { 1 };
    let deadline =
        Instant::now() + Duration::from_secs(if how == How::NextestSigint { 600 } else { 240 });
    while sleepers(mark).len() < expected_sleeps {
        if let Some(status) = run.child().try_wait()? {
            return Err(format!(
                "the run ended ({status}) before its cells were in their sandboxes:\n{}",
                output(run.take())
            )
            .into());
        }
        if Instant::now() > deadline {
            let _ = run.child().kill();
            return Err(format!(
                "no cell reached its sandbox in time:\n{}",
                output(run.take())
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Mid-cell: the sandboxes' preparations are in place now.
    let (stores, immutable) = leftovers(tmp);
    if stores.is_empty() || immutable.is_empty() {
        let homes: Vec<String> = sleepers(mark)
            .iter()
            .map(|pid| {
                let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                String::from_utf8_lossy(&environ)
                    .split('\0')
                    .find(|v| v.starts_with("HOME="))
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        let _ = Command::new("kill")
            .args(["-INT", "--", &format!("-{pid}")])
            .status();
        let _ = wait(run.child(), Duration::from_secs(120));
        return Err(format!(
            "mid-cell, expected a store with immutable files: stores {stores:?}, sleeping in \
             {homes:?}; the run's output:\n{}",
            output(run.take())
        )
        .into());
    }
    let kill = |signal: &str, target: String| {
        Command::new("kill")
            .args([signal, "--", &target])
            .status()
            .map_err(Failed::from)
    };
    match how {
        // A terminal's Ctrl-C: the foreground process group.
        How::Sigint | How::NextestSigint => kill("-INT", format!("-{pid}"))?,
        // A CI timeout or `kill`: the process alone.
        How::Sigterm => kill("-TERM", pid.to_string())?,
        How::SigkillThenNextRun => kill("-KILL", pid.to_string())?,
    };
    let status = wait(run.child(), Duration::from_secs(180))?;
    let stderr = output(run.take());
    let mut problems = Vec::new();
    match how {
        How::Sigint | How::Sigterm => {
            let (code, name) = if how == How::Sigint {
                (130, "SIGINT")
            } else {
                (143, "SIGTERM")
            };
            if status.code() != Some(code) || !stderr.contains(&format!("interrupted by {name}")) {
                problems.push(format!(
                    "expected exit {code} saying it was interrupted by {name}, got {status}; \
                     its stderr:\n{stderr}"
                ));
            }
        }
        How::NextestSigint => {
            // nextest stops its tests and exits; the keeper then cleans the store.
            let deadline = Instant::now() + Duration::from_secs(120);
            while !leftovers(tmp).0.is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
            }
            if status.success() || !stderr.contains("interrupt") {
                problems.push(format!(
                    "expected nextest to fail saying it was interrupted, got {status}:\n{stderr}"
                ));
            }
        }
        How::SigkillThenNextRun => {
            // What a killed run leaves: the next run must clean it.
            let left = left_behind(tmp, mark);
            println!("left by the killed run (for the next one to clean):");
            for line in &left {
                println!("  {line}");
            }
            let mut next = Running(Some(matrix(&real_uv()?, tmp, "none", "warm")?));
            let status = wait(next.child(), Duration::from_secs(300))?;
            let stderr = output(next.take());
            if !status.success() || !stderr.contains("left by a run that was killed") {
                problems.push(format!(
                    "the next run should succeed and say it cleaned the killed run's store; \
                     {status}:\n{stderr}"
                ));
            }
        }
    }
    let left = left_behind(tmp, mark);
    if !left.is_empty() {
        problems.push(format!("the run left behind:\n  {}", left.join("\n  ")));
    }
    if !problems.is_empty() {
        return Err(problems.join("\n").into());
    }
    println!(
        "nothing left: no store, no immutable file, no process{}",
        if docker {
            ", no container"
        } else {
            " (docker-ro unavailable here: containers not checked)"
        }
    );
    Ok(())
}
