//! Every sandbox this machine provides, exercised for real: the canary, the writable and the
//! denied places, reading the cache, the environment, the network.
//!
//! A sandbox that is unavailable here is skipped with its reason printed on stderr (shown by
//! `cargo nextest run --no-capture`); set `UVFIX_REQUIRE_SANDBOXES=landlock,ro-home,…` (or `all`)
//! to turn such a skip into a failure, e.g. in CI where they are known to exist.

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Output, Stdio};

use assert_fs::TempDir;
use assert_fs::prelude::*;
use predicates::prelude::*;
use uvfix_sandbox::owner::{self, Probe, Seen};
use uvfix_sandbox::trial::{self, Case, Failed, case, first_skip};
use uvfix_sandbox::{
    Availability, Denial, Errno, Invocation, Layout, Sandbox, SandboxError, is_root,
};

const HELPER: &str = env!("CARGO_BIN_EXE_uvfix-sandbox");
const SEED: &str = "seed.txt";

type SandboxTest = fn(Sandbox, &Cell) -> Result<(), Failed>;
type CellTest = fn(&Cell) -> Result<(), Failed>;
type PlainTest = fn() -> Result<(), Failed>;
/// A property, and the sandboxes it holds in.
type PerSandbox = (&'static str, SandboxTest, fn(Sandbox) -> bool);

/// Which sandboxes each property is checked in: the one list of cases.
fn sandbox_tests() -> Vec<PerSandbox> {
    use Sandbox as S;
    vec![
        (
            "canary_is_denied_with_the_policy_errno",
            canary_is_denied_with_the_policy_errno,
            |s| s != S::None,
        ),
        (
            "the_command_behind_the_canary_runs_once_it_was_denied",
            the_command_behind_the_canary_runs_once_it_was_denied,
            |s| s != S::None,
        ),
        (
            "workspace_is_writable_and_cache_readable",
            workspace_is_writable_and_cache_readable,
            |_| true,
        ),
        (
            "tmpdir_is_writable_exactly_when_the_policy_says",
            tmpdir_is_writable_exactly_when_the_policy_says,
            |s| !matches!(s, S::DockerReadOnly | S::Seatbelt),
        ),
        // The policies that deny all of `$HOME`, not only the cache.
        (
            "home_outside_the_cache_is_denied",
            home_outside_the_cache_is_denied,
            |s| {
                matches!(
                    s,
                    S::Landlock | S::RoHome | S::RoRoot | S::Codex | S::SandboxRuntime
                )
            },
        ),
        // External tools add variables of their own (see the crate docs).
        (
            "environment_and_cwd_are_exactly_the_invocations",
            environment_and_cwd_are_exactly_the_invocations,
            |s| {
                matches!(
                    s,
                    S::None | S::Landlock | S::RoHome | S::RoRoot | S::ForeignOwner
                )
            },
        ),
        // Needs /usr/bin/python3 to try a TCP connection.
        ("network_is_taken_away", network_is_taken_away, |s| {
            !matches!(s, S::Immutable | S::DockerReadOnly | S::Seatbelt)
        }),
    ]
}

/// What a test needs besides its sandbox, as a skip reason when it is missing.
fn needs(test: &str) -> Option<String> {
    let python = Path::new("/usr/bin/python3");
    (test == "network_is_taken_away" && !python.exists())
        .then(|| format!("{} is needed to try a TCP connection", python.display()))
}

fn main() -> ExitCode {
    let mut cases: Vec<Case> = Vec::new();
    for (name, test, applies) in sandbox_tests() {
        for &sandbox in Sandbox::ALL.iter().filter(|s| applies(**s)) {
            cases.push(case(
                format!("{name}/{sandbox}"),
                first_skip([sandbox.skip_reason(), needs(name)]),
                move || {
                    sandbox.usable()?;
                    test(sandbox, &cell()?)
                },
            ));
        }
    }
    let not_root = (!is_root()).then(|| "needs root".to_owned());
    let foreign = first_skip([not_root.clone(), Sandbox::ForeignOwner.skip_reason()]);
    let foreign_owner: [(&str, CellTest, _); 3] = [
        (
            "foreign_owner_runs_as_nobody_and_leaves_the_cache_root_owned",
            foreign_owner_runs_as_nobody_and_leaves_the_cache_root_owned,
            // As a user it strips write bits instead of switching uid.
            foreign.clone(),
        ),
        (
            "foreign_owner_prepare_leaves_cache_modes_alone",
            foreign_owner_prepare_leaves_cache_modes_alone,
            // As a user foreign-owner strips write bits on purpose; this is root's mode.
            not_root,
        ),
        (
            "foreign_owner_stages_an_unreachable_helper",
            foreign_owner_stages_an_unreachable_helper,
            // Staging is only needed (and only done) as root.
            foreign,
        ),
    ];
    for (name, test, skip) in foreign_owner {
        cases.push(case(name, skip, move || test(&cell()?)));
    }
    let plain: [(&str, PlainTest); 5] = [
        ("none_canary_is_not_denied", none_canary_is_not_denied),
        (
            "no_command_runs_behind_a_canary_that_was_not_denied",
            no_command_runs_behind_a_canary_that_was_not_denied,
        ),
        (
            "unavailable_sandboxes_say_why",
            unavailable_sandboxes_say_why,
        ),
        (
            "landlock_helper_never_runs_the_program_unsandboxed",
            landlock_helper_never_runs_the_program_unsandboxed,
        ),
        (
            "canary_reports_a_missing_directory_as_a_failure_not_a_denial",
            canary_reports_a_missing_directory_as_a_failure_not_a_denial,
        ),
    ];
    for (name, test) in plain {
        cases.push(case(name, None, test));
    }
    cases.push(case(
        "owner_probes_see_what_another_uid_may_do",
        (!owner::can_switch_users())
            .then(|| "needs root or passwordless sudo to give files away".to_owned()),
        owner_probes_see_what_another_uid_may_do,
    ));
    trial::run(cases)
}

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
fn cell() -> Result<Cell, Failed> {
    let dir = TempDir::new()?;
    dir.child("home/.cache/uv")
        .child(SEED)
        .write_str("cached\n")?;
    dir.child("home/other").create_dir_all()?;
    dir.child("workspace").create_dir_all()?;
    dir.child("tmp").create_dir_all()?;
    let root = dir.path().to_path_buf();
    Ok(Cell {
        layout: Layout {
            home: root.join("home"),
            cache: root.join("home/.cache/uv"),
            workspace: root.join("workspace"),
            tmp: root.join("tmp"),
        },
        _dir: dir,
    })
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

fn canary_is_denied_with_the_policy_errno(sandbox: Sandbox, cell: &Cell) -> Result<(), Failed> {
    sandbox.prepare(&cell.layout).unwrap();
    let denial = sandbox.canary(&cell.layout, Path::new(HELPER)).unwrap();
    assert_eq!(Some(denial), sandbox.denial());
    // Nothing was left behind in the cache.
    let entries: Vec<_> = fs_err::read_dir(&cell.layout.cache).unwrap().collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    Ok(())
}

/// `echo MARK` behind the canary aimed at the cache, in `sandbox`: its output, the verdict.
fn echo_behind_canary(
    sandbox: Sandbox,
    cell: &Cell,
) -> (Output, Result<uvfix_sandbox::Denial, SandboxError>, Vec<u8>) {
    sandbox.prepare(&cell.layout).expect("prepare");
    let layout = &cell.layout;
    let inv = Invocation {
        program: PathBuf::from("/bin/echo"),
        args: vec![os("ran behind the canary")],
        env: vec![
            ("HOME".into(), layout.home.clone().into()),
            ("TMPDIR".into(), layout.tmp.clone().into()),
        ],
        cwd: layout.workspace.clone(),
    };
    let (helper, wrapped) = sandbox
        .behind_canary(Path::new(HELPER), &layout.cache, &inv)
        .expect("wrapping");
    let out = sandbox
        .command(layout, &helper, &wrapped)
        .stdin(Stdio::null())
        .output()
        .expect("spawn");
    let mut output = uvfix_process::Output {
        exit_code: out.status.code(),
        stdout: out.stdout.clone(),
        stderr: out.stderr.clone(),
        ..uvfix_process::Output::default()
    };
    let verdict = sandbox.canary_verdict(layout, &layout.cache, &mut output);
    (out, verdict, output.stdout)
}

fn the_command_behind_the_canary_runs_once_it_was_denied(
    sandbox: Sandbox,
    cell: &Cell,
) -> Result<(), Failed> {
    let (out, verdict, stdout) = echo_behind_canary(sandbox, cell);
    assert_eq!(verdict.ok(), sandbox.denial(), "{out:?}");
    assert!(out.status.success(), "{out:?}");
    // The report line is taken out; what is left is the command's own output.
    assert_eq!(String::from_utf8_lossy(&stdout), "ran behind the canary\n");
    Ok(())
}

fn no_command_runs_behind_a_canary_that_was_not_denied() -> Result<(), Failed> {
    let cell = cell()?;
    let (out, verdict, stdout) = echo_behind_canary(Sandbox::None, &cell);
    assert!(
        matches!(verdict, Err(SandboxError::CanaryNotDenied { .. })),
        "{verdict:?}"
    );
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&stdout).contains("ran behind"),
        "{out:?}"
    );
    Ok(())
}

