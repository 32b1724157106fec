//! What must hold for a job × matrix entry to go green on its runner, checked on the entry
//! and on its emulated trace. Each finding is one sentence naming the line it is about.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::process::Command;

use uvfix_sandbox::Sandbox;

use crate::bash32;
use crate::emulate::{Event, Outcome, Trace};
use crate::runner::Os;
use crate::workflow::{Entry, Step, StepKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding(pub String);

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a job must have run before a sandbox can work on a fresh runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Prerequisite {
    /// bubblewrap, ripgrep, socat, mmdebstrap (ci/install-deps.sh).
    SystemTools,
    /// Ubuntu 24.04's AppArmor restriction on user namespaces lifted, for bubblewrap.
    UserNamespaces,
    /// Codex CLI 0.63.0, its current release and Claude Code's srt, from npm.
    NpmSandboxes,
    /// The docker-ro image, bootstrapped from the host's apt sources.
    DockerImage,
}

impl Prerequisite {
    pub fn script(self) -> &'static str {
        match self {
            Prerequisite::SystemTools => "ci/install-deps.sh",
            Prerequisite::UserNamespaces => "ci/allow-userns.sh",
            Prerequisite::NpmSandboxes => "ci/install-sandboxes.sh",
            Prerequisite::DockerImage => "ci/docker-image.sh",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Prerequisite::SystemTools => "bubblewrap and the other system tools",
            Prerequisite::UserNamespaces => "unprivileged user namespaces",
            Prerequisite::NpmSandboxes => "the npm sandboxes",
            Prerequisite::DockerImage => "the docker-ro image",
        }
    }
}

/// What `sandbox` needs a job to have run on a fresh runner of `os`, or why it cannot run
/// there at all. Exhaustive over [`Sandbox`]: a new sandbox must say what it needs.
pub fn prerequisites(sandbox: Sandbox, os: Os) -> Result<&'static [Prerequisite], String> {
    use Prerequisite::*;
    let linux_only = |needs: &'static [Prerequisite]| {
        if os == Os::Linux {
            Ok(needs)
        } else {
            Err(format!(
                "`{sandbox}` is Linux-only, and this runner is {os}"
            ))
        }
    };
    match sandbox {
        Sandbox::None | Sandbox::ForeignOwner | Sandbox::Custom(_) => Ok(&[]),
        Sandbox::Landlock | Sandbox::Immutable => linux_only(&[]),
        Sandbox::RoHome | Sandbox::RoRoot => linux_only(&[SystemTools, UserNamespaces]),
        // 0.63.0 is the Landlock generation: no bubblewrap.
        Sandbox::Codex => linux_only(&[NpmSandboxes]),
        Sandbox::CodexCurrent | Sandbox::SandboxRuntime => {
            linux_only(&[NpmSandboxes, SystemTools, UserNamespaces])
        }
        Sandbox::DockerReadOnly => linux_only(&[SystemTools, DockerImage]),
        Sandbox::Seatbelt => match os {
            Os::MacOs => Ok(&[]),
            _ => Err(format!("`seatbelt` is macOS's, and this runner is {os}")),
        },
    }
}

/// Every finding for `entry`, given its trace.
pub fn entry(root: &Path, entry: &Entry, trace: &Trace, all: &[Entry]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let Some(os) = entry.os else {
        findings.push(at(
            entry,
            None,
            format!(
                "runs on `{}`, a runner this check knows nothing about",
                entry.runs_on
            ),
        ));
        return findings;
    };
    shells(entry, os, &mut findings);
    steps_ran(entry, trace, &mut findings);
    scripts(root, entry, trace, &mut findings);
    artifacts(entry, all, &mut findings);
    sandboxes(entry, os, trace, &mut findings);
    nextest(entry, trace, &mut findings);
    if os.bash_is_3_2() {
        bash_3_2(root, entry, trace, &mut findings);
    }
    findings
}

