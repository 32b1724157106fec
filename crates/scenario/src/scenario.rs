//! The scenarios S1..S10 as data: workspace setup, unsandboxed warm steps, sandboxed steps and
//! the line their stdout must contain.
//!
//! Every step runs with the workspace as cwd and the environment of [`uv_env`]. Arguments are
//! a tiny template language ([`Arg`]) so that the same data works in every cell's temp root.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use strum::{Display, EnumString, IntoStaticStr, VariantArray};
use uvfix_sandbox::{Invocation, Layout};

use crate::wheel::fixture;

/// The scenario's name is its variant's: `S1` … `S10` (parsed case-insensitively).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[derive(Serialize, Deserialize)]
#[derive(Display, EnumString, IntoStaticStr, VariantArray)]
#[strum(ascii_case_insensitive)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ScenarioId {
    S1,
    S2,
    S3,
    S4,
    S5,
    S6,
    S7,
    S8,
    S9,
    S10,
}

impl ScenarioId {
    pub const ALL: &'static [ScenarioId] = <ScenarioId as strum::VariantArray>::VARIANTS;

    pub fn name(self) -> &'static str {
        self.into()
    }

    pub fn spec(self) -> Scenario {
        scenario(self)
    }
}

/// What a step executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// The `uv` under test.
    Uv,
    /// The `uvx` next to it.
    Uvx,
    /// `<workspace>/.venv/bin/python`: checks an environment without going through uv.
    VenvPython,
}

/// One argument; `FindLinks` expands to the cell's wheel directory, `OtherPython` to the
/// interpreter of [`Scenario::other_python`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Lit(String),
    FindLinks,
    OtherPython,
}

/// Where [`Scenario::other_python`] puts its interpreter, below the workspace.
pub const OTHER_PYTHON: &str = "other-python/bin/python3";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub program: Program,
    pub args: Vec<Arg>,
}

/// Unsandboxed preparation after the workspace is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarmStep {
    /// Run with the same uv and a writable cache; must succeed.
    Run(Step),
    /// Delete `<workspace>/.venv` so the sandboxed step has to build one.
    RemoveVenv,
}

/// What the workspace contains before warming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// Nothing: "outside any project".
    Empty,
    /// `pyproject.toml` depending on [`fixture::DEP`], find-links = the wheel dir, no index.
    Project,
    /// `script.py` with PEP 723 inline metadata depending on [`fixture::DEP`].
    Script,
    /// A project that is a package of its own ([`LOCAL_MODULE`]), built by an in-tree build
    /// backend without requirements ([`BACKEND_NAME`]), so that building it needs no index.
    LocalProject,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub id: ScenarioId,
    pub title: &'static str,
    pub setup: Setup,
    pub warm: Vec<WarmStep>,
    /// Run in order inside the sandbox; stop at the first non-zero exit.
    pub sandboxed: Vec<Step>,
    /// A line the last sandboxed step's stdout must contain (compared trimmed).
    pub stdout_line: String,
    /// The workspace gets a second interpreter ([`OTHER_PYTHON`]) that the warm steps never
    /// use: environments cached for the first one do not fit it (astral-sh/uv#16820's
    /// "another user, another Python").
    pub other_python: bool,
}

fn lit(args: &[&str]) -> Vec<Arg> {
    args.iter().map(|a| Arg::Lit((*a).to_owned())).collect()
}

fn uv(args: &[&str]) -> Step {
    Step {
        program: Program::Uv,
        args: lit(args),
    }
}

/// `uv <before…> --no-index --find-links <wheels> <after…>`
fn uv_fl(program: Program, before: &[&str], after: &[&str]) -> Step {
    let mut args = lit(before);
    args.push(Arg::Lit("--no-index".into()));
    args.push(Arg::Lit("--find-links".into()));
    args.push(Arg::FindLinks);
    args.extend(lit(after));
    Step { program, args }
}

fn venv_python(code: &str) -> Step {
    Step {
        program: Program::VenvPython,
        args: lit(&["-c", code]),
    }
}

/// `import <module>; print(<module>.VALUE)`
fn import_print(module: &str) -> String {
    format!("import {module}; print({module}.VALUE)")
}

