//! Tiny, valid, pure-Python wheels built at test time.
//!
//! Every scenario installs packages from a local `find-links` directory so that no cell ever
//! touches the network: the wheels are written here, byte-for-byte reproducible (fixed zip
//! timestamps and modes), with a `RECORD` whose hashes verify (uv checks them when it unpacks).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use zip::write::SimpleFileOptions;

/// What to put into one wheel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelSpec {
    /// Distribution name as written in `METADATA` (`uvfix-dep`).
    pub name: String,
    pub version: String,
    /// Top-level import package (`uvfix_dep`); gets an `__init__.py`.
    pub module: String,
    /// Body of `<module>/__init__.py`.
    pub init_py: String,
    /// `Requires-Dist` lines.
    pub requires: Vec<String>,
    /// `console_scripts` entry points as (script name, `module:function`).
    pub console_scripts: Vec<(String, String)>,
}

impl WheelSpec {
    /// A library whose module defines `VALUE = "<value>"`.
    pub fn library(name: &str, version: &str, value: &str) -> Self {
        let module = name.replace(['-', '.'], "_");
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            init_py: format!("VALUE = {value:?}\n"),
            module,
            requires: Vec::new(),
            console_scripts: Vec::new(),
        }
    }

    /// A tool with a console script named like the distribution that prints `output`.
    pub fn tool(name: &str, version: &str, output: &str) -> Self {
        let module = name.replace(['-', '.'], "_");
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            init_py: format!("VALUE = {output:?}\n\n\ndef main():\n    print(VALUE)\n"),
            console_scripts: vec![(name.to_owned(), format!("{module}:main"))],
            module,
            requires: Vec::new(),
        }
    }

    pub fn requires(mut self, requirement: &str) -> Self {
        self.requires.push(requirement.to_owned());
        self
    }

    /// The PEP 427 escaped distribution name used in the file name and `.dist-info` dir.
    pub fn escaped_name(&self) -> String {
        escape_name(&self.name)
    }

    pub fn filename(&self) -> String {
        format!("{}-{}-py3-none-any.whl", self.escaped_name(), self.version)
    }

    pub fn dist_info(&self) -> String {
        format!("{}-{}.dist-info", self.escaped_name(), self.version)
    }

    /// All archive members except `RECORD`, in archive order.
    fn members(&self) -> Vec<(String, Vec<u8>)> {
        let dist_info = self.dist_info();
        let mut metadata = format!(
            "Metadata-Version: 2.1\nName: {}\nVersion: {}\n",
            self.name, self.version
        );
        for req in &self.requires {
            metadata.push_str(&format!("Requires-Dist: {req}\n"));
        }
        let wheel = "Wheel-Version: 1.0\nGenerator: uvfix-scenario\nRoot-Is-Purelib: true\nTag: py3-none-any\n";
        let mut members = vec![
            (
                format!("{}/__init__.py", self.module),
                self.init_py.clone().into_bytes(),
            ),
            (format!("{dist_info}/METADATA"), metadata.into_bytes()),
            (format!("{dist_info}/WHEEL"), wheel.as_bytes().to_vec()),
        ];
        if !self.console_scripts.is_empty() {
            let mut eps = String::from("[console_scripts]\n");
            for (script, target) in &self.console_scripts {
                eps.push_str(&format!("{script} = {target}\n"));
            }
            members.push((format!("{dist_info}/entry_points.txt"), eps.into_bytes()));
        }
        members
    }
}

/// PEP 427: runs of `-`, `_`, `.` become a single `_`.
pub fn escape_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut last_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !last_sep {
                out.push('_');
            }
            last_sep = true;
        } else {
            out.push(c);
            last_sep = false;
        }
    }
    out
}

/// `sha256=<urlsafe base64 without padding>` as used in `RECORD`.
pub fn record_hash(bytes: &[u8]) -> String {
    format!("sha256={}", URL_SAFE_NO_PAD.encode(Sha256::digest(bytes)))
}