fn at(entry: &Entry, step: Option<&Step>, what: String) -> Finding {
    match step {
        Some(step) => Finding(format!(
            "{}:{}: step \"{}\": {what}",
            entry.file, step.line, step.name
        )),
        None => Finding(format!("{} job `{}`: {what}", entry.file, entry.job_id)),
    }
}

/// Every `run:` is a bash block: it must run in bash, which the runner must have. The job
/// says so itself (`defaults: run: shell: bash`): Windows' default is pwsh, and GitHub's
/// implicit bash elsewhere is `bash -e {0}`, without pipefail.
fn shells(entry: &Entry, os: Os, findings: &mut Vec<Finding>) {
    if entry.default_shell.as_deref() != Some("bash") {
        findings.push(at(
            entry,
            None,
            format!(
                "no `defaults: run: shell: bash` (the job or the workflow): its `run:` blocks get {}",
                match entry.default_shell.as_deref() {
                    Some(other) => format!("`{other}`"),
                    None => format!("the runner's default, `{}` on {os}", os.default_shell()),
                }
            ),
        ));
    }
    for step in entry.steps.iter().filter(|s| s.runs) {
        if let StepKind::Run {
            shell,
            first_line,
            script,
        } = &step.kind
        {
            if !os.shells().contains(&shell.as_str()) {
                findings.push(at(
                    entry,
                    Some(step),
                    format!(
                        "`{first_line}` runs in `{shell}`, which {} has not",
                        entry.runs_on
                    ),
                ));
            } else if shell != "bash" {
                findings.push(at(
                    entry,
                    Some(step),
                    format!(
                        "`{first_line}` is a bash block but runs in `{shell}` on {}{}",
                        entry.runs_on,
                        if script.contains('$') {
                            ", where a bash \"$VAR\" is an undefined PowerShell variable"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
    }
}

fn steps_ran(entry: &Entry, trace: &Trace, findings: &mut Vec<Finding>) {
    for run in &trace.steps {
        if let Outcome::Ran {
            success: false,
            status,
            output,
        } = &run.outcome
        {
            let tail: Vec<&str> = output
                .lines()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            findings.push(at(
                entry,
                entry.steps.get(run.index),
                format!(
                    "failed in the emulation ({status}); its output ends with:\n    {}",
                    tail.join("\n    ")
                ),
            ));
        }
    }
}

/// Every script a step names or the emulation saw start exists, tracked with mode 100755.
fn scripts(root: &Path, entry: &Entry, trace: &Trace, findings: &mut Vec<Finding>) {
    let mut seen = BTreeSet::new();
    for step in entry.steps.iter().filter(|s| s.runs) {
        if let StepKind::Run { script, .. } = &step.kind {
            for path in script_paths(script) {
                if seen.insert(path.clone())
                    && let Some(problem) = executable_problem(root, &path)
                {
                    findings.push(at(
                        entry,
                        Some(step),
                        format!("calls `{path}`, which {problem}"),
                    ));
                }
            }
        }
    }
    for event in &trace.events {
        if let Event::Script { step, path, .. } = event
            && seen.insert(path.clone())
            && let Some(problem) = executable_problem(root, path)
        {
            findings.push(at(
                entry,
                entry.steps.get(*step),
                format!("runs `{path}`, which {problem}"),
            ));
        }
    }
}

/// The repository paths a `run:` block calls: words starting with `ci/`, `.ci/` or `./`.
pub fn script_paths(script: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for line in script.lines() {
        let line = line.split(" #").next().unwrap_or("");
        if line.trim_start().starts_with('#') {
            continue;
        }
        for word in line.split(|c: char| {
            c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')' | '$' | '"' | '\'' | '`')
        }) {
            let word = word.trim_start_matches("./");
            if (word.starts_with("ci/") || word.starts_with(".ci/")) && word.len() > 3 {
                paths.push(word.to_owned());
            }
        }
    }
    paths
}

/// Why `path` would not run on a fresh checkout, if it would not: missing, or not tracked
/// as executable (actions/checkout sets the modes git records, not this disk's).
fn executable_problem(root: &Path, path: &str) -> Option<String> {
    if !root.join(path).is_file() {
        return Some("does not exist".to_owned());
    }
    let output = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "--stage", "--", path])
        .output();
    match output {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            match text.split_whitespace().next() {
                Some("100755") => None,
                Some(mode) => Some(format!(
                    "git tracks with mode {mode}, not 100755: `git update-index --chmod=+x {path}`"
                )),
                None => Some("git does not track, so a checkout does not have it".to_owned()),
            }
        }
        // Not a git checkout: the mode on disk is all there is.
        _ => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(root.join(path))
                    .ok()?
                    .permissions()
                    .mode();
                (mode & 0o111 == 0).then(|| format!("is not executable (mode {mode:o})"))
            }
            #[cfg(not(unix))]
            None
        }
    }
}