/// The scenario table.
pub fn scenario(id: ScenarioId) -> Scenario {
    use fixture::*;
    let import_dep = import_print(DEP_MODULE);
    match id {
        ScenarioId::S1 => Scenario {
            id,
            title: "uv run python3 outside any project",
            setup: Setup::Empty,
            warm: vec![WarmStep::Run(uv(&[
                "run",
                "python3",
                "-c",
                "print(\"hello world\")",
            ]))],
            sandboxed: vec![uv(&["run", "python3", "-c", "print(\"hello world\")"])],
            stdout_line: "hello world".into(),
            other_python: false,
        },
        ScenarioId::S2 => Scenario {
            id,
            title: "uv run in a synced project",
            setup: Setup::Project,
            warm: vec![WarmStep::Run(uv(&["sync"]))],
            sandboxed: vec![uv(&["run", "python", "-c", &import_dep])],
            stdout_line: DEP_VALUE.into(),
            other_python: false,
        },
        ScenarioId::S3 => Scenario {
            id,
            title: "uv sync --offline into a fresh .venv",
            setup: Setup::Project,
            warm: vec![WarmStep::Run(uv(&["sync"])), WarmStep::RemoveVenv],
            sandboxed: vec![uv(&["sync", "--offline"]), venv_python(&import_dep)],
            stdout_line: DEP_VALUE.into(),
            other_python: false,
        },
        ScenarioId::S4 => {
            let step = uv_fl(Program::Uvx, &["--offline"], &[TOOL]);
            Scenario {
                id,
                title: "uvx --offline of a tool run before",
                setup: Setup::Empty,
                warm: vec![WarmStep::Run(step.clone())],
                sandboxed: vec![step],
                stdout_line: TOOL_OUTPUT.into(),
                other_python: false,
            }
        }
        ScenarioId::S5 => {
            let code = format!("import {DEP_MODULE}, {EXTRA_MODULE}; print({EXTRA_MODULE}.VALUE)");
            let step = uv_fl(
                Program::Uv,
                &["run", "--offline"],
                &["--with", EXTRA, "python", "-c", &code],
            );
            Scenario {
                id,
                title: "uv run --offline --with a cached package",
                setup: Setup::Empty,
                warm: vec![WarmStep::Run(step.clone())],
                sandboxed: vec![step],
                stdout_line: EXTRA_VALUE.into(),
                other_python: false,
            }
        }
        ScenarioId::S6 => {
            let step = uv(&["run", "--offline", SCRIPT_NAME]);
            Scenario {
                id,
                title: "uv run --offline of a PEP 723 script",
                setup: Setup::Script,
                warm: vec![WarmStep::Run(step.clone())],
                sandboxed: vec![step],
                stdout_line: format!("script: {DEP_VALUE}"),
                other_python: false,
            }
        }
        ScenarioId::S7 => {
            let install = |offline: bool| {
                let before: &[&str] = if offline {
                    &["pip", "install", "--offline", "--python", ".venv"]
                } else {
                    &["pip", "install", "--python", ".venv"]
                };
                uv_fl(Program::Uv, before, &[DEP])
            };
            Scenario {
                id,
                title: "uv pip install --offline into a fresh venv",
                setup: Setup::Empty,
                warm: vec![
                    WarmStep::Run(uv(&["venv"])),
                    WarmStep::Run(install(false)),
                    WarmStep::RemoveVenv,
                    WarmStep::Run(uv(&["venv"])),
                ],
                sandboxed: vec![install(true), venv_python(&import_dep)],
                stdout_line: DEP_VALUE.into(),
                other_python: false,
            }
        }
        ScenarioId::S8 => {
            let run = |python: bool| {
                let mut step = uv_fl(Program::Uvx, &["--offline"], &[TOOL]);
                if python {
                    step.args
                        .splice(1..1, [Arg::Lit("--python".into()), Arg::OtherPython]);
                }
                step
            };
            Scenario {
                id,
                title: "uvx --offline of a cached tool with another interpreter",
                setup: Setup::Empty,
                warm: vec![WarmStep::Run(run(false))],
                sandboxed: vec![run(true)],
                stdout_line: TOOL_OUTPUT.into(),
                other_python: true,
            }
        }
        ScenarioId::S9 => Scenario {
            id,
            title: "uv run --offline of a PEP 723 script with another interpreter",
            setup: Setup::Script,
            warm: vec![WarmStep::Run(uv(&["run", "--offline", SCRIPT_NAME]))],
            sandboxed: vec![Step {
                program: Program::Uv,
                args: vec![
                    Arg::Lit("run".into()),
                    Arg::Lit("--offline".into()),
                    Arg::Lit("--python".into()),
                    Arg::OtherPython,
                    Arg::Lit(SCRIPT_NAME.into()),
                ],
            }],
            stdout_line: format!("script: {DEP_VALUE}"),
            other_python: true,
        },
        // A fresh clone, or a copied project: the cache holds its dependencies but not its
        // own (editable) build, which `uv run` makes and stores in `sdists-v9/editable/`.
        ScenarioId::S10 => Scenario {
            id,
            title: "uv run in a project whose own build the cache does not hold",
            setup: Setup::LocalProject,
            warm: vec![WarmStep::Run(uv(&["sync", "--no-install-project"]))],
            sandboxed: vec![uv(&[
                "run",
                "--offline",
                "python",
                "-c",
                &import_print(LOCAL_MODULE),
            ])],
            stdout_line: LOCAL_VALUE.into(),
            other_python: false,
        },
    }
}

