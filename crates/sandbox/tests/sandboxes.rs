//! Every sandbox this machine provides, exercised for real: the canary, the writable and the
//! denied places, reading the cache, the environment, the network.
//!
//! A sandbox that is unavailable here is skipped with its reason printed on stderr (shown by
//! `cargo nextest run --no-capture`); set `UVFIX_REQUIRE_SANDBOXES=landlock,ro-home,…` (or `all`)
//! to turn such a skip into a failure, e.g. in CI where they are known to exist.

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use assert_fs::TempDir;
use assert_fs::prelude::*;
use predicates::prelude::*;
use rstest::{fixture, rstest};
use uvfix_sandbox::{Availability, Denial, Invocation, Layout, Sandbox, SandboxError};

const HELPER: &str = env!("CARGO_BIN_EXE_uvfix-sandbox-helper");
const SEED: &str = "seed.txt";

struct Cell {
    layout: Layout,
    // Dropped after `Drop for Cell` ran `release`, so the tree is deletable again.
    _dir: TempDir,
}

impl Drop for Cell {
    fn drop(&mut self) {
        // foreign-owner as non-root stripped the cache's write bits and immutable set the
        // immutable attribute; undo both so the tree can be deleted.
        for sandbox in Sandbox::ALL {
            let _ = sandbox.release(&self.layout);
        }
    }
}

/// A cell as the scenarios build it: `home/.cache/uv` with one cached file, a workspace and a
/// TMPDIR, all under one 0700 temp dir (which foreign-owner must make traversable).
#[fixture]
fn cell() -> Cell {
    let dir = TempDir::new().expect("temp dir");
    dir.child("home/.cache/uv")
        .child(SEED)
        .write_str("cached\n")
        .unwrap();
    dir.child("home/other").create_dir_all().unwrap();
    dir.child("workspace").create_dir_all().unwrap();
    dir.child("tmp").create_dir_all().unwrap();
    let root = dir.path().to_path_buf();
    Cell {
        layout: Layout {
            home: root.join("home"),
            cache: root.join("home/.cache/uv"),
            workspace: root.join("workspace"),
            tmp: root.join("tmp"),
        },
        _dir: dir,
    }
}

/// Whether to go on with `sandbox`; prints why not. Panics instead when the sandbox is required.
fn usable(sandbox: Sandbox) -> bool {
    match sandbox.availability() {
        Availability::Available => true,
        Availability::Unavailable(reason) => {
            let required = std::env::var("UVFIX_REQUIRE_SANDBOXES").unwrap_or_default();
            if required
                .split(',')
                .any(|r| r == "all" || r == sandbox.name())
            {
                panic!("{sandbox} is required but unavailable: {reason}");
            }
            eprintln!("SKIPPED: sandbox `{sandbox}` unavailable here: {reason}");
            false
        }
    }
}