fn none_canary_is_not_denied() -> Result<(), Failed> {
    let cell = cell()?;
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
    Ok(())
}

fn workspace_is_writable_and_cache_readable(sandbox: Sandbox, cell: &Cell) -> Result<(), Failed> {
    let out_file = cell.layout.workspace.join("out.txt");
    let seed = cell.layout.cache.join(SEED);
    let out = run(
        sandbox,
        cell,
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
    Ok(())
}

fn tmpdir_is_writable_exactly_when_the_policy_says(
    sandbox: Sandbox,
    cell: &Cell,
) -> Result<(), Failed> {
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
    Ok(())
}

fn home_outside_the_cache_is_denied(sandbox: Sandbox, cell: &Cell) -> Result<(), Failed> {
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
        cell,
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
    Ok(())
}

fn environment_and_cwd_are_exactly_the_invocations(
    sandbox: Sandbox,
    cell: &Cell,
) -> Result<(), Failed> {
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
    Ok(())
}

fn network_is_taken_away(sandbox: Sandbox, cell: &Cell) -> Result<(), Failed> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let script =
        "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)";
    let out = run(
        sandbox,
        cell,
        "/usr/bin/python3",
        &[&os("-c"), &os(script), &os(port)],
    );
    // Only the baseline, and foreign-owner as a plain user (no way to unshare), stay online.
    let online = sandbox == Sandbox::None || (sandbox == Sandbox::ForeignOwner && !is_root());
    assert_eq!(out.status.success(), online);
    Ok(())
}