/// The import package of [`Setup::LocalProject`], and the value it prints.
pub const LOCAL_MODULE: &str = "uvfix_local";
pub const LOCAL_VALUE: &str = "local build ok";
/// The in-tree build backend of [`Setup::LocalProject`] (`<workspace>/uvfix_backend.py`).
pub const BACKEND_NAME: &str = "uvfix_backend";

/// File name of the PEP 723 script in [`Setup::Script`] workspaces.
pub const SCRIPT_NAME: &str = "script.py";

/// Everything needed to turn scenario data into concrete commands for one cell.
#[derive(Debug, Clone)]
pub struct Ctx<'a> {
    pub layout: &'a Layout,
    /// The find-links directory with the fixture wheels.
    pub wheels: &'a Path,
    pub uv: &'a Path,
    pub uvx: &'a Path,
    pub python: &'a Path,
}

/// The complete environment of every uv call. HOME puts the cache at its default
/// `~/.cache/uv` (no `UV_CACHE_DIR`, no `XDG_*`: the real-user case); `UV_PYTHON` pins the
/// interpreter (see [`crate::python`]); downloads off and no progress bars keep output stable.
pub fn uv_env(ctx: &Ctx<'_>) -> Vec<(OsString, OsString)> {
    let uv_dir = ctx.uv.parent().unwrap_or(Path::new("/"));
    let mut path = OsString::from(uv_dir);
    path.push(":/usr/bin:/bin");
    vec![
        ("HOME".into(), ctx.layout.home.clone().into()),
        ("TMPDIR".into(), ctx.layout.tmp.clone().into()),
        ("UV_PYTHON".into(), ctx.python.into()),
        ("UV_PYTHON_DOWNLOADS".into(), "never".into()),
        ("UV_NO_PROGRESS".into(), "1".into()),
        ("PATH".into(), path),
    ]
}

impl Step {
    pub fn program_path(&self, ctx: &Ctx<'_>) -> PathBuf {
        match self.program {
            Program::Uv => ctx.uv.to_owned(),
            Program::Uvx => ctx.uvx.to_owned(),
            Program::VenvPython => ctx.layout.workspace.join(".venv/bin/python"),
        }
    }

    pub fn invocation(&self, ctx: &Ctx<'_>) -> Invocation {
        Invocation {
            program: self.program_path(ctx),
            args: self
                .args
                .iter()
                .map(|a| match a {
                    Arg::Lit(s) => OsString::from(s),
                    Arg::FindLinks => ctx.wheels.as_os_str().to_owned(),
                    Arg::OtherPython => ctx.layout.workspace.join(OTHER_PYTHON).into(),
                })
                .collect(),
            env: uv_env(ctx),
            cwd: ctx.layout.workspace.clone(),
        }
    }

    /// For logs: `uv run --offline …` with the template left unexpanded.
    pub fn display(&self) -> String {
        let mut s = String::from(match self.program {
            Program::Uv => "uv",
            Program::Uvx => "uvx",
            Program::VenvPython => ".venv/bin/python",
        });
        for a in &self.args {
            s.push(' ');
            match a {
                Arg::Lit(l) if l.contains([' ', '\'', '"', ';']) => s.push_str(&format!("'{l}'")),
                Arg::Lit(l) => s.push_str(l),
                Arg::FindLinks => s.push_str("<wheels>"),
                Arg::OtherPython => s.push_str("<other-python>"),
            }
        }
        s
    }
}

