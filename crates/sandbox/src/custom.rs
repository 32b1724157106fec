//! Sandboxes a user brings: `NAME[:ERRNO]=COMMAND PREFIX` (firejail, nsjail,
//! `systemd-run -p ProtectHome=read-only`, a company's wrapper).
//!
//! The prefix is split into words at whitespace (single and double quotes group words; no other
//! shell syntax) and put in front of every command the cell runs, canary included:
//!
//! ```text
//! ro-bwrap=bwrap --dev-bind / / --ro-bind {home} {home} --bind {workspace} {workspace} --bind {tmpdir} {tmpdir} --unshare-net
//! ```
//!
//! `{workspace}`, `{tmpdir}`, `{home}` and `{cache}` become the cell's paths. The sandbox is
//! expected to deny cache writes with ERRNO (`EROFS`, the default: read-only mounts are what
//! such wrappers use; `EACCES` or `EPERM`), and like every sandbox it is proved by the canary in
//! every cell: a wrapper that lets the write through, or denies it with another errno, fails
//! the cell with that in words. Its TMPDIR is taken to be writable.
//!
//! A registered sandbox is its own policy (the crate's `Policy`): `Sandbox::Custom(index)` is the index of its entry
//! in the registry. Entries live for the process (each is leaked once, so that it is a
//! `&'static` policy and its name a `&'static str` like every other sandbox's; at most 255);
//! [`crate::Sandbox::from_name`] finds them.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::sync::RwLock;
use std::time::Duration;

use crate::policy::{Policy, base_command};
use crate::probe::{find_in_path, is_executable, run_probe, tool};
use crate::{Availability, Denial, Invocation, Layout, Sandbox};

/// One registered sandbox.
#[derive(Debug)]
pub struct Custom {
    pub name: String,
    pub words: Vec<String>,
    pub denial: Denial,
}

impl Policy for Custom {
    fn name(&self) -> &str {
        &self.name
    }

    fn denial(&self) -> Option<Denial> {
        Some(self.denial)
    }

    fn availability(&self) -> Availability {
        availability(self)
    }

    fn command(&self, layout: &Layout, _helper: &Path, inv: &Invocation) -> Command {
        command(self, layout, inv)
    }
}

static REGISTRY: RwLock<Vec<&'static Custom>> = RwLock::new(Vec::new());

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CustomError {
    #[error(
        "custom sandbox `{0}`: expected NAME[:ERRNO]=COMMAND PREFIX, e.g. 'ro-bwrap=bwrap --ro-bind / / --bind {{workspace}} {{workspace}} --bind {{tmpdir}} {{tmpdir}}'"
    )]
    Syntax(String),
    #[error("custom sandbox name `{0}`: use lowercase letters, digits and `-` only")]
    Name(String),
    #[error("custom sandbox name `{0}` is taken (a built-in sandbox or one given before)")]
    Taken(String),
    #[error("custom sandbox `{name}`: unknown errno `{errno}`; use EROFS, EACCES or EPERM")]
    Errno { name: String, errno: String },
    #[error("custom sandbox `{0}`: unbalanced quote in the command prefix")]
    Quote(String),
    #[error("custom sandboxes: at most 255 per process")]
    TooMany,
}

/// Split at whitespace; `'…'` and `"…"` group (no escapes, no other shell syntax).
fn split_words(prefix: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = None;
    for c in prefix.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return None;
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// Parse and register `NAME[:ERRNO]=COMMAND PREFIX`; the returned sandbox is then selectable
/// by name like any other.
pub fn register(spec: &str) -> Result<Sandbox, CustomError> {
    let (head, prefix) = spec
        .split_once('=')
        .ok_or_else(|| CustomError::Syntax(spec.to_owned()))?;
    let (name, errno) = head.split_once(':').unwrap_or((head, "EROFS"));
    let name = name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(CustomError::Name(name.to_owned()));
    }
    let denial = match errno.trim() {
        "EROFS" => Denial::Erofs,
        "EACCES" => Denial::Eacces,
        "EPERM" => Denial::Eperm,
        other => {
            return Err(CustomError::Errno {
                name: name.to_owned(),
                errno: other.to_owned(),
            });
        }
    };
    let words = split_words(prefix).ok_or_else(|| CustomError::Quote(name.to_owned()))?;
    if words.is_empty() {
        return Err(CustomError::Syntax(spec.to_owned()));
    }
    if Sandbox::from_name(name).is_some() {
        return Err(CustomError::Taken(name.to_owned()));
    }
    let mut registry = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    let index = u8::try_from(registry.len()).map_err(|_| CustomError::TooMany)?;
    registry.push(Box::leak(Box::new(Custom {
        name: name.to_owned(),
        words,
        denial,
    })));
    Ok(Sandbox::Custom(index))
}

/// The registered sandbox behind `Sandbox::Custom(index)`.
pub fn get(index: u8) -> &'static Custom {
    REGISTRY.read().unwrap_or_else(|e| e.into_inner())[usize::from(index)]
}