/// Every artifact a step downloads is uploaded by a job this one needs (directly or
/// through another), in some entry of it.
fn artifacts(entry: &Entry, all: &[Entry], findings: &mut Vec<Finding>) {
    let needed = needed_jobs(entry, all);
    let uploaded: BTreeSet<String> = all
        .iter()
        .filter(|e| e.file == entry.file && needed.contains(&e.job_id) && e.runs)
        .flat_map(|e| e.steps.iter().filter(|s| s.runs))
        .filter_map(|s| action_input(s, "actions/upload-artifact", "name"))
        .collect();
    for step in entry.steps.iter().filter(|s| s.runs) {
        if let Some(name) = action_input(step, "actions/download-artifact", "name")
            && !uploaded.contains(&name)
        {
            findings.push(at(
                entry,
                Some(step),
                format!(
                    "downloads the artifact `{name}`, which no job it needs ({}) uploads (they upload: {})",
                    needed.iter().cloned().collect::<Vec<_>>().join(", "),
                    uploaded.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
}

/// The artifact names `entry` downloads.
pub fn downloads(entry: &Entry) -> Vec<String> {
    entry
        .steps
        .iter()
        .filter(|s| s.runs)
        .filter_map(|s| action_input(s, "actions/download-artifact", "name"))
        .collect()
}

/// The entry of a job `entry` needs (directly or not) that uploads `name`.
pub fn uploader<'a>(entry: &Entry, all: &'a [Entry], name: &str) -> Option<&'a Entry> {
    let needed = needed_jobs(entry, all);
    all.iter()
        .filter(|e| e.file == entry.file && needed.contains(&e.job_id) && e.runs)
        .find(|e| {
            e.steps.iter().filter(|s| s.runs).any(|s| {
                action_input(s, "actions/upload-artifact", "name").as_deref() == Some(name)
            })
        })
}

fn needed_jobs(entry: &Entry, all: &[Entry]) -> BTreeSet<String> {
    let mut needed = BTreeSet::new();
    let mut todo: Vec<String> = entry.needs.clone();
    while let Some(job) = todo.pop() {
        if needed.insert(job.clone()) {
            for other in all
                .iter()
                .filter(|e| e.file == entry.file && e.job_id == job)
            {
                todo.extend(other.needs.iter().cloned());
            }
        }
    }
    needed
}

fn action_input(step: &Step, slug: &str, key: &str) -> Option<String> {
    match &step.kind {
        StepKind::Uses { slug: s, with } if s == slug => {
            with.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        }
        _ => None,
    }
}

/// Commands that run sandboxes (and so honour `UVFIX_REQUIRE_SANDBOXES`).
fn runs_sandboxes(name: &str, args: &str) -> bool {
    name == "cargo" && (args.starts_with("xtask matrix") || args.starts_with("nextest run"))
}

/// Every sandbox an entry requires has what it needs installed by the job's own steps before
/// the command that runs it: the sandboxes `UVFIX_REQUIRE_SANDBOXES` names there, and the
/// cell's own (`matrix.sandbox`).
fn sandboxes(entry: &Entry, os: Os, trace: &Trace, findings: &mut Vec<Finding>) {
    let cell = entry.matrix_value("sandbox");
    // The installer scripts that ran, each with its arguments: an installer given arguments
    // installs what they name (`ci/install-sandboxes.sh codex`), one given none installs all.
    let mut done: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut reported = BTreeSet::new();
    let mut cell_ran = false;
    for event in &trace.events {
        match event {
            Event::Script { path, args, .. } => {
                done.push((path.as_str(), args.split_whitespace().collect()));
            }
            Event::Command {
                step,
                name,
                args,
                require,
            } if runs_sandboxes(name, args) => {
                let mut required: Vec<(String, &str)> = require
                    .iter()
                    .flat_map(|r| r.split(','))
                    .map(|s| (s.trim().to_owned(), "UVFIX_REQUIRE_SANDBOXES"))
                    .filter(|(s, _)| !s.is_empty())
                    .collect();
                if let Some(cell) = &cell {
                    cell_ran = true;
                    if !required.iter().any(|(s, _)| s == cell) {
                        required.push((cell.clone(), "the cell's matrix.sandbox"));
                    }
                }
                let step = entry.steps.get(*step);
                for (name, why) in required {
                    if name == "all" {
                        continue;
                    }
                    let Some(sandbox) = Sandbox::from_name(&name) else {
                        findings.push(at(
                            entry,
                            step,
                            format!("requires `{name}` ({why}), which is no sandbox"),
                        ));
                        continue;
                    };
                    match prerequisites(sandbox, os) {
                        Err(why_not) => {
                            if reported.insert((name.clone(), "os")) {
                                findings.push(at(entry, step, why_not));
                            }
                        }
                        Ok(needs) => {
                            let installed = |need: &Prerequisite| {
                                done.iter().any(|(path, args)| {
                                    *path == need.script()
                                        && (*need != Prerequisite::NpmSandboxes
                                            || args.is_empty()
                                            || args.contains(&name.as_str()))
                                })
                            };
                            for need in needs.iter().filter(|n| !installed(n)) {
                                if reported.insert((name.clone(), need.script())) {
                                    findings.push(at(
                                        entry,
                                        step,
                                        format!(
                                            "requires `{name}` ({why}) for `cargo {args}`, but no step of this job ran {} ({}) before it",
                                            need.script(),
                                            need.what()
                                        ),
                                    ));
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(cell) = cell {
        let failed = trace
            .steps
            .iter()
            .any(|s| matches!(s.outcome, Outcome::Ran { success: false, .. }));
        if !cell_ran && !failed {
            findings.push(at(
                entry,
                None,
                format!("the cell's sandbox `{cell}` never ran: no step ran `cargo xtask matrix`"),
            ));
        }
    }
}

/// nextest comes prebuilt, from the pinned install action, in exactly the jobs that run it.
fn nextest(entry: &Entry, trace: &Trace, findings: &mut Vec<Finding>) {
    let mut installed = false;
    let mut used = false;
    for event in &trace.events {
        match event {
            Event::Uses { slug, with, .. } if slug == "taiki-e/install-action" => {
                installed |= with
                    .iter()
                    .any(|(k, v)| k == "tool" && v.contains("nextest"));
            }
            Event::Command {
                step, name, args, ..
            } if name == "cargo" => {
                if args.starts_with("install") && args.contains("cargo-nextest") {
                    findings.push(at(
                        entry,
                        entry.steps.get(*step),
                        format!("builds cargo-nextest from source (`cargo {args}`): use the pinned taiki-e/install-action where nextest runs"),
                    ));
                }
                used |= args.starts_with("nextest run");
            }
            _ => {}
        }
    }
    if installed && !used {
        findings.push(at(
            entry,
            None,
            "installs cargo-nextest but never runs it".to_owned(),
        ));
    }
}

/// macOS runs every bash block and script in /bin/bash 3.2.57.
fn bash_3_2(root: &Path, entry: &Entry, trace: &Trace, findings: &mut Vec<Finding>) {
    for step in entry.steps.iter().filter(|s| s.runs) {
        if let StepKind::Run { script, shell, .. } = &step.kind
            && shell == "bash"
        {
            for lint in bash32::lint(script) {
                findings.push(at(entry, Some(step), format!("bash 3.2: {lint}")));
            }
        }
    }
    let scripts: BTreeSet<&str> = trace
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Script { path, .. } => Some(path.as_str()),
            _ => None,
        })
        .collect();
    for path in scripts {
        let Ok(text) = fs_err::read_to_string(root.join(path)) else {
            continue;
        };
        for lint in bash32::lint(&text) {
            findings.push(Finding(format!(
                "{path}:{lint} (run by {} on {})",
                entry.job_id, entry.runs_on
            )));
        }
    }
}

/// `cancel-in-progress` cancels a superseded pull-request run, never a push to main (each
/// push's results are kept, and a cancelled main run saves no caches).
pub fn concurrency(workflow: &crate::workflow::Workflow) -> Vec<Finding> {
    use github_actions_models::common::expr::LoE;
    use github_actions_models::workflow::Concurrency;

    use crate::workflow::Event as RunEvent;
    let mut findings = Vec::new();
    let Some(Concurrency::Rich {
        cancel_in_progress, ..
    }) = &workflow.model.concurrency
    else {
        return findings;
    };
    let on_pr = workflow.model.on.events.pull_request.is_present();
    for (event, want) in [
        (RunEvent::PUSH_TO_MAIN, false),
        (RunEvent::PULL_REQUEST, on_pr),
    ] {
        let mut scope = crate::expr::Scope::default();
        scope.set_str("github.event_name", event.name);
        scope.set_str("github.ref", event.git_ref);
        let got = match cancel_in_progress {
            LoE::Literal(b) => Ok(*b),
            LoE::Expr(e) => scope.condition(e.as_curly()),
        };
        match got {
            Ok(got) if got == want => {}
            Ok(got) => findings.push(Finding(format!(
                "{}: `cancel-in-progress` is {got} for a {} run ({}), it should be {want}",
                workflow.file, event.name, event.git_ref
            ))),
            Err(e) => findings.push(Finding(format!(
                "{}: `cancel-in-progress`: {e}",
                workflow.file
            ))),
        }
    }
    findings
}

/// rust-cache entries fit GitHub's 10 GB per repository: every one has a `shared-key` (one
/// cache per job kind, not per matrix entry), no pull-request run saves one (a PR's caches
/// count against the same 10 GB), and on main at most one entry saves each key per runner.
pub fn caches(on_main: &[Entry], on_pr: &[Entry]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let is_cache =
        |s: &&Step| matches!(&s.kind, StepKind::Uses { slug, .. } if slug == "Swatinem/rust-cache");
    let input = |s: &Step, key: &str| action_input(s, "Swatinem/rust-cache", key);
    for entry in on_pr.iter().filter(|e| e.runs) {
        for step in entry.steps.iter().filter(|s| s.runs).filter(is_cache) {
            if input(step, "shared-key").is_none() {
                findings.push(at(
                    entry,
                    Some(step),
                    "rust-cache without a `shared-key`: one cache per job and matrix entry"
                        .to_owned(),
                ));
            }
            if input(step, "save-if").as_deref() != Some("false") {
                findings.push(at(
                    entry,
                    Some(step),
                    "rust-cache saves from a pull request (`save-if` is not false there)"
                        .to_owned(),
                ));
            }
        }
    }
    let mut savers: std::collections::BTreeMap<(String, String), Vec<String>> = Default::default();
    for entry in on_main.iter().filter(|e| e.runs) {
        for step in entry.steps.iter().filter(|s| s.runs).filter(is_cache) {
            if input(step, "save-if").as_deref() != Some("false") {
                let key = input(step, "shared-key").unwrap_or_else(|| entry.id());
                savers
                    .entry((key, entry.runs_on.clone()))
                    .or_default()
                    .push(entry.id());
            }
        }
    }
    for ((key, runner), ids) in savers.into_iter().filter(|(_, ids)| ids.len() > 1) {
        findings.push(Finding(format!(
            "rust-cache key `{key}` on {runner} is saved by {} entries on main ({}): one saver per key",
            ids.len(),
            ids.join(", ")
        )));
    }
    findings
}