fn is_root() -> bool {
    // `id -u` keeps the tests free of a libc dependency.
    let out = std::process::Command::new("id")
        .arg("-u")
        .output()
        .expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// Prepare `sandbox` for `cell` and run `program args` in it with HOME/TMPDIR from the layout.
fn run(sandbox: Sandbox, cell: &Cell, program: &str, args: &[&OsString]) -> Output {
    sandbox.prepare(&cell.layout).expect("prepare");
    let layout = &cell.layout;
    let inv = Invocation {
        program: PathBuf::from(program),
        args: args.iter().map(|a| (*a).clone()).collect(),
        env: vec![
            ("HOME".into(), layout.home.clone().into()),
            ("TMPDIR".into(), layout.tmp.clone().into()),
        ],
        cwd: layout.workspace.clone(),
    };
    let out = sandbox
        .command(layout, Path::new(HELPER), &inv)
        .stdin(Stdio::null())
        .output()
        .expect("spawn");
    eprintln!(
        "[{sandbox}] {program} {args:?} -> {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn os(s: impl Into<OsString>) -> OsString {
    s.into()
}

#[rstest]
#[case::landlock(Sandbox::Landlock)]
#[case::ro_home(Sandbox::RoHome)]
#[case::ro_root(Sandbox::RoRoot)]
#[case::foreign_owner(Sandbox::ForeignOwner)]
#[case::immutable(Sandbox::Immutable)]
#[case::codex(Sandbox::Codex)]
#[case::codex_current(Sandbox::CodexCurrent)]
#[case::sandbox_runtime(Sandbox::SandboxRuntime)]
#[case::docker_ro(Sandbox::DockerReadOnly)]
#[case::seatbelt(Sandbox::Seatbelt)]
fn canary_is_denied_with_the_policy_errno(#[case] sandbox: Sandbox, cell: Cell) {
    if !usable(sandbox) {
        return;
    }
    sandbox.prepare(&cell.layout).unwrap();
    let denial = sandbox.canary(&cell.layout, Path::new(HELPER)).unwrap();
    assert_eq!(Some(denial), sandbox.denial());
    // Nothing was left behind in the cache.
    let entries: Vec<_> = fs_err::read_dir(&cell.layout.cache).unwrap().collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
}

#[rstest]
fn none_canary_is_not_denied(cell: Cell) {
    let err = Sandbox::None
        .canary(&cell.layout, Path::new(HELPER))
        .unwrap_err();
    match &err {
        SandboxError::CanaryNotDenied { sandbox, path } => {
            assert_eq!(*sandbox, "none");
            assert!(path.starts_with(&cell.layout.cache), "{}", path.display());
            assert!(!path.exists(), "the canary must clean up after itself");
        }
        other => panic!("expected CanaryNotDenied, got {other}"),
    }
    assert!(err.to_string().contains("did not deny"));
}

#[rstest]
#[case::none(Sandbox::None)]
#[case::landlock(Sandbox::Landlock)]
#[case::ro_home(Sandbox::RoHome)]
#[case::ro_root(Sandbox::RoRoot)]
#[case::foreign_owner(Sandbox::ForeignOwner)]
#[case::immutable(Sandbox::Immutable)]
#[case::codex(Sandbox::Codex)]
#[case::codex_current(Sandbox::CodexCurrent)]
#[case::sandbox_runtime(Sandbox::SandboxRuntime)]
#[case::docker_ro(Sandbox::DockerReadOnly)]
#[case::seatbelt(Sandbox::Seatbelt)]
fn workspace_is_writable_and_cache_readable(#[case] sandbox: Sandbox, cell: Cell) {
    if !usable(sandbox) {
        return;
    }
    let out_file = cell.layout.workspace.join("out.txt");
    let seed = cell.layout.cache.join(SEED);
    let out = run(
        sandbox,
        &cell,
        "/bin/sh",
        &[
            &os("-c"),
            &os(r#"cat "$1" > "$2""#),
            &os("sh"),
            &seed.clone().into(),
            &out_file.clone().into(),
        ],
    );
    assert!(out.status.success());
    assert!(
        predicate::path::eq_file(&seed).eval(out_file.as_path()),
        "the copy differs from the cache file"
    );
}

#[rstest]
#[case::none(Sandbox::None)]
#[case::landlock(Sandbox::Landlock)]
#[case::ro_home(Sandbox::RoHome)]
#[case::ro_root(Sandbox::RoRoot)]
#[case::foreign_owner(Sandbox::ForeignOwner)]
#[case::immutable(Sandbox::Immutable)]
#[case::codex(Sandbox::Codex)]
#[case::codex_current(Sandbox::CodexCurrent)]
#[case::sandbox_runtime(Sandbox::SandboxRuntime)]
#[case::docker_ro(Sandbox::DockerReadOnly)]
fn tmpdir_is_writable_exactly_when_the_policy_says(#[case] sandbox: Sandbox, cell: Cell) {
    if !usable(sandbox) {
        return;
    }
    sandbox.prepare(&cell.layout).unwrap();
    let result = sandbox.probe_write(&cell.layout, Path::new(HELPER), &cell.layout.tmp);
    if sandbox.tmp_writable() {
        assert!(
            matches!(result, Err(SandboxError::CanaryNotDenied { .. })),
            "{result:?}"
        );
    } else {
        assert_eq!(result.unwrap(), Denial::Erofs);
    }
}

#[rstest]
#[case::landlock(Sandbox::Landlock)]
#[case::ro_home(Sandbox::RoHome)]
#[case::ro_root(Sandbox::RoRoot)]
#[case::codex(Sandbox::Codex)]
#[case::codex_current(Sandbox::CodexCurrent)]
#[case::sandbox_runtime(Sandbox::SandboxRuntime)]
#[case::docker_ro(Sandbox::DockerReadOnly)]
fn home_outside_the_cache_is_denied(#[case] sandbox: Sandbox, cell: Cell) {
    if !usable(sandbox) {
        return;
    }
    for dir in [cell.layout.home.clone(), cell.layout.home.join("other")] {
        let denial = sandbox
            .probe_write(&cell.layout, Path::new(HELPER), &dir)
            .unwrap();
        assert_eq!(Some(denial), sandbox.denial(), "{}", dir.display());
    }
    // The same thing through a shell, as a program sees it.
    let target = cell.layout.home.join("other/file");
    let out = run(
        sandbox,
        &cell,
        "/bin/sh",
        &[
            &os("-c"),
            &os(r#"echo x > "$1""#),
            &os("sh"),
            &target.clone().into(),
        ],
    );
    assert!(!out.status.success());
    assert!(!target.exists());
}

#[rstest]
#[case::none(Sandbox::None)]
#[case::landlock(Sandbox::Landlock)]
#[case::ro_home(Sandbox::RoHome)]
#[case::ro_root(Sandbox::RoRoot)]
#[case::foreign_owner(Sandbox::ForeignOwner)]
fn environment_and_cwd_are_exactly_the_invocations(#[case] sandbox: Sandbox, cell: Cell) {
    if !usable(sandbox) {
        return;
    }
    sandbox.prepare(&cell.layout).unwrap();
    // The host environment must not leak in: the test process has
    // CARGO_* variables; none may show up inside.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let inv = Invocation {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), "pwd; /usr/bin/env".into()],
        env: vec![("UVFIX_PROBE".into(), "a b=c".into())],
        cwd: cell.layout.workspace.clone(),
    };
    let out = sandbox
        .command(&cell.layout, Path::new(HELPER), &inv)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some(cell.layout.workspace.to_str().unwrap()));
    // dash exports PWD itself; everything else must come from the invocation (+ PATH).
    let mut names: Vec<&str> = lines
        .map(|l| l.split_once('=').map_or(l, |(k, _)| k))
        .filter(|k| *k != "PWD")
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["PATH", "UVFIX_PROBE"], "{stdout}");
    assert!(stdout.contains("UVFIX_PROBE=a b=c"));
}

#[rstest]
#[case::none(Sandbox::None)]
#[case::landlock(Sandbox::Landlock)]
#[case::ro_home(Sandbox::RoHome)]
#[case::ro_root(Sandbox::RoRoot)]
#[case::foreign_owner(Sandbox::ForeignOwner)]
#[case::codex(Sandbox::Codex)]
#[case::codex_current(Sandbox::CodexCurrent)]
#[case::sandbox_runtime(Sandbox::SandboxRuntime)]
#[case::docker_ro(Sandbox::DockerReadOnly)]
fn network_is_taken_away(#[case] sandbox: Sandbox, cell: Cell) {
    if !usable(sandbox) {
        return;
    }
    let python = Path::new("/usr/bin/python3");
    if !python.exists() {
        eprintln!("SKIPPED: /usr/bin/python3 is needed to try a TCP connection");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let script =
        "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)";
    let out = run(
        sandbox,
        &cell,
        "/usr/bin/python3",
        &[&os("-c"), &os(script), &os(port)],
    );
    // Only the baseline, and foreign-owner as a plain user (no way to unshare), stay online.
    let online = sandbox == Sandbox::None || (sandbox == Sandbox::ForeignOwner && !is_root());
    assert_eq!(out.status.success(), online);
}

#[rstest]
fn foreign_owner_runs_as_nobody_and_leaves_the_cache_root_owned(cell: Cell) {
    use std::os::unix::fs::MetadataExt;
    if !is_root() {
        eprintln!(
            "SKIPPED: foreign-owner's uid switch needs root (as a user it strips write bits instead)"
        );
        return;
    }
    if !usable(Sandbox::ForeignOwner) {
        return;
    }
    let out = run(Sandbox::ForeignOwner, &cell, "/usr/bin/id", &[&os("-u")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "65534");
    assert_eq!(fs_err::metadata(&cell.layout.cache).unwrap().uid(), 0);
    assert_eq!(
        fs_err::metadata(&cell.layout.workspace).unwrap().uid(),
        65534
    );
    // Idempotent.
    Sandbox::ForeignOwner.prepare(&cell.layout).unwrap();
    Sandbox::ForeignOwner.prepare(&cell.layout).unwrap();
    assert_eq!(
        Sandbox::ForeignOwner
            .canary(&cell.layout, Path::new(HELPER))
            .unwrap(),
        Denial::Eacces
    );
}

#[rstest]
fn foreign_owner_prepare_leaves_cache_modes_alone(cell: Cell) {
    use std::os::unix::fs::PermissionsExt;
    if !is_root() {
        eprintln!(
            "SKIPPED: as a user foreign-owner strips write bits on purpose; this is root's mode"
        );
        return;
    }
    // uv's lock file is 0666; a cache state may chmod it 000. prepare() must not "fix" either.
    let lock = cell.layout.cache.join(".lock");
    let locked = cell.layout.cache.join("locked");
    for (file, mode) in [(&lock, 0o666), (&locked, 0o000)] {
        fs_err::write(file, "").unwrap();
        fs_err::set_permissions(file, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    Sandbox::ForeignOwner.prepare(&cell.layout).unwrap();
    for (file, mode) in [(&lock, 0o666), (&locked, 0o000)] {
        let got = fs_err::metadata(file).unwrap().permissions().mode() & 0o7777;
        assert_eq!(got, mode, "{}", file.display());
    }
    // The 0666 file is writable by uid 65534, the directory still is not.
    let out = run(
        Sandbox::ForeignOwner,
        &cell,
        "/bin/sh",
        &[
            &os("-c"),
            &os(r#"echo x >> "$1""#),
            &os("sh"),
            &lock.clone().into(),
        ],
    );
    assert!(out.status.success());
    assert_eq!(
        Sandbox::ForeignOwner
            .canary(&cell.layout, Path::new(HELPER))
            .unwrap(),
        Denial::Eacces
    );
}

#[rstest]
fn foreign_owner_stages_an_unreachable_helper(cell: Cell) {
    if !is_root() {
        eprintln!("SKIPPED: staging is only needed (and only done) as root");
        return;
    }
    if !usable(Sandbox::ForeignOwner) {
        return;
    }
    // A copy of the helper behind a 0700 directory: uid 65534 cannot execute it in place.
    use std::os::unix::fs::PermissionsExt;
    let private = TempDir::new().unwrap();
    fs_err::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let hidden = private.path().join("uvfix-sandbox-helper");
    fs_err::copy(HELPER, &hidden).unwrap();
    let staged = uvfix_sandbox::foreign::stage_executable(&hidden).unwrap();
    assert_ne!(staged, hidden);
    Sandbox::ForeignOwner.prepare(&cell.layout).unwrap();
    assert_eq!(
        Sandbox::ForeignOwner.canary(&cell.layout, &hidden).unwrap(),
        Denial::Eacces
    );
    // Each fresh copy has a new mtime, hence its own staged copy: do not let them pile up.
    fs_err::remove_file(staged).unwrap();
}

#[test]
fn unavailable_sandboxes_say_why() {
    let mut unavailable = 0;
    for sandbox in Sandbox::ALL {
        if let Availability::Unavailable(reason) = sandbox.availability() {
            unavailable += 1;
            assert!(reason.len() > 10, "{sandbox}: {reason:?}");
        }
    }
    if !cfg!(target_os = "macos") {
        assert!(unavailable >= 1);
        let Availability::Unavailable(reason) = Sandbox::Seatbelt.availability() else {
            panic!("seatbelt cannot be available off macOS");
        };
        assert!(reason.contains("macOS"), "{reason}");
    }
    assert_eq!(Sandbox::None.availability(), Availability::Available);
}

#[test]
fn landlock_helper_never_runs_the_program_unsandboxed() {
    // A writable root that does not exist makes the ruleset fail: exit 125, program not run.
    let out = std::process::Command::new(HELPER)
        .args([
            "landlock",
            "--rw",
            "/nonexistent/uvfix",
            "--",
            "/bin/echo",
            "ran",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(out.stdout.is_empty());
    // Usage errors and a missing program have their own exit codes.
    let usage = std::process::Command::new(HELPER)
        .arg("landlock")
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(125));
    if Sandbox::Landlock.availability().is_available() {
        let missing = std::process::Command::new(HELPER)
            .args(["landlock", "--rw", "/dev", "--", "/nonexistent/prog"])
            .output()
            .unwrap();
        assert_eq!(missing.status.code(), Some(127));
    }
}

#[test]
fn canary_reports_a_missing_directory_as_a_failure_not_a_denial() {
    let dir = TempDir::new().unwrap();
    let layout = Layout {
        home: dir.path().into(),
        cache: dir.path().join("missing"),
        workspace: dir.path().into(),
        tmp: dir.path().into(),
    };
    let err = Sandbox::None
        .canary(&layout, Path::new(HELPER))
        .unwrap_err();
    assert!(
        matches!(&err, SandboxError::CanaryFailed { detail, .. } if detail.contains("ENOENT")),
        "{err}"
    );
}
