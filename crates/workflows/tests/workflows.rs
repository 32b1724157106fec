//! The workflows, one test per job × matrix entry: each is emulated here with stub tools
//! (`uvfix_workflows::emulate`) and must have no finding (`uvfix_workflows::check`): its
//! shells exist on its runner and are bash, its scripts exist and are executable, its
//! artifacts come from a job it needs, every sandbox it requires is installed by its own
//! steps, nextest comes prebuilt where it runs, and on macOS everything it runs is bash 3.2.
//! Plus one test per workflow for `cancel-in-progress`, and one for the rust-cache keys.
//!
//! `UVFIX_WORKFLOWS_ROOT=DIR` checks another checkout (e.g. an older commit) instead.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use libtest_mimic::{Arguments, Failed, Trial};
use uvfix_workflows::workflow::{self, Entry, Event};
use uvfix_workflows::{check, emulate, repo_root};

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let root = repo_root();
    let trials = match trials(&root) {
        Ok(trials) => trials,
        Err(e) => vec![Trial::test("workflows_load", move || Err(e.into()))],
    };
    libtest_mimic::run(&args, trials).exit_code()
}

fn tools_missing() -> Option<String> {
    for tool in ["bash", "git"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Some(format!(
                "`{tool}` is not installed: the emulation runs the scripts with it"
            ));
        }
    }
    None
}

fn trials(root: &std::path::Path) -> Result<Vec<Trial>, String> {
    let workflows = workflow::load_all(root).map_err(|e| e.to_string())?;
    let workspace = PathBuf::from(workflow::WORKSPACE);
    let mut trials = Vec::new();
    let skip = tools_missing();
    for wf in &workflows {
        let entries =
            workflow::entries(wf, &Event::PUSH_TO_MAIN, &workspace).map_err(|e| e.to_string())?;
        for entry in entries.into_iter().filter(|e| e.runs) {
            let id = entry.id();
            let root = root.to_owned();
            let reason = skip.clone();
            trials.push(
                Trial::test(id, move || match reason {
                    Some(why) => Err(format!("skipped here: {why}").into()),
                    None => entry_test(&root, &entry),
                })
                .with_ignored_flag(skip.is_some()),
            );
        }
        let findings = check::concurrency(wf);
        let name = format!("{}/concurrency", wf.file.trim_end_matches(".yml"));
        trials.push(Trial::test(name, move || verdict(&findings)));
    }
    let (mut on_main, mut on_pr) = (Vec::new(), Vec::new());
    for wf in &workflows {
        on_main.extend(
            workflow::entries(wf, &Event::PUSH_TO_MAIN, &workspace).map_err(|e| e.to_string())?,
        );
        // Only the workflows a pull request starts can save a cache from one.
        if wf.model.on.events.pull_request.is_present() {
            on_pr.extend(
                workflow::entries(wf, &Event::PULL_REQUEST, &workspace)
                    .map_err(|e| e.to_string())?,
            );
        }
    }
    let findings = check::caches(&on_main, &on_pr);
    trials.push(Trial::test("rust_cache_keys_fit_10_gb", move || {
        verdict(&findings)
    }));
    let dpkg = match Command::new("dpkg").arg("--print-architecture").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("no dpkg: ci/docker-image.sh runs on Debian and Ubuntu only".to_owned()),
    };
    let root = root.to_owned();
    trials.push(
        Trial::test("docker_image_reads_mirror_file_sources", {
            let dpkg = dpkg.clone();
            move || match dpkg {
                Some(why) => Err(format!("skipped here: {why}").into()),
                None => docker_image_reads_mirror_file_sources(&root),
            }
        })
        .with_ignored_flag(dpkg.is_some()),
    );
    Ok(trials)
}

