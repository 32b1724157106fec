//! `git` as these commands run it: isolated from the user's configuration, with a fixed
//! identity and fixed dates, so what they produce with it is reproducible.

use std::path::Path;
use std::process::Command;

/// Fixed author and dates for the commits we make, so an export is byte-for-byte
/// reproducible: `$SOURCE_DATE_EPOCH` if set, else 2026-01-01T00:00:00Z.
const AUTHOR_NAME: &str = "uvfix";
const AUTHOR_EMAIL: &str = "uvfix@example.invalid";
const DEFAULT_EPOCH: u64 = 1_767_225_600;

fn epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_EPOCH)
}

/// `git -C dir …` isolated from the user's and the system's git configuration (so aliases,
/// `diff.noprefix`, signing or hooks paths never change what we produce), in the C locale,
/// with our fixed identity and dates.
pub(crate) fn git(dir: &Path) -> Command {
    let date = format!("@{} +0000", epoch());
    let mut command = Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", null_device())
        .env("LC_ALL", "C")
        .env("GIT_AUTHOR_NAME", AUTHOR_NAME)
        .env("GIT_AUTHOR_EMAIL", AUTHOR_EMAIL)
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_NAME", AUTHOR_NAME)
        .env("GIT_COMMITTER_EMAIL", AUTHOR_EMAIL)
        .env("GIT_COMMITTER_DATE", &date)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE");
    command
}

fn null_device() -> &'static str {
    if cfg!(windows) { "NUL" } else { "/dev/null" }
}