#[derive(Debug, thiserror::Error)]
pub enum WheelError {
    #[error("I/O error on wheel {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("zip error on wheel {path}: {source}")]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("wheel {path} is invalid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Write the wheel for `spec` into `dir` (created if needed) and return its path.
pub fn build_wheel(dir: &Path, spec: &WheelSpec) -> Result<PathBuf, WheelError> {
    let path = dir.join(spec.filename());
    let io = |source| WheelError::Io {
        path: path.clone(),
        source,
    };
    let zerr = |source| WheelError::Zip {
        path: path.clone(),
        source,
    };
    fs_err::create_dir_all(dir).map_err(io)?;
    let file = fs_err::File::create(&path).map_err(io)?;
    let mut zip = zip::ZipWriter::new(file);
    // Fixed timestamp (the zip epoch) and mode: the same spec always gives the same bytes,
    // so uv's cache keys are stable across runs and the wheel is readable by any uid.
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    let mut record = String::new();
    for (name, bytes) in spec.members() {
        zip.start_file(name.as_str(), options).map_err(zerr)?;
        zip.write_all(&bytes).map_err(io)?;
        record.push_str(&format!("{name},{},{}\n", record_hash(&bytes), bytes.len()));
    }
    let record_name = format!("{}/RECORD", spec.dist_info());
    // RECORD cannot contain its own hash: its line has empty hash and size fields.
    record.push_str(&format!("{record_name},,\n"));
    zip.start_file(record_name.as_str(), options)
        .map_err(zerr)?;
    zip.write_all(record.as_bytes()).map_err(io)?;
    zip.finish().map_err(zerr)?;
    Ok(path)
}

/// Check a wheel the way an installer does: every member is listed in `RECORD` with a
/// matching hash and size, and `RECORD` lists nothing that is missing.
pub fn verify_wheel(path: &Path) -> Result<(), WheelError> {
    let invalid = |reason: String| WheelError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let zerr = |source| WheelError::Zip {
        path: path.to_owned(),
        source,
    };
    let io = |source| WheelError::Io {
        path: path.to_owned(),
        source,
    };
    let file = fs_err::File::open(path).map_err(io)?;
    let mut archive = zip::ZipArchive::new(file).map_err(zerr)?;
    let record_name = archive
        .file_names()
        .find(|n| n.ends_with(".dist-info/RECORD"))
        .map(str::to_owned)
        .ok_or_else(|| invalid("no .dist-info/RECORD".into()))?;
    let mut record = String::new();
    archive
        .by_name(&record_name)
        .map_err(zerr)?
        .read_to_string(&mut record)
        .map_err(io)?;
    let mut listed = std::collections::BTreeSet::new();
    for line in record.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.rsplitn(3, ',');
        let (size, hash, name) = (parts.next(), parts.next(), parts.next());
        let (Some(size), Some(hash), Some(name)) = (size, hash, name) else {
            return Err(invalid(format!("malformed RECORD line `{line}`")));
        };
        listed.insert(name.to_owned());
        if name == record_name {
            if !hash.is_empty() || !size.is_empty() {
                return Err(invalid("RECORD lists a hash for itself".into()));
            }
            continue;
        }
        let mut bytes = Vec::new();
        archive
            .by_name(name)
            .map_err(|e| {
                invalid(format!(
                    "RECORD lists `{name}` which is not in the archive: {e}"
                ))
            })?
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if hash != record_hash(&bytes) {
            return Err(invalid(format!("hash mismatch for `{name}`")));
        }
        if size != bytes.len().to_string() {
            return Err(invalid(format!("size mismatch for `{name}`")));
        }
    }
    for name in archive.file_names() {
        if !listed.contains(name) {
            return Err(invalid(format!("`{name}` is not listed in RECORD")));
        }
    }
    Ok(())
}

/// Distribution names and values the scenarios rely on.
pub mod fixture {
    /// Plain library; S2, S3, S6, S7 import it.
    pub const DEP: &str = "uvfix-dep";
    pub const DEP_MODULE: &str = "uvfix_dep";
    pub const DEP_VALUE: &str = "uvfix-dep 1.0 ok";
    /// Library with a dependency on [`DEP`]; S5 adds it with `--with`.
    pub const EXTRA: &str = "uvfix-extra";
    pub const EXTRA_MODULE: &str = "uvfix_extra";
    pub const EXTRA_VALUE: &str = "uvfix-extra 1.0 ok";
    /// Console-script tool; S4 runs it with `uvx`.
    pub const TOOL: &str = "uvfix-tool";
    pub const TOOL_OUTPUT: &str = "uvfix-tool 1.0 ok";
    pub const VERSION: &str = "1.0";
}

/// The fixture's wheels (see [`fixture`]).
pub fn fixture_specs() -> Vec<WheelSpec> {
    use fixture::*;
    vec![
        WheelSpec::library(DEP, VERSION, DEP_VALUE),
        WheelSpec::library(EXTRA, VERSION, EXTRA_VALUE).requires(DEP),
        WheelSpec::tool(TOOL, VERSION, TOOL_OUTPUT),
    ]
}