/// Every registered sandbox, in registration order.
pub fn all() -> Vec<Sandbox> {
    let count = REGISTRY.read().unwrap_or_else(|e| e.into_inner()).len();
    (0..count)
        .filter_map(|i| u8::try_from(i).ok())
        .map(Sandbox::Custom)
        .collect()
}

pub(crate) fn find(name: &str) -> Option<Sandbox> {
    let registry = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    registry
        .iter()
        .position(|c| c.name == name)
        .and_then(|i| u8::try_from(i).ok())
        .map(Sandbox::Custom)
}

/// The prefix with the cell's paths filled in.
fn expand(custom: &Custom, layout: &Layout) -> Vec<OsString> {
    let fill = |word: &str| {
        [
            ("{workspace}", &layout.workspace),
            ("{tmpdir}", &layout.tmp),
            ("{home}", &layout.home),
            ("{cache}", &layout.cache),
        ]
        .iter()
        .fold(word.to_owned(), |w, (key, path)| {
            w.replace(key, &path.to_string_lossy())
        })
    };
    custom.words.iter().map(|w| fill(w).into()).collect()
}

fn command(custom: &Custom, layout: &Layout, inv: &Invocation) -> Command {
    let words = expand(custom, layout);
    // The wrapper is found on the host's PATH, like every other sandbox's tool.
    let program = Path::new(&words[0]);
    let program = if program.is_absolute() {
        program.to_path_buf()
    } else {
        tool(&program.to_string_lossy())
    };
    let mut cmd = base_command(program, inv);
    cmd.args(&words[1..]).arg(&inv.program).args(&inv.args);
    cmd
}

/// The wrapper exists and runs `/bin/sh -c :` in a throwaway layout; the denial itself is the
/// canary's to prove, cell by cell.
fn availability(custom: &Custom) -> Availability {
    let first = &custom.words[0];
    let found = if Path::new(first).is_absolute() {
        is_executable(Path::new(first))
    } else {
        find_in_path(first).is_some()
    };
    if !found {
        return Availability::Unavailable(format!(
            "custom sandbox `{}`: `{first}` not found on PATH",
            custom.name
        ));
    }
    let dir = match tempfile::Builder::new().prefix("uvfix-custom-").tempdir() {
        Ok(dir) => dir,
        Err(e) => return Availability::Unavailable(format!("creating a probe layout: {e}")),
    };
    let layout = Layout {
        home: dir.path().join("home"),
        cache: dir.path().join("home/.cache/uv"),
        workspace: dir.path().join("workspace"),
        tmp: dir.path().join("tmp"),
    };
    for d in [&layout.cache, &layout.workspace, &layout.tmp] {
        if let Err(e) = fs_err::create_dir_all(d) {
            return Availability::Unavailable(format!("creating a probe layout: {e}"));
        }
    }
    let inv = Invocation {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), ":".into()],
        env: vec![],
        cwd: layout.workspace.clone(),
    };
    match run_probe(command(custom, &layout, &inv), Duration::from_secs(60)) {
        Ok(out) if out.success => Availability::Available,
        Ok(out) => Availability::Unavailable(format!(
            "custom sandbox `{}` cannot run `/bin/sh -c :` here: {}",
            custom.name, out.text
        )),
        Err(e) => Availability::Unavailable(format!("custom sandbox `{}`: {e}", custom.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_quotes() {
        assert_eq!(
            split_words(r#"a  'b c' "d'e" f"g h"i"#).unwrap(),
            ["a", "b c", "d'e", "fg hi"]
        );
        assert_eq!(split_words("''").unwrap(), [""]);
        assert!(split_words("a 'b").is_none());
    }

    #[test]
    fn register_and_expand() {
        let sandbox = register("test-wrap:EACCES=wrap --rw {workspace} --ro {cache}").unwrap();
        assert_eq!(sandbox.name(), "test-wrap");
        assert_eq!(Sandbox::from_name("test-wrap"), Some(sandbox));
        assert_eq!(sandbox.denial(), Some(Denial::Eacces));
        let layout = Layout {
            home: "/h".into(),
            cache: "/h/.cache/uv".into(),
            workspace: "/w".into(),
            tmp: "/t".into(),
        };
        let Sandbox::Custom(index) = sandbox else {
            panic!("{sandbox:?}")
        };
        assert_eq!(
            expand(get(index), &layout),
            ["wrap", "--rw", "/w", "--ro", "/h/.cache/uv"].map(OsString::from)
        );
        assert_eq!(
            register("test-wrap=x"),
            Err(CustomError::Taken("test-wrap".into()))
        );
        assert_eq!(
            register("ro-home=x"),
            Err(CustomError::Taken("ro-home".into()))
        );
        assert!(matches!(register("Bad=x"), Err(CustomError::Name(_))));
        assert!(matches!(
            register("x:EIO=y"),
            Err(CustomError::Errno { .. })
        ));
        assert!(matches!(register("nothing"), Err(CustomError::Syntax(_))));
    }
}
