//! `cargo xtask test-patched`: the unit tests of the patched crates (upstream's and the
//! stack's), run as an ordinary user.
//!
//! The stack's tests make a cache read-only with permission bits and check that uv copes, as
//! upstream's own tests do (`ReadOnlyDirectoryGuard`); they assume what uv's CI has, a user
//! that permission bits bind, and fail loudly otherwise. Root is not bound by them, so as
//! root every test binary runs as uid/gid 65534 through `setpriv` (util-linux), from a
//! world-readable copy. As any other user the binaries run as they are.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use cargo_metadata::Message;
use uvfix_pipeline::builder::{self, Variant};
use uvfix_pipeline::{Manifest, Paths, fetch};
use uvfix_upstream::user::{as_nobody, give_to_nobody, is_root, open_up, reachable_by_others};

/// One unit-test executable and the crate it tests.
struct TestBinary {
    package: String,
    exe: PathBuf,
    crate_dir: PathBuf,
}

pub(crate) fn run(paths: &Paths) -> Result<()> {
    builder::ensure(paths, &[Variant::Patched])?;
    let manifest = Manifest::load(&paths.patches())?;
    let binaries = build(paths, &manifest)?;
    let root = is_root();
    let stage = Stage::new(root)?;
    let mut failed = Vec::new();
    for binary in &binaries {
        eprintln!(
            "uvfix: unit tests of {} ({})",
            binary.package,
            if root { "as uid 65534" } else { "as this user" }
        );
        let status = stage
            .command(binary, root)?
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("running {}", binary.exe.display()))?;
        if !status.success() {
            failed.push(binary.package.clone());
        }
    }
    if !failed.is_empty() {
        bail!(
            "unit tests of the patched crates failed: {}",
            failed.join(", ")
        );
    }
    Ok(())
}

/// Pass cargo's stderr through, line by line, without its notes that the members' own
/// `resolver` keys are ignored. Those keys are in the manifests cargo wrote when uv published
/// the crates; the members are the build's trees (a symlink, so both builds share artifacts)
/// and stay as published, and cargo has no switch for that warning. Everything else, real
/// warnings and errors included, reaches the terminal as cargo wrote it.
fn relay_without_resolver_notes(stderr: impl std::io::Read) -> std::io::Result<()> {
    use std::io::{BufRead, Write};
    let mut out = std::io::stderr().lock();
    let mut in_note = false;
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line?;
        if !resolver_note(&line, &mut in_note) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

/// Whether `line` belongs to a "resolver for the non root package will be ignored" note: its
/// first line and the `package:`/`workspace:` lines that follow it.
fn resolver_note(line: &str, in_note: &mut bool) -> bool {
    if line.starts_with("warning: resolver for the non root package will be ignored") {
        *in_note = true;
    } else if !(*in_note && (line.starts_with("package:") || line.starts_with("workspace:"))) {
        *in_note = false;
    }
    *in_note
}

/// Build the unit tests of every patched crate but `uv` itself, whose library tests are
/// uv's CLI suite: it needs a network and far more than this fixture provides. They build in
/// their own workspace, so the build's lock stays as uv shipped it.
fn build(paths: &Paths, manifest: &Manifest) -> Result<Vec<TestBinary>> {
    let crates_dir = paths.crates_dir(Variant::Patched);
    let workspace = builder::prepare_unit_tests(paths, Variant::Patched)?;
    let mut command = fetch::cargo_with(manifest.uv.toolchain.as_deref());
    command
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", paths.cargo_target())
        .args([
            "test",
            "--lib",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for krate in manifest.crates.iter().filter(|c| c.name != "uv") {
        command.args(["--package", &krate.name]);
    }
    let mut child = command.spawn().context("running cargo test --no-run")?;
    let stderr = child.stderr.take().expect("piped");
    let relay = std::thread::spawn(move || relay_without_resolver_notes(stderr));
    let reader = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let mut binaries = Vec::new();
    for message in Message::parse_stream(reader) {
        if let Message::CompilerArtifact(artifact) = message?
            && let Some(exe) = artifact.executable.filter(|_| artifact.profile.test)
        {
            let package = artifact.target.name.replace('_', "-");
            binaries.push(TestBinary {
                crate_dir: crates_dir.join(&package),
                package,
                exe: exe.into_std_path_buf(),
            });
        }
    }
    let status = child.wait()?;
    relay.join().expect("the stderr relay does not panic")?;
    if !status.success() {
        bail!("building the unit tests of the patched crates failed");
    }
    if binaries.is_empty() {
        bail!("cargo built no unit-test binary for the patched crates");
    }
    Ok(binaries)
}

/// A world-readable directory holding copies of the test binaries, and a home directory
/// (also `TMPDIR`) that belongs to the user the tests run as.
struct Stage {
    dir: tempfile::TempDir,
    home: PathBuf,
}

impl Stage {
    fn new(root: bool) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("uvfix-unit-").tempdir()?;
        let home = dir.path().join("home");
        fs_err::create_dir(&home)?;
        if root {
            open_up(dir.path())?;
            give_to_nobody(&home)?;
        }
        Ok(Self { dir, home })
    }

    fn command(&self, binary: &TestBinary, root: bool) -> Result<Command> {
        let mut command = if root {
            let staged = self
                .dir
                .path()
                .join(binary.exe.file_name().expect("a file"));
            fs_err::copy(&binary.exe, &staged)?;
            open_up(&staged)?;
            as_nobody(staged)
        } else {
            Command::new(&binary.exe)
        };
        // Tests run from their crate, as under `cargo test`, where that user may enter it.
        let cwd = if !root || reachable_by_others(&binary.crate_dir) {
            binary.crate_dir.clone()
        } else {
            self.dir.path().to_path_buf()
        };
        command
            .current_dir(cwd)
            .env("CARGO_MANIFEST_DIR", &binary.crate_dir)
            .env("HOME", &self.home)
            .env("TMPDIR", &self.home);
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    use super::resolver_note;

    #[test]
    fn drops_only_the_resolver_notes() {
        let stderr = "\
warning: resolver for the non root package will be ignored, specify resolver at the workspace root:
package:   /b/unit-tests/crates-patched/uv-fs/Cargo.toml
workspace: /b/unit-tests/Cargo.toml
   Compiling uv-fs v0.0.72
warning: unused variable: `package`
package: not part of a note
warning: resolver for the non root package will be ignored, specify resolver at the workspace root:
package:   /b/unit-tests/crates-patched/uv-cache/Cargo.toml
workspace: /b/unit-tests/Cargo.toml
error: could not compile `uv-cache`";
        let mut in_note = false;
        let kept: Vec<&str> = stderr
            .lines()
            .filter(|line| !resolver_note(line, &mut in_note))
            .collect();
        assert_eq!(
            kept,
            [
                "   Compiling uv-fs v0.0.72",
                "warning: unused variable: `package`",
                "package: not part of a note",
                "error: could not compile `uv-cache`",
            ]
        );
    }
}
