//! Which Python interpreter uv is told to use (`UV_PYTHON`).
//!
//! Not whatever `python3` is first on `PATH`: on developer machines and CI images that is
//! often a pyenv shim, a shell script that re-execs the real interpreter. uv caches
//! interpreter facts keyed by the executable path and its modification time, and a shim makes
//! it re-query the interpreter (and so want to write `interpreter-v4/`) on runs that should be
//! fully warm. And the shim's real target lives under `/root/.pyenv`, which the unprivileged
//! uid of the foreign-owner sandbox (65534) cannot read. Debian's `/usr/bin/python3` is a
//! stable, world-readable real interpreter, so it is the default.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Overrides the interpreter (an absolute path to a real interpreter, not a shim).
pub const PYTHON_ENV: &str = "UVFIX_PYTHON";
/// The default when [`PYTHON_ENV`] is unset.
pub const DEFAULT_PYTHON: &str = "/usr/bin/python3";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PythonError {
    #[error(
        "{PYTHON_ENV}={path} does not name an existing interpreter file; \
         point it at a real interpreter such as /usr/bin/python3.11 (not a pyenv shim)"
    )]
    EnvNotAFile { path: PathBuf },
    #[error("{PYTHON_ENV}={path} must be an absolute path (uv runs with another cwd and PATH)")]
    EnvNotAbsolute { path: PathBuf },
    #[error(
        "no Python interpreter for uv: {PYTHON_ENV} is unset and {default} does not exist; \
         install one (`apt-get install python3`) or set {PYTHON_ENV} to an absolute path of a \
         real interpreter readable by every uid (not a pyenv shim under /root)"
    )]
    NotFound { default: PathBuf },
}

/// The interpreter for uv: `$UVFIX_PYTHON` if set, else `/usr/bin/python3`.
pub fn find_python() -> Result<PathBuf, PythonError> {
    find_python_from(std::env::var_os(PYTHON_ENV), Path::new(DEFAULT_PYTHON))
}

/// [`find_python`] with its inputs explicit (for tests).
pub fn find_python_from(env: Option<OsString>, default: &Path) -> Result<PathBuf, PythonError> {
    match env.filter(|v| !v.is_empty()) {
        Some(value) => {
            let path = PathBuf::from(value);
            if !path.is_absolute() {
                return Err(PythonError::EnvNotAbsolute { path });
            }
            if !path.is_file() {
                return Err(PythonError::EnvNotAFile { path });
            }
            Ok(path)
        }
        None if default.is_file() => Ok(default.to_owned()),
        None => Err(PythonError::NotFound {
            default: default.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use assert_fs::prelude::*;

    #[test]
    fn env_wins_over_default() {
        let dir = assert_fs::TempDir::new().unwrap();
        let py = dir.child("python3.11");
        py.touch().unwrap();
        let got = find_python_from(Some(py.path().into()), Path::new("/nonexistent")).unwrap();
        assert_eq!(got, py.path());
    }

    #[test]
    fn default_used_when_env_unset_or_empty() {
        let dir = assert_fs::TempDir::new().unwrap();
        let py = dir.child("python3");
        py.touch().unwrap();
        assert_eq!(find_python_from(None, py.path()).unwrap(), py.path());
        assert_eq!(
            find_python_from(Some("".into()), py.path()).unwrap(),
            py.path()
        );
    }

    #[test]
    fn clear_errors() {
        let err = find_python_from(None, Path::new("/nonexistent/python3")).unwrap_err();
        assert!(err.to_string().contains("UVFIX_PYTHON is unset"), "{err}");
        let err = find_python_from(Some("python3".into()), Path::new("/x")).unwrap_err();
        assert_eq!(
            err,
            PythonError::EnvNotAbsolute {
                path: "python3".into()
            }
        );
        let err = find_python_from(Some("/nonexistent/py".into()), Path::new("/x")).unwrap_err();
        assert!(matches!(err, PythonError::EnvNotAFile { .. }));
    }
}