/// Build every fixture wheel into `dir` (the find-links directory).
pub fn build_fixture_wheels(dir: &Path) -> Result<Vec<PathBuf>, WheelError> {
    fixture_specs()
        .iter()
        .map(|spec| build_wheel(dir, spec))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use assert_fs::prelude::*;
    use predicates::prelude::*;
    use test_case::test_case;

    #[test_case("uvfix-dep", "uvfix_dep" ; "dash")]
    #[test_case("a.b--c", "a_b_c" ; "runs collapse")]
    #[test_case("plain", "plain" ; "unchanged")]
    fn escapes_names(name: &str, expected: &str) {
        assert_eq!(escape_name(name), expected);
    }

    #[test]
    fn record_hash_is_urlsafe_nopad_sha256() {
        // sha256("") = e3b0c442…; its urlsafe base64 without padding is well known.
        assert_eq!(
            record_hash(b""),
            "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }

    #[test]
    fn builds_valid_reproducible_wheels() {
        let dir = assert_fs::TempDir::new().unwrap();
        let paths = build_fixture_wheels(dir.path()).unwrap();
        assert_eq!(paths.len(), 3);
        dir.child("uvfix_dep-1.0-py3-none-any.whl")
            .assert(predicate::path::is_file());
        dir.child("uvfix_tool-1.0-py3-none-any.whl")
            .assert(predicate::path::is_file());
        for path in &paths {
            verify_wheel(path).unwrap();
        }
        let first = fs_err::read(&paths[0]).unwrap();
        let again = build_wheel(&dir.path().join("again"), &fixture_specs()[0]).unwrap();
        assert_eq!(
            first,
            fs_err::read(again).unwrap(),
            "wheels are reproducible"
        );
    }

    #[test]
    fn wheel_members_and_metadata() {
        let dir = assert_fs::TempDir::new().unwrap();
        let path = build_wheel(dir.path(), &fixture_specs()[1]).unwrap();
        let mut archive = zip::ZipArchive::new(fs_err::File::open(&path).unwrap()).unwrap();
        let names: Vec<_> = archive.file_names().map(str::to_owned).collect();
        assert_eq!(
            names,
            [
                "uvfix_extra/__init__.py",
                "uvfix_extra-1.0.dist-info/METADATA",
                "uvfix_extra-1.0.dist-info/WHEEL",
                "uvfix_extra-1.0.dist-info/RECORD",
            ]
        );
        let mut metadata = String::new();
        archive
            .by_name("uvfix_extra-1.0.dist-info/METADATA")
            .unwrap()
            .read_to_string(&mut metadata)
            .unwrap();
        assert!(
            predicate::str::contains("Requires-Dist: uvfix-dep\n").eval(&metadata),
            "{metadata}"
        );
        assert!(predicate::str::contains("Name: uvfix-extra\n").eval(&metadata));
    }

    #[test]
    fn tool_wheel_has_console_script() {
        let dir = assert_fs::TempDir::new().unwrap();
        let path = build_wheel(dir.path(), &fixture_specs()[2]).unwrap();
        let mut archive = zip::ZipArchive::new(fs_err::File::open(&path).unwrap()).unwrap();
        let mut eps = String::new();
        archive
            .by_name("uvfix_tool-1.0.dist-info/entry_points.txt")
            .unwrap()
            .read_to_string(&mut eps)
            .unwrap();
        assert_eq!(eps, "[console_scripts]\nuvfix-tool = uvfix_tool:main\n");
    }

    #[test]
    fn verify_detects_tampering() {
        let dir = assert_fs::TempDir::new().unwrap();
        let spec = WheelSpec::library("tamper", "1.0", "x");
        let good = build_wheel(dir.path(), &spec).unwrap();
        // Rebuild the archive with one member changed but the old RECORD.
        let mut src = zip::ZipArchive::new(fs_err::File::open(&good).unwrap()).unwrap();
        let bad = dir.path().join("bad.whl");
        let mut out = zip::ZipWriter::new(fs_err::File::create(&bad).unwrap());
        for i in 0..src.len() {
            let mut member = src.by_index(i).unwrap();
            let name = member.name().to_owned();
            let mut bytes = Vec::new();
            member.read_to_end(&mut bytes).unwrap();
            if name.ends_with("__init__.py") {
                bytes = b"VALUE = 'tampered'\n".to_vec();
            }
            out.start_file(name, SimpleFileOptions::default()).unwrap();
            out.write_all(&bytes).unwrap();
        }
        out.finish().unwrap();
        let err = verify_wheel(&bad).unwrap_err().to_string();
        assert!(err.contains("hash mismatch"), "{err}");
    }
}
