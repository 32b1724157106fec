//! `cargo xtask upstream validate <uv git dir> <rev>… [--against <rev>]`: does *this*
//! astral-sh/uv revision fix the read-only cache, and does it break anything?
//!
//! Each revision is built as it is, and so is the revision it is compared with (`--against`,
//! else its merge base with the release the stack is written against, else its parent;
//! [`revision::pair`]). Both builds run the same cells of the matrix, as a library
//! ([`uvfix_scenario::pool::run_cells`]), and are judged by comparison: per sandbox, how many cells
//! succeed before and after, which turned green and which turned red ([`compare`]). An
//! upstream revision gets no expectations of its own: whether it is "fixed" is what is asked.
//!
//! Everything that can be wrong with the input (not a git repository, not astral-sh/uv, an
//! unknown revision, no toolchain that can build it) is an error before anything is checked
//! out; a revision that does not build is an error naming the command, and the worktree is
//! removed either way ([`build::Builder`]).

mod build;
mod compare;
mod history;
mod revision;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use uvfix_pipeline::builder::{self, Variant};
use uvfix_pipeline::{Manifest, Paths};
use uvfix_sandbox::Sandbox;
use uvfix_scenario::cell::UvUnderTest;
use uvfix_scenario::plan::{self, Filter};
use uvfix_scenario::pool;
use uvfix_scenario::{Build, CacheState, ScenarioId};

use self::compare::Comparison;
use super::toolchain::ToolchainArgs;
use super::workdir::{self, display};

#[derive(clap::Args)]
pub struct Options {
    /// An astral-sh/uv clone (a checkout or a bare git directory).
    pub repo: PathBuf,
    /// The revision(s) to validate, each against its own comparison point: commits, tags,
    /// branches.
    #[arg(required_unless_present = "stack", value_name = "REV")]
    pub revs: Vec<String>,
    /// Also validate the fixture's stack, up to its last proposed step, exported and applied
    /// to the release it is written against, against that release.
    #[arg(long)]
    pub stack: bool,
    /// Compare with this revision [default: the merge base with the release the stack is
    /// written against, when REV is not in that release's history; else REV's parent]. With
    /// one REV only.
    #[arg(long, value_name = "REV")]
    pub against: Option<String>,
    #[command(flatten)]
    pub toolchain: ToolchainArgs,
    /// Comma-separated sandbox names (default: all).
    #[arg(long, value_delimiter = ',')]
    pub sandbox: Option<Vec<String>>,
    /// Comma-separated scenarios (default: all).
    #[arg(long, value_enum, value_delimiter = ',', ignore_case = true)]
    pub scenario: Option<Vec<ScenarioId>>,
    /// Comma-separated cache states (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub state: Option<Vec<CacheState>>,
    /// Cells run at once (default: the number of CPUs).
    #[arg(short = 'j', long)]
    pub jobs: Option<usize>,
    /// Also write the tables into this Markdown file, replacing the sections of these
    /// revisions and keeping the others (docs/upstream-history.md).
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
}

