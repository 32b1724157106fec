//! The workflow files, read with zizmor's models, and every job expanded into its matrix
//! entries as GitHub expands them, each with its steps resolved for that entry.

use std::path::{Path, PathBuf};

use github_actions_expressions::Evaluation;
use github_actions_models::common::expr::LoE;
use github_actions_models::common::{Env, If, Uses};
use github_actions_models::workflow::job::{Matrix, NormalJob, Step as ModelStep, Strategy};
use github_actions_models::workflow::{Defaults, Job, Workflow as Model};

use crate::Error;
use crate::expr::Scope;
use crate::runner::{self, Os};

/// One workflow file.
pub struct Workflow {
    /// The file name under `.github/workflows/` (`matrix.yml`).
    pub file: String,
    pub text: String,
    pub model: Model,
}

/// Every `.github/workflows/*.yml` under `root`, by file name.
pub fn load_all(root: &Path) -> Result<Vec<Workflow>, Error> {
    let dir = root.join(".github/workflows");
    let mut paths: Vec<PathBuf> = fs_err::read_dir(&dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.retain(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")));
    paths.sort();
    paths.iter().map(|path| load(path)).collect()
}

pub fn load(path: &Path) -> Result<Workflow, Error> {
    let text = fs_err::read_to_string(path)?;
    let model = yaml_serde::from_str(&text).map_err(|e| Error::Yaml {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    Ok(Workflow {
        file: path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        text,
        model,
    })
}

/// `github.workspace` on a GitHub-hosted Linux runner; the emulation puts its own copy there.
pub const WORKSPACE: &str = "/home/runner/work/uvfix/uvfix";

/// What started the run: the values `github.event_name` and `github.ref` have.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: &'static str,
    pub git_ref: &'static str,
}

impl Event {
    pub const PUSH_TO_MAIN: Event = Event {
        name: "push",
        git_ref: "refs/heads/main",
    };
    pub const PULL_REQUEST: Event = Event {
        name: "pull_request",
        git_ref: "refs/pull/1/merge",
    };
}

/// One job × matrix entry, resolved: what GitHub would run.
#[derive(Debug)]
pub struct Entry {
    pub file: String,
    pub job_id: String,
    /// The entry's matrix values, in the matrix's order (empty without a matrix).
    pub matrix: Vec<(String, Evaluation)>,
    pub runs_on: String,
    /// `None`: a label we know no image for.
    pub os: Option<Os>,
    pub needs: Vec<String>,
    /// Whether the job's `if:` lets it run at all.
    pub runs: bool,
    /// `defaults.run.shell` as written for the job (or the workflow), if at all.
    pub default_shell: Option<String>,
    /// Workflow and job `env:`, rendered.
    pub env: Vec<(String, String)>,
    pub steps: Vec<Step>,
    pub scope: Scope,
}

#[derive(Debug)]
pub struct Step {
    pub name: String,
    /// 1-based line in the workflow file where the step's `run:` or `uses:` is.
    pub line: usize,
    /// Whether its `if:` lets it run (on the happy path).
    pub runs: bool,
    /// The step's own `env:`, rendered.
    pub env: Vec<(String, String)>,
    pub kind: StepKind,
}

#[derive(Debug)]
pub enum StepKind {
    Run {
        /// The block as the shell gets it (expressions rendered).
        script: String,
        /// The first line as written, for quoting.
        first_line: String,
        /// The shell it runs in: its own `shell:`, the defaults, or the runner's default.
        shell: String,
    },
    Uses {
        /// `owner/repo` (or the raw `uses:` for local and docker actions).
        slug: String,
        with: Vec<(String, String)>,
    },
    /// A step kind our workflows never use (wait, cancel, parallel): reported, not run.
    Other,
}

impl Entry {
    /// `matrix.yml/cells[ubuntu-24.04,codex-current,patched]`: the test name.
    pub fn id(&self) -> String {
        let file = self.file.trim_end_matches(".yml").trim_end_matches(".yaml");
        if self.matrix.is_empty() {
            format!("{file}/{}", self.job_id)
        } else {
            let values: Vec<String> = self
                .matrix
                .iter()
                .map(|(_, v)| v.sema().to_string())
                .collect();
            format!("{file}/{}[{}]", self.job_id, values.join(","))
        }
    }

    pub fn matrix_value(&self, key: &str) -> Option<String> {
        self.matrix
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.sema().to_string())
    }
}

/// Every entry of every job of `workflow`, for a run started by `event` in a checkout at
/// `workspace`.
pub fn entries(workflow: &Workflow, event: &Event, workspace: &Path) -> Result<Vec<Entry>, Error> {
    let mut out = Vec::new();
    for (job_id, job) in &workflow.model.jobs {
        let Job::NormalJob(job) = job else {
            return Err(Error::Unsupported(format!(
                "{}: job `{job_id}` calls a reusable workflow",
                workflow.file
            )));
        };
        for matrix in expand_matrix(job.strategy.as_ref()).map_err(|detail| {
            Error::Unsupported(format!("{}: job `{job_id}`: {detail}", workflow.file))
        })? {
            out.push(entry(workflow, job_id, job, matrix, event, workspace)?);
        }
    }
    Ok(out)
}

fn entry(
    workflow: &Workflow,
    job_id: &str,
    job: &NormalJob,
    matrix: Vec<(String, Evaluation)>,
    event: &Event,
    workspace: &Path,
) -> Result<Entry, Error> {
    let mut scope = Scope::default();
    scope.set_str("github.event_name", event.name);
    scope.set_str("github.ref", event.git_ref);
    scope.set_str("github.workspace", &workspace.to_string_lossy());
    // No emulated event is a `workflow_dispatch`, so every input it declares reads as null,
    // as GitHub's `inputs` context does in a scheduled or pushed run.
    for name in dispatch_inputs(&workflow.text) {
        scope.set(&format!("inputs.{name}"), Evaluation::Null);
    }
    for (key, value) in &matrix {
        scope.set(&format!("matrix.{key}"), value.clone());
    }
    let runs_on = match &job.runs_on {
        LoE::Expr(expr) => scope.render(expr.as_curly())?,
        LoE::Literal(github_actions_models::workflow::job::RunsOn::Target(labels)) => {
            labels.join(",")
        }
        LoE::Literal(other) => {
            return Err(Error::Unsupported(format!("{job_id}: runs-on {other:?}")));
        }
    };
    let os = runner::os_of(&runs_on);
    if let Some(os) = os {
        scope.set_str("runner.os", os.context_name());
        scope.set_str("runner.arch", runner::arch_of(&runs_on));
    }

    let mut env = Vec::new();
    render_env(&workflow.model.env, &scope, &mut env)?;
    render_env(&job.env, &scope, &mut env)?;
    for (key, value) in &env {
        scope.set_str(&format!("env.{key}"), value);
    }
    let runs = condition(job.r#if.as_ref(), &scope)?;
    let default_shell = explicit_shell(job.defaults.as_ref())
        .or_else(|| explicit_shell(workflow.model.defaults.as_ref()));
    let shell = default_shell
        .clone()
        .unwrap_or_else(|| os.map_or("bash", Os::default_shell).to_owned());

    // The job's key, right under `jobs:` (two spaces in), not a `steps:` of another job.
    let job_line = workflow
        .text
        .lines()
        .position(|l| l.trim_end() == format!("  {job_id}:"))
        .unwrap_or(0);
    let mut cursor = job_line;
    let mut steps = Vec::new();
    for (index, step) in job.steps.iter().enumerate() {
        let (shared_if, shared_env, shared_name, kind, needle) = match step {
            ModelStep::Run(run) => {
                let first = run.run.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                let shell = match &run.shell {
                    Some(LoE::Literal(s)) => s.clone(),
                    Some(LoE::Expr(e)) => scope.render(e.as_curly())?,
                    None => shell.clone(),
                };
                let kind = StepKind::Run {
                    script: scope.render(&run.run)?,
                    first_line: first.trim().to_owned(),
                    shell,
                };
                (
                    &run.shared.r#if,
                    &run.shared.env,
                    &run.shared.name,
                    kind,
                    first.trim().to_owned(),
                )
            }
            ModelStep::Uses(uses) => {
                let slug = match &uses.uses {
                    Uses::Repository(repo) => repo.slug().to_owned(),
                    other => other.raw().to_owned(),
                };
                let mut with = Vec::new();
                render_env(&uses.with, &scope, &mut with)?;
                let needle = format!("uses: {}", uses.uses.raw());
                let kind = StepKind::Uses { slug, with };
                (
                    &uses.shared.r#if,
                    &uses.shared.env,
                    &uses.shared.name,
                    kind,
                    needle,
                )
            }
            _ => {
                steps.push(Step {
                    name: format!("step {}", index + 1),
                    line: cursor + 1,
                    runs: false,
                    env: Vec::new(),
                    kind: StepKind::Other,
                });
                continue;
            }
        };
        let line = find_line(&workflow.text, cursor, &needle).unwrap_or(cursor);
        cursor = line + 1;
        let mut step_env = Vec::new();
        render_env(shared_env, &scope, &mut step_env)?;
        let name = match (shared_name, &kind) {
            (Some(name), _) => scope.render(name)?,
            (None, StepKind::Run { first_line, .. }) => format!("Run {first_line}"),
            (None, StepKind::Uses { slug, .. }) => format!("Run {slug}"),
            (None, StepKind::Other) => String::new(),
        };
        steps.push(Step {
            name,
            line: line + 1,
            runs: condition(shared_if.as_ref(), &scope)?,
            env: step_env,
            kind,
        });
    }

    Ok(Entry {
        file: workflow.file.clone(),
        job_id: job_id.to_owned(),
        matrix,
        runs_on,
        os,
        needs: job.needs.clone(),
        runs,
        default_shell,
        env,
        steps,
        scope,
    })
}

fn condition(cond: Option<&If>, scope: &Scope) -> Result<bool, Error> {
    match cond {
        None => Ok(true),
        Some(If::Bool(b)) => Ok(*b),
        Some(If::Expr(expr)) => scope.condition(expr),
    }
}

fn explicit_shell(defaults: Option<&Defaults>) -> Option<String> {
    match defaults?.run.as_ref()?.shell.as_ref()? {
        LoE::Literal(shell) => Some(shell.clone()),
        LoE::Expr(expr) => Some(expr.as_curly().to_owned()),
    }
}

fn render_env(env: &LoE<Env>, scope: &Scope, out: &mut Vec<(String, String)>) -> Result<(), Error> {
    match env {
        LoE::Literal(env) => {
            for (key, value) in env {
                let value = scope.render(&value.to_string())?;
                out.retain(|(k, _)| k != key);
                out.push((key.clone(), value));
            }
            Ok(())
        }
        LoE::Expr(expr) => Err(Error::Unsupported(format!(
            "an `env:` that is one expression: {}",
            expr.as_curly()
        ))),
    }
}

/// The 0-based index of the first line at or after `from` that contains `needle`.
fn find_line(text: &str, from: usize, needle: &str) -> Option<usize> {
    text.lines()
        .enumerate()
        .skip(from)
        .find(|(_, l)| l.contains(needle))
        .map(|(i, _)| i)
}

/// The entries of a strategy matrix, as GitHub expands them: the product of the
/// dimensions; minus every combination an `exclude` entry matches (all its keys equal);
/// then each `include` entry is added to every combination whose original values it does
/// not contradict, or, when it fits none, becomes an entry of its own.
pub fn expand_matrix(
    strategy: Option<&Strategy>,
) -> Result<Vec<Vec<(String, Evaluation)>>, String> {
    let Some(matrix) = strategy.and_then(|s| s.matrix.as_ref()) else {
        return Ok(vec![Vec::new()]);
    };
    let Matrix {
        include,
        exclude,
        dimensions,
    } = match matrix {
        LoE::Literal(matrix) => matrix,
        LoE::Expr(expr) => {
            return Err(format!(
                "a matrix that is one expression: {}",
                expr.as_curly()
            ));
        }
    };
    let LoE::Literal(dimensions) = dimensions else {
        return Err("matrix dimensions given by an expression".into());
    };
    let mut combos: Vec<Vec<(String, Evaluation)>> = vec![Vec::new()];
    let mut keys = Vec::new();
    for (key, values) in dimensions {
        let LoE::Literal(values) = values else {
            return Err(format!("matrix.{key} is an expression"));
        };
        keys.push(key.clone());
        let values: Vec<Evaluation> = values.iter().map(value).collect::<Result<_, _>>()?;
        combos = combos
            .into_iter()
            .flat_map(|combo| {
                values.iter().map(move |v| {
                    let mut next = combo.clone();
                    next.push((key.clone(), v.clone()));
                    next
                })
            })
            .collect();
    }
    if keys.is_empty() {
        combos.clear();
    }
    for excluded in entry_list(exclude)? {
        combos.retain(|combo| {
            !excluded
                .iter()
                .all(|(k, v)| combo.iter().any(|(ck, cv)| ck == k && same(cv, v)))
        });
    }
    let originals: Vec<Vec<(String, Evaluation)>> = combos.clone();
    for included in entry_list(include)? {
        let mut fitted = false;
        for (combo, original) in combos.iter_mut().zip(&originals) {
            let contradicts = included
                .iter()
                .any(|(k, v)| original.iter().any(|(ok, ov)| ok == k && !same(ov, v)));
            if contradicts {
                continue;
            }
            fitted = true;
            for (k, v) in &included {
                match combo.iter_mut().find(|(ck, _)| ck == k) {
                    Some((_, cv)) => *cv = v.clone(),
                    None => combo.push((k.clone(), v.clone())),
                }
            }
        }
        if !fitted {
            combos.push(included);
        }
    }
    Ok(combos)
}

/// `include`/`exclude` entries as (key, value) lists.
fn entry_list<'a, M>(list: &'a LoE<Vec<M>>) -> Result<Vec<Vec<(String, Evaluation)>>, String>
where
    &'a M: IntoIterator<Item = (&'a String, &'a yaml_serde::Value)>,
{
    match list {
        LoE::Literal(entries) => entries
            .iter()
            .map(|m| {
                m.into_iter()
                    .map(|(k, v)| Ok((k.clone(), value(v)?)))
                    .collect()
            })
            .collect(),
        LoE::Expr(expr) => Err(format!(
            "include/exclude given by an expression: {}",
            expr.as_curly()
        )),
    }
}

fn same(a: &Evaluation, b: &Evaluation) -> bool {
    a.sema() == b.sema()
}

fn value(v: &yaml_serde::Value) -> Result<Evaluation, String> {
    match v {
        yaml_serde::Value::String(s) => Ok(Evaluation::String(s.clone())),
        yaml_serde::Value::Bool(b) => Ok(Evaluation::Boolean(*b)),
        yaml_serde::Value::Number(n) => n
            .as_f64()
            .map(Evaluation::Number)
            .ok_or_else(|| format!("matrix value {n}")),
        other => Err(format!("a matrix value that is not a scalar: {other:?}")),
    }
}

/// The names of the inputs a workflow's `on.workflow_dispatch` declares. Read from the YAML
/// itself: the model keeps the inputs only inside its trigger enum, whose shape depends on how
/// `on:` is spelled.
fn dispatch_inputs(text: &str) -> Vec<String> {
    let Ok(value) = yaml_serde::from_str::<yaml_serde::Value>(text) else {
        return Vec::new();
    };
    value
        .get("on")
        .and_then(|on| on.get("workflow_dispatch"))
        .and_then(|dispatch| dispatch.get("inputs"))
        .and_then(yaml_serde::Value::as_mapping)
        .map(|inputs| {
            inputs
                .keys()
                .filter_map(|key| key.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
