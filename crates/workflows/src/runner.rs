//! What a GitHub-hosted runner image offers a job, as far as our workflows depend on it.
//!
//! These are facts about images we cannot run here (actions/runner-images): written down
//! once, with the source of each, so that every check reads the same ones.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Linux,
    MacOs,
    Windows,
}

impl Os {
    /// `runner.os`.
    pub fn context_name(self) -> &'static str {
        match self {
            Os::Linux => "Linux",
            Os::MacOs => "macOS",
            Os::Windows => "Windows",
        }
    }

    /// What `uname -s` prints there (Git Bash's on Windows).
    pub fn uname(self) -> &'static str {
        match self {
            Os::Linux => "Linux",
            Os::MacOs => "Darwin",
            Os::Windows => "MINGW64_NT-10.0-20348",
        }
    }

    /// The shell of a `run:` with no `shell:` anywhere: `bash -e {0}` where bash exists,
    /// `pwsh` on Windows (GitHub's workflow syntax, "defaults.run.shell").
    pub fn default_shell(self) -> &'static str {
        match self {
            Os::Linux | Os::MacOs => "bash",
            Os::Windows => "pwsh",
        }
    }

    /// The `shell:` keywords whose program the image has. Windows has Git Bash (`bash`),
    /// macOS's `bash` is /bin/bash 3.2.57 (no newer one on the image).
    pub fn shells(self) -> &'static [&'static str] {
        match self {
            Os::Linux => &["bash", "sh", "pwsh", "python"],
            Os::MacOs => &["bash", "sh", "pwsh", "python"],
            Os::Windows => &["bash", "pwsh", "powershell", "cmd", "python"],
        }
    }

    /// The bash the scripts meet: macOS's /bin/bash is 3.2, everything else 5.
    pub fn bash_is_3_2(self) -> bool {
        self == Os::MacOs
    }
}

impl fmt::Display for Os {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.context_name())
    }
}

/// The image a `runs-on:` label names, or `None` for a label we know nothing about (a
/// self-hosted runner, a typo): the checks then say so instead of guessing.
pub fn os_of(label: &str) -> Option<Os> {
    let label = label.trim();
    if label.starts_with("ubuntu-") {
        Some(Os::Linux)
    } else if label.starts_with("macos-") {
        Some(Os::MacOs)
    } else if label.starts_with("windows-") {
        Some(Os::Windows)
    } else {
        None
    }
}

/// `runner.arch` of a label.
pub fn arch_of(label: &str) -> &'static str {
    if label.ends_with("-arm") || label.starts_with("macos-") && !label.ends_with("-13") {
        "ARM64"
    } else {
        "X64"
    }
}
