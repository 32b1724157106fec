//! `${{ }}` expressions, evaluated for one job × matrix entry.
//!
//! Parsing and evaluation are zizmor's (`github-actions-expressions`): its constant evaluator
//! implements GitHub's semantics (loose `==`, case-insensitive `startsWith`, `fromJSON`, the
//! truthiness of `&&`/`||`). It only evaluates constants, so each context reference
//! (`matrix.sandbox`, `runner.os`, …) and each status function (`always()`, …) is replaced by
//! its value as a literal, at the span the parser reports for it, and the result evaluated.

use std::collections::BTreeMap;

use github_actions_expressions::call::{Call, Function};
use github_actions_expressions::op::BinExpr;
use github_actions_expressions::{Evaluation, Expr, SpannedExpr};

use crate::Error;

/// The values an expression may read. Keys are lower-case context paths (`matrix.uv`,
/// `github.ref`); contexts are case-insensitive in GitHub.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    values: BTreeMap<String, Evaluation>,
}

impl Scope {
    pub fn set(&mut self, path: &str, value: Evaluation) {
        self.values.insert(path.to_ascii_lowercase(), value);
    }

    pub fn set_str(&mut self, path: &str, value: &str) {
        self.set(path, Evaluation::String(value.to_owned()));
    }

    fn lookup(&self, path: &str) -> Result<&Evaluation, Error> {
        self.values
            .get(&path.to_ascii_lowercase())
            .ok_or_else(|| Error::UnknownContext(path.to_owned()))
    }

    /// Evaluate a bare expression (`matrix.uv == 'patched'`, or an `if:` without `${{ }}`).
    pub fn eval(&self, source: &str) -> Result<Evaluation, Error> {
        let source = source.trim();
        let source = match source
            .strip_prefix("${{")
            .and_then(|s| s.strip_suffix("}}"))
        {
            Some(inner) if !inner.contains("${{") => inner.trim(),
            _ => source,
        };
        let parsed = Expr::parse(source).map_err(|e| Error::Expression {
            expr: source.to_owned(),
            detail: e.to_string(),
        })?;
        let mut edits = Vec::new();
        self.literals(&parsed, &mut edits)?;
        edits.sort_by_key(|(start, _, _)| *start);
        let mut constant = String::with_capacity(source.len());
        let mut at = 0;
        for (start, end, literal) in edits {
            constant.push_str(&source[at..start]);
            constant.push_str(&literal);
            at = end;
        }
        constant.push_str(&source[at..]);
        let parsed = Expr::parse(&constant).map_err(|e| Error::Expression {
            expr: source.to_owned(),
            detail: format!("{e} (after substituting values: {constant})"),
        })?;
        parsed.consteval().ok_or_else(|| Error::Expression {
            expr: source.to_owned(),
            detail: format!("not a constant once values are substituted: {constant}"),
        })
    }

    /// An `if:`: its truthiness.
    pub fn condition(&self, source: &str) -> Result<bool, Error> {
        Ok(self.eval(source)?.as_boolean())
    }

    /// A string with `${{ }}` parts (a `run:` block, a `name:`, an `env:` value), as GitHub
    /// renders it before the shell or the action sees it.
    pub fn render(&self, template: &str) -> Result<String, Error> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(open) = rest.find("${{") {
            let close = rest[open..].find("}}").ok_or_else(|| Error::Expression {
                expr: template.to_owned(),
                detail: "`${{` without its `}}`".to_owned(),
            })?;
            out.push_str(&rest[..open]);
            let value = self.eval(&rest[open + 3..open + close])?;
            out.push_str(&value.sema().to_string());
            rest = &rest[open + close + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The (start, end, literal) edits that make `expr` a constant.
    fn literals(
        &self,
        expr: &SpannedExpr<'_>,
        edits: &mut Vec<(usize, usize, String)>,
    ) -> Result<(), Error> {
        let span = expr.origin.span;
        match &expr.inner {
            Expr::Context(_) => {
                let value = self.lookup(expr.origin.raw)?;
                edits.push((span.start, span.end, literal(value)));
            }
            Expr::Call(Call { func, args }) => match status_function(*func) {
                // The happy path: every step before succeeded, nothing was cancelled.
                Some(value) => edits.push((span.start, span.end, value.to_string())),
                None => {
                    for arg in args {
                        self.literals(arg, edits)?;
                    }
                }
            },
            Expr::BinExpr(BinExpr { lhs, rhs, .. }) => {
                self.literals(lhs, edits)?;
                self.literals(rhs, edits)?;
            }
            Expr::UnExpr { expr, .. } => self.literals(expr, edits)?,
            Expr::Index(index) => self.literals(index, edits)?,
            Expr::Literal(_) | Expr::Star | Expr::Identifier(_) => {}
        }
        Ok(())
    }
}

fn status_function(func: Function) -> Option<bool> {
    match func {
        Function::Success | Function::Always => Some(true),
        Function::Cancelled | Function::Failure => Some(false),
        _ => None,
    }
}

/// A value as expression source.
fn literal(value: &Evaluation) -> String {
    match value {
        Evaluation::String(s) => format!("'{}'", s.replace('\'', "''")),
        Evaluation::Boolean(b) => b.to_string(),
        Evaluation::Null => "null".to_owned(),
        // Numbers, arrays and objects: as JSON, through fromJSON (GitHub's own round trip).
        other => format!(
            "fromJSON('{}')",
            other.sema().to_string().replace('\'', "''")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        let mut scope = Scope::default();
        scope.set_str("matrix.uv", "official-0.12.5");
        scope.set_str("matrix.sandbox", "none");
        scope.set_str("runner.os", "Linux");
        scope.set_str("github.ref", "refs/heads/main");
        scope
    }

    #[test]
    fn conditions_read_the_entry() {
        let scope = scope();
        assert!(
            !scope
                .condition("${{ !startsWith(matrix.uv, 'official-') }}")
                .unwrap()
        );
        assert!(
            scope.condition("runner.os == 'linux'").unwrap(),
            "== ignores case"
        );
        assert!(scope.condition("${{ !cancelled() }}").unwrap());
        assert!(
            scope
                .condition("github.ref == 'refs/heads/main' && matrix.sandbox == 'none'")
                .unwrap()
        );
    }

    #[test]
    fn templates_render_every_expression() {
        let scope = scope();
        assert_eq!(
            scope
                .render("${{ matrix.sandbox }} × ${{ matrix.uv }} (x)")
                .unwrap(),
            "none × official-0.12.5 (x)"
        );
    }

    #[test]
    fn an_unknown_context_is_an_error_not_an_empty_string() {
        let err = scope().condition("secrets.TOKEN != ''").unwrap_err();
        assert!(err.to_string().contains("secrets.TOKEN"), "{err}");
    }
}