fn foreign_owner_runs_as_nobody_and_leaves_the_cache_root_owned(cell: &Cell) -> Result<(), Failed> {
    use std::os::unix::fs::MetadataExt;
    Sandbox::ForeignOwner.usable()?;
    let out = run(Sandbox::ForeignOwner, cell, "/usr/bin/id", &[&os("-u")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "65534");
    assert_eq!(fs_err::metadata(&cell.layout.cache).unwrap().uid(), 0);
    assert_eq!(
        fs_err::metadata(&cell.layout.workspace).unwrap().uid(),
        65534
    );
    // Idempotent.
    Sandbox::ForeignOwner.prepare(&cell.layout).unwrap();
    Sandbox::ForeignOwner.prepare(&cell.layout).unwrap();
    assert_foreign_owner_denies(cell);
    Ok(())
}

/// The canary of foreign-owner sees EACCES in `cell`'s cache.
fn assert_foreign_owner_denies(cell: &Cell) {
    let denial = Sandbox::ForeignOwner.canary(&cell.layout, Path::new(HELPER));
    assert_eq!(denial.unwrap(), Denial::Eacces);
}

fn foreign_owner_prepare_leaves_cache_modes_alone(cell: &Cell) -> Result<(), Failed> {
    use std::os::unix::fs::PermissionsExt;
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
        cell,
        "/bin/sh",
        &[
            &os("-c"),
            &os(r#"echo x >> "$1""#),
            &os("sh"),
            &lock.clone().into(),
        ],
    );
    assert!(out.status.success());
    assert_foreign_owner_denies(cell);
    Ok(())
}

fn foreign_owner_stages_an_unreachable_helper(cell: &Cell) -> Result<(), Failed> {
    Sandbox::ForeignOwner.usable()?;
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
    Ok(())
}

fn unavailable_sandboxes_say_why() -> Result<(), Failed> {
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
    Ok(())
}

fn landlock_helper_never_runs_the_program_unsandboxed() -> Result<(), Failed> {
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
    if Sandbox::Landlock.usable().is_ok() {
        let missing = std::process::Command::new(HELPER)
            .args(["landlock", "--rw", "/dev", "--", "/nonexistent/prog"])
            .output()
            .unwrap();
        assert_eq!(missing.status.code(), Some(127));
    }
    Ok(())
}

fn canary_reports_a_missing_directory_as_a_failure_not_a_denial() -> Result<(), Failed> {
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
    Ok(())
}

/// The probes a cache state's proof rests on: a root-owned directory and files are closed to
/// an unprivileged uid (as root: 65534; as a user with sudo: that user), the directory opens
/// once it is given to that uid, and a 0644 file stays readable.
fn owner_probes_see_what_another_uid_may_do() -> Result<(), Failed> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().tempdir_in("/tmp")?;
    fs_err::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let piece = dir.path().join("bucket");
    fs_err::create_dir(&piece)?;
    let (lock, marker) = (piece.join(".lock"), piece.join("CACHEDIR.TAG"));
    fs_err::write(&lock, "")?;
    fs_err::set_permissions(&lock, std::fs::Permissions::from_mode(0o600))?;
    fs_err::write(&marker, "Signature")?;
    let (prober, group) = if is_root() {
        (uvfix_sandbox::foreign::UID, uvfix_sandbox::foreign::UID)
    } else {
        (owner::my_uid(), owner::my_gid())
    };
    owner::give(&piece, 0, 0)?;
    let helper = Path::new(HELPER);
    let denied = Ok(Seen::Denied(Errno::EACCES));
    assert_eq!(
        owner::probe_as(prober, group, helper, Probe::Create(&piece)),
        denied
    );
    assert_eq!(
        owner::probe_as(prober, group, helper, Probe::OpenRead(&lock)),
        denied
    );
    assert_eq!(
        owner::probe_as(prober, group, helper, Probe::OpenWrite(&marker)),
        denied
    );
    assert_eq!(
        owner::probe_as(prober, group, helper, Probe::OpenRead(&marker)),
        Ok(Seen::Allowed)
    );
    owner::give(&piece, prober, group)?;
    assert_eq!(
        owner::probe_as(prober, group, helper, Probe::Create(&piece)),
        Ok(Seen::Allowed)
    );
    assert!(
        fs_err::read_dir(&piece)?.count() == 2,
        "the probes leave nothing behind"
    );
    owner::give(&piece, owner::my_uid(), owner::my_gid())?;
    Ok(())
}