/// Make `dest` (`<prefix>/bin/python3`) an interpreter of its own: a copy of `python`'s
/// executable under a new prefix, with the standard library linked in. uv sees another
/// interpreter (another path, another `sys.prefix`), as when a cache warmed by one user is
/// used by another whose Python differs.
fn other_python(python: &Path, dest: &Path) -> std::io::Result<()> {
    let out = std::process::Command::new(python)
        .args([
            "-I",
            "-c",
            "import sys, sysconfig; print(sysconfig.get_path('stdlib'))",
        ])
        .output()?;
    let stdlib = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stdlib = Path::new(&stdlib);
    let (Some(name), true) = (stdlib.file_name(), out.status.success()) else {
        return Err(std::io::Error::other(format!(
            "{} did not name its standard library: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    };
    let bin = dest.parent().expect("<prefix>/bin/python3");
    let prefix = bin.parent().expect("<prefix>/bin");
    fs_err::create_dir_all(bin)?;
    fs_err::create_dir_all(prefix.join("lib"))?;
    // `copy` follows the symlinks of `/usr/bin/python3` to the executable itself.
    fs_err::copy(python, dest)?;
    fs_err::os::unix::fs::symlink(stdlib, prefix.join("lib").join(name))
}

/// A TOML string (paths here are plain, but be correct anyway).
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// `pyproject.toml` of [`Setup::Project`].
pub fn pyproject_toml(wheels: &Path) -> String {
    format!(
        r#"[project]
name = "uvfix-workspace"
version = "0.1.0"
requires-python = ">=3.8"
dependencies = ["{dep}"]

[tool.uv]
# A virtual project: nothing to build, only the dependency to install.
package = false
find-links = [{wheels}]
no-index = true
"#,
        dep = fixture::DEP,
        wheels = toml_str(&wheels.to_string_lossy()),
    )
}

/// `pyproject.toml` of [`Setup::LocalProject`]: a package, built by [`BACKEND_PY`].
pub fn local_pyproject_toml(wheels: &Path) -> String {
    format!(
        r#"[project]
name = "uvfix-local"
version = "0.1.0"
requires-python = ">=3.8"
dependencies = ["{dep}"]

[build-system]
requires = []
build-backend = "{backend}"
backend-path = ["."]

[tool.uv]
find-links = [{wheels}]
no-index = true
"#,
        dep = fixture::DEP,
        backend = BACKEND_NAME,
        wheels = toml_str(&wheels.to_string_lossy()),
    )
}

/// A PEP 517 / PEP 660 build backend without requirements: building the project needs no
/// index (setuptools or hatchling would have to be installed into the build environment).
/// The editable wheel is a `.pth` file pointing at the project.
pub const BACKEND_PY: &str = r#"import base64, hashlib, os, zipfile

NAME, VERSION, MODULE = "uvfix_local", "0.1.0", "uvfix_local"
DIST_INFO = f"{NAME}-{VERSION}.dist-info"
HERE = os.path.dirname(os.path.abspath(__file__))


def _wheel(directory, files):
    files = dict(files)
    files[f"{DIST_INFO}/METADATA"] = f"Metadata-Version: 2.1\nName: uvfix-local\nVersion: {VERSION}\n".encode()
    files[f"{DIST_INFO}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: uvfix\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{DIST_INFO}/RECORD,,")
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, name), "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
        wheel.writestr(f"{DIST_INFO}/RECORD", "\n".join(record) + "\n")
    return name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with open(os.path.join(HERE, MODULE, "__init__.py"), "rb") as f:
        return _wheel(wheel_directory, {f"{MODULE}/__init__.py": f.read()})


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {f"{MODULE}.pth": (HERE + "\n").encode()})
"#;

/// `script.py` of [`Setup::Script`].
pub fn pep723_script(wheels: &Path) -> String {
    format!(
        r#"# /// script
# requires-python = ">=3.8"
# dependencies = ["{dep}"]
#
# [tool.uv]
# find-links = [{wheels}]
# no-index = true
# ///
import {module}

print("script:", {module}.VALUE)
"#,
        dep = fixture::DEP,
        module = fixture::DEP_MODULE,
        wheels = toml_str(&wheels.to_string_lossy()),
    )
}

impl Scenario {
    /// Write the workspace files (the workspace dir must exist); `python` is the interpreter
    /// the warm steps use.
    pub fn setup_workspace(
        &self,
        workspace: &Path,
        wheels: &Path,
        python: &Path,
    ) -> std::io::Result<()> {
        if self.other_python {
            other_python(python, &workspace.join(OTHER_PYTHON))?;
        }
        match self.setup {
            Setup::Empty => Ok(()),
            Setup::Project => {
                fs_err::write(workspace.join("pyproject.toml"), pyproject_toml(wheels))
            }
            Setup::Script => fs_err::write(workspace.join(SCRIPT_NAME), pep723_script(wheels)),
            Setup::LocalProject => {
                let module = workspace.join(LOCAL_MODULE);
                fs_err::create_dir_all(&module)?;
                fs_err::write(
                    module.join("__init__.py"),
                    format!("VALUE = {LOCAL_VALUE:?}\n"),
                )?;
                fs_err::write(workspace.join(format!("{BACKEND_NAME}.py")), BACKEND_PY)?;
                fs_err::write(
                    workspace.join("pyproject.toml"),
                    local_pyproject_toml(wheels),
                )
            }
        }
    }

    /// The stdout predicate: some line, trimmed, equals [`Scenario::stdout_line`].
    pub fn stdout_ok(&self, stdout: &str) -> bool {
        stdout.lines().any(|l| l.trim() == self.stdout_line)
    }

    /// The sandboxed command line(s), for reports.
    pub fn command_display(&self) -> String {
        self.sandboxed
            .iter()
            .map(Step::display)
            .collect::<Vec<_>>()
            .join(" && ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn layout() -> Layout {
        Layout {
            home: "/r/home".into(),
            cache: "/r/home/.cache/uv".into(),
            workspace: "/r/workspace".into(),
            tmp: "/r/tmp".into(),
        }
    }

    #[rstest]
    fn every_scenario_is_well_formed(
        #[values(
            ScenarioId::S1,
            ScenarioId::S2,
            ScenarioId::S3,
            ScenarioId::S4,
            ScenarioId::S5,
            ScenarioId::S6,
            ScenarioId::S7,
            ScenarioId::S8,
            ScenarioId::S9,
            ScenarioId::S10
        )]
        id: ScenarioId,
    ) {
        let s = id.spec();
        assert_eq!(s.id, id);
        assert_eq!(id.name().to_lowercase().parse(), Ok(id));
        assert!(!s.warm.is_empty(), "{id}: always warm first");
        assert!(!s.sandboxed.is_empty());
        assert!(!s.stdout_line.is_empty());
        // The cache stays untouched by construction only if nothing names it explicitly.
        assert!(!s.command_display().contains("cache-dir"));
        if matches!(s.setup, Setup::Empty) && id != ScenarioId::S1 {
            assert!(
                s.sandboxed[0].args.contains(&Arg::FindLinks),
                "{id}: outside a project the wheels come from --find-links"
            );
        }
    }

    #[test]
    fn env_is_complete_and_pins_the_cache_location() {
        let layout = layout();
        let ctx = Ctx {
            layout: &layout,
            wheels: Path::new("/r/wheels"),
            uv: Path::new("/opt/uv/bin/uv"),
            uvx: Path::new("/opt/uv/bin/uvx"),
            python: Path::new("/usr/bin/python3"),
        };
        let inv = ScenarioId::S4.spec().sandboxed[0].invocation(&ctx);
        assert_eq!(inv.program, Path::new("/opt/uv/bin/uvx"));
        assert_eq!(inv.cwd, Path::new("/r/workspace"));
        assert!(inv.args.contains(&OsString::from("/r/wheels")));
        let env: std::collections::BTreeMap<_, _> = inv.env.into_iter().collect();
        assert_eq!(env[&OsString::from("HOME")], "/r/home");
        assert_eq!(env[&OsString::from("TMPDIR")], "/r/tmp");
        assert_eq!(env[&OsString::from("PATH")], "/opt/uv/bin:/usr/bin:/bin");
        assert_eq!(env[&OsString::from("UV_PYTHON_DOWNLOADS")], "never");
        assert!(
            env.keys()
                .all(|k| !k.to_string_lossy().starts_with("XDG_") && k != "UV_CACHE_DIR")
        );
        let py = ScenarioId::S3.spec().sandboxed[1].invocation(&ctx);
        assert_eq!(py.program, Path::new("/r/workspace/.venv/bin/python"));
    }

    #[test]
    fn stdout_predicate() {
        let s = ScenarioId::S1.spec();
        assert!(s.stdout_ok("hello world\n"));
        assert!(s.stdout_ok("noise\n  hello world  \n"));
        assert!(!s.stdout_ok("hello world!\n"));
        assert!(!s.stdout_ok(""));
    }

    #[test]
    fn project_files_point_at_the_wheels() {
        let py = pyproject_toml(Path::new("/r/wh\"eels"));
        let parsed: toml::Table = py.parse().expect("valid TOML");
        assert_eq!(
            parsed["tool"]["uv"]["find-links"][0].as_str(),
            Some("/r/wh\"eels"),
            "{py}"
        );
        assert!(py.contains("no-index = true"));
        let script = pep723_script(Path::new("/r/wheels"));
        assert!(script.starts_with("# /// script\n"));
        assert!(script.contains("# find-links = [\"/r/wheels\"]"));
    }

    #[test]
    fn display_is_readable() {
        assert_eq!(
            ScenarioId::S4.spec().command_display(),
            "uvx --offline --no-index --find-links <wheels> uvfix-tool"
        );
        assert_eq!(
            ScenarioId::S1.spec().command_display(),
            "uv run python3 -c 'print(\"hello world\")'"
        );
    }
}