pub(crate) fn run(paths: &Paths, options: &Options) -> Result<()> {
    if options.against.is_some() && options.revs.len() > 1 {
        bail!("--against compares one revision; give one REV with it");
    }
    let source = std::path::absolute(&options.repo)?;
    let filter = filter(options)?;
    let base_tag = Manifest::load(&paths.patches())?.uv.version;
    // Every check that can fail on bad input, before anything is built or checked out.
    let mut pairs = options
        .revs
        .iter()
        .map(|rev| revision::pair(&source, rev, options.against.as_deref(), Some(&base_tag)))
        .collect::<Result<Vec<_>>>()?;
    // The stack: its proposed steps as `upstream export` writes them, on the release.
    let stack = match options.stack {
        true => Some(proposed_stack(paths, &source, &base_tag)?),
        false => None,
    };
    if let Some((pair, _)) = &stack {
        pairs.push(pair.clone());
    }
    let mut plans = Vec::new();
    for pair in &pairs {
        let before = build::plan(paths, &source, &pair.before, &options.toolchain)?;
        let mut after = build::plan(paths, &source, &pair.after, &options.toolchain)?;
        if let Some((stack_pair, patches)) = &stack
            && stack_pair == pair
        {
            after.patches = patches.clone();
        }
        for plan in [&before, &after] {
            println!(
                "uvfix: {} ({}): {}",
                plan.revision.short(),
                plan.revision.asked,
                plan.toolchain.describe()
            );
        }
        plans.push((before, after));
    }
    let dir = workdir::dir(paths).join("validate");
    let mut built = Vec::new();
    {
        let mut builder = build::Builder::new(paths, &source, &dir);
        for (before, after) in &plans {
            built.push((builder.build(before)?, builder.build(after)?));
        }
        // The builder's worktree goes here, before the cells run.
    }
    let helper = builder::build_helper(paths)?;
    let pristine = builder::given(Variant::Pristine);
    let mut sections = Vec::new();
    let mut red = Vec::new();
    for ((pair, (before, after)), (_, after_plan)) in pairs.iter().zip(&built).zip(&plans) {
        let builds = [
            Build::Revision(pair.before.short().to_string()),
            // The release with the exported stack applied: what `Build::Upstream` names.
            match after_plan.patches.is_empty() {
                true => Build::Revision(pair.after.short().to_string()),
                false => Build::Upstream,
            },
        ];
        let uvs = [
            UvUnderTest::new(builds[0].clone(), &before.uv),
            UvUnderTest::new(builds[1].clone(), &after.uv),
        ];
        for uv in &uvs {
            uv.check().map_err(anyhow::Error::msg)?;
        }
        let cells = plan::cells(&uvs, &filter);
        let required = Sandbox::required();
        if let Some(cell) = cells
            .iter()
            .find(|c| c.unavailable.is_some() && required.contains(&c.sandbox))
        {
            bail!(
                "sandbox `{}` is required (UVFIX_REQUIRE_SANDBOXES) but unavailable: {}",
                cell.sandbox,
                cell.unavailable.as_deref().unwrap_or_default()
            );
        }
        println!(
            "\nuvfix: astral-sh/uv {} ({}) against {} ({}): {} cells",
            pair.after_name(),
            pair.after.subject,
            pair.before.short(),
            pair.how,
            cells.len()
        );
        let (results, cost) = pool::run_cells(
            &cells,
            pool::jobs(options.jobs),
            &helper,
            false,
            pristine.as_deref(),
        )?;
        println!("{}", cost.line());
        let out = dir.join(format!("{}-vs-{}", builds[1], builds[0]));
        uvfix_scenario::report::write_reports(&results, &out)?;
        let comparison = Comparison::of(&results, &builds[0], &builds[1]);
        fs_err::write(
            out.join("comparison.json"),
            serde_json::to_string_pretty(&comparison)?,
        )?;
        println!(
            "\nastral-sh/uv {} `{}` ({}) against `{}` ({}):\n  before built with {}\n  \
             after built with {}\n\n{}{}",
            pair.after.date,
            pair.after_name(),
            pair.after.subject,
            pair.before.short(),
            pair.how,
            before.toolchain,
            after.toolchain,
            comparison.table(),
            comparison.changes()
        );
        eprintln!(
            "uvfix: every cell of both builds in {} (matrix.md, matrix.json, junit.xml; \
             comparison.json)",
            display(paths, &out)
        );
        if !comparison.red.is_empty() {
            red.push(format!(
                "{} ({}): {} cell(s) turned red",
                pair.after_name(),
                pair.after.subject,
                comparison.red.len()
            ));
        }
        sections.push(history::section(
            pair,
            &before.toolchain,
            &after.toolchain,
            &comparison,
        ));
    }
    if let Some(file) = &options.history {
        let existing = fs_err::read_to_string(file).ok();
        let text = history::merge(
            existing.as_deref(),
            sections,
            &format!(
                "cargo xtask upstream validate <astral-sh/uv clone> <REV> --history {}",
                display(paths, file)
            ),
        );
        fs_err::write(file, text).with_context(|| format!("writing {}", file.display()))?;
        eprintln!("uvfix: wrote {}", file.display());
    }
    if !red.is_empty() {
        bail!(
            "cells that succeed before fail after (the lists are above):\n  {}",
            red.join("\n  ")
        );
    }
    Ok(())
}

/// The release the stack is written against, and the same release with the stack's steps up
/// to the last proposed one, as `upstream export` writes them (the optional steps above it are
/// design decisions a maintainer may refuse).
fn proposed_stack(
    paths: &Paths,
    source: &std::path::Path,
    base_tag: &str,
) -> Result<(revision::Pair, Vec<super::export::ExportedPatch>)> {
    let release = revision::revision(source, base_tag)?;
    let exported = super::export::run(paths, &super::export::default_out(paths))?;
    let last = exported
        .iter()
        .rposition(|p| p.status == uvfix_pipeline::manifest::Status::Proposed)
        .context("the stack has no proposed step")?;
    let patches = exported[..=last].to_vec();
    let ids: Vec<&str> = patches.iter().map(|p| p.step.as_str()).collect();
    let after = revision::Revision {
        asked: format!("{base_tag} + the stack"),
        subject: format!(
            "the fixture's proposed steps ({}), as `upstream export` writes them",
            ids.join(", ")
        ),
        ..release.clone()
    };
    let pair = revision::Pair {
        before: release,
        after,
        how: "the release the stack is written against".to_string(),
    };
    Ok((pair, patches))
}

fn filter(options: &Options) -> Result<Filter> {
    let sandboxes = options
        .sandbox
        .as_ref()
        .map(|names| {
            names
                .iter()
                .map(|name| {
                    Sandbox::from_name(name).with_context(|| format!("unknown sandbox `{name}`"))
                })
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?;
    Ok(Filter {
        sandboxes,
        scenarios: options.scenario.clone(),
        states: options.state.clone(),
    })
}