/// GitHub's x64 runners name no host in their apt sources, only `mirror+file:LIST`:
/// ci/docker-image.sh must bootstrap from the first mirror of that list (or
/// `$UVFIX_APT_MIRROR`), ignore third-party sources, and say what to do when it cannot.
fn docker_image_reads_mirror_file_sources(root: &std::path::Path) -> Result<(), Failed> {
    let apt = tempfile::tempdir().map_err(|e| e.to_string())?;
    let list = apt.path().join("apt-mirrors.txt");
    fs_err::create_dir_all(apt.path().join("sources.list.d")).map_err(|e| e.to_string())?;
    // As the runner images write them (actions/runner-images, configure-apt-sources).
    fs_err::write(
        &list,
        "http://azure.archive.ubuntu.com/ubuntu/\tpriority:1\nhttps://archive.ubuntu.com/ubuntu/\tpriority:2\n",
    )
    .map_err(|e| e.to_string())?;
    let stanza = |suites: &str| {
        format!(
            "Types: deb\nURIs: mirror+file:{}\nSuites: {suites}\nComponents: main universe\nSigned-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n",
            list.display()
        )
    };
    fs_err::write(
        apt.path().join("sources.list.d/ubuntu.sources"),
        format!(
            "{}\n{}",
            stanza("noble noble-updates"),
            stanza("noble-security")
        ),
    )
    .map_err(|e| e.to_string())?;
    fs_err::write(
        apt.path().join("sources.list.d/microsoft-prod.list"),
        "deb [arch=amd64] https://packages.microsoft.com/ubuntu/24.04/prod noble main\n",
    )
    .map_err(|e| e.to_string())?;
    let run = |mirror: Option<&str>| {
        let mut command = Command::new(root.join("ci/docker-image.sh"));
        command
            .arg("--sources")
            .env("UVFIX_APT_DIR", apt.path())
            .env_remove("UVFIX_APT_MIRROR");
        if let Some(mirror) = mirror {
            command.env("UVFIX_APT_MIRROR", mirror);
        }
        command
            .output()
            .map_err(|e| format!("running ci/docker-image.sh: {e}"))
    };
    let out = run(None)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let uris: Vec<&str> = text.lines().filter(|l| l.starts_with("URIs:")).collect();
    if !out.status.success()
        || uris != ["URIs: http://azure.archive.ubuntu.com/ubuntu/"; 2]
        || text.contains("microsoft")
    {
        return Err(format!(
            "expected both stanzas from the list's first mirror and no third-party source, got ({}):\n{text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let out = run(Some("http://archive.ubuntu.com/ubuntu/"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text
        .lines()
        .filter(|l| *l == "URIs: http://archive.ubuntu.com/ubuntu/")
        .count()
        != 2
    {
        return Err(format!("UVFIX_APT_MIRROR was not used:\n{text}").into());
    }
    fs_err::remove_file(&list).map_err(|e| e.to_string())?;
    let out = run(None)?;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !err.contains("UVFIX_APT_MIRROR") {
        return Err(format!(
            "an unreadable mirror list must fail naming UVFIX_APT_MIRROR, got ({}): {err}",
            out.status
        )
        .into());
    }
    Ok(())
}

fn entry_test(root: &std::path::Path, entry: &Entry) -> Result<(), Failed> {
    // Every entry of the workflow, for the artifact check.
    let wf = workflow::load(&root.join(".github/workflows").join(&entry.file))
        .map_err(|e| e.to_string())?;
    let all = workflow::entries(
        &wf,
        &Event::PUSH_TO_MAIN,
        &PathBuf::from(workflow::WORKSPACE),
    )
    .map_err(|e| e.to_string())?;
    // The jobs that upload what this one downloads run first, as on GitHub.
    let artifacts = emulate::Artifacts::new().map_err(|e| e.to_string())?;
    for name in check::downloads(entry) {
        if let Some(uploader) = check::uploader(entry, &all, &name) {
            emulate::emulate(root, uploader, &artifacts).map_err(|e| e.to_string())?;
        }
    }
    let trace = emulate::emulate(root, entry, &artifacts).map_err(|e| e.to_string())?;
    verdict(&check::entry(root, entry, &trace, &all))
}

fn verdict(findings: &[check::Finding]) -> Result<(), Failed> {
    if findings.is_empty() {
        Ok(())
    } else {
        let list: Vec<String> = findings.iter().map(|f| format!("- {f}")).collect();
        Err(format!("{} finding(s):\n{}", findings.len(), list.join("\n")).into())
    }
}
