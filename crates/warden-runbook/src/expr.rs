//! Runbook expressions, in CEL (Common Expression Language, via the `cel` crate): conditions
//! (`when`) and `${...}` references in step configuration. CEL is side-effect free and has no
//! unbounded loops, and is a standard other tools (Kubernetes, Envoy) already teach operators.
//!
//! Nothing in the language bounds how long an expression runs or how much it builds, and the
//! `cel` parser recurses once per bracket and once per operator of a chain (`1+1+1+...`), so a
//! hostile expression could exhaust the stack of whatever thread parses it and abort the process:
//! `warden runbook validate`, or the agent answering a Trigger. Every expression is therefore
//! bounded here before it can do harm:
//!
//! 1. before parsing, a scan caps its length and bracket nesting ([`MAX_EXPR_BYTES`],
//!    [`MAX_EXPR_NESTING`]);
//! 2. it is parsed on a thread of its own with a stack far larger than the parser can use within
//!    those caps ([`PARSE_STACK_BYTES`]), a panic caught there;
//! 3. the parsed tree is vetted ([`super::bounds::vet`]): node count, depth (which bounds the
//!    evaluator's recursion), comprehension nesting, only standard functions, `matches` only with
//!    a literal pattern of bounded size; an expression over the cost budget even with empty
//!    inputs is refused here too;
//! 4. before each evaluation, its worst-case cost and result size are estimated from the tree and
//!    the actual `params` and `steps` ([`super::bounds::estimate`]) and checked against the
//!    [`Budget`] of the step ([`MAX_EVAL_COST`], [`MAX_RESULT_BYTES`]); only then does it run,
//!    under `catch_unwind`.
//!
//! Every refusal is an [`ExprError`] naming the bound.

use super::bounds::{self, Inputs, Limits, Patterns, Refusal, Shape};
use serde_json::Value;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// Longest expression accepted, in bytes. Conditions are one line (the examples' longest is under
/// 100 bytes); 4 KiB leaves ample room and bounds everything after it: a chain of at most ~2000
/// operators, the parser's deepest recursion (measured 1.1 MiB of stack, debug build, for 32
/// brackets around such a chain), and parsing time (under 40 ms, debug build, for any 4 KiB input
/// measured, valid or not).
pub const MAX_EXPR_BYTES: usize = 4096;
/// Deepest nesting of `(`, `[` and `{` accepted, counted before parsing. Each level costs the
/// parser about 10 KiB of stack (measured, debug build); real expressions nest two or three deep.
pub const MAX_EXPR_NESTING: usize = 32;
/// Stack of the thread an expression is parsed on. Within [`MAX_EXPR_BYTES`] and
/// [`MAX_EXPR_NESTING`] the parser was measured to use at most 1.1 MiB (debug build): this is
/// more than ten times that. Only the pages touched are ever committed.
pub const PARSE_STACK_BYTES: usize = 16 << 20;
/// Most nodes in a parsed expression (macros expanded). A realistic condition has tens.
pub const MAX_EXPR_NODES: usize = 1024;
/// Deepest parsed expression (operator chains count: `a+b+c` is three deep). Evaluating
/// recurses once per level, measured at ~1.3 KiB of stack each (debug build): 64 levels need
/// under 100 KiB, safe on any thread that evaluates (tokio's blocking threads have 2 MiB).
pub const MAX_EXPR_DEPTH: usize = 64;
/// Deepest nesting of comprehensions (`all`, `exists`, `exists_one`, `map`, `filter`). Each level
/// multiplies the work by the length of what it iterates; three covers walking nested outputs.
pub const MAX_COMPREHENSION_NESTING: usize = 3;
/// The work one step's condition and templates may do together, in the cost units of
/// [`super::bounds`] (about 0.25 µs each at most, debug build): half a second at the very worst,
/// while a comprehension over ten thousand metrics costs about 150 000.
pub const MAX_EVAL_COST: u64 = 2_000_000;
/// The most a step's condition and templates may produce together, in bytes as
/// [`super::bounds`] weighs values. A template's result becomes plugin configuration: a mebibyte
/// is far more than any configuration needs.
pub const MAX_RESULT_BYTES: u64 = 1 << 20;

/// Why an expression was refused or failed. `expr` is the expression, shortened when long.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExprError {
    #[error("`{expr}` is {bytes} bytes long, over the limit of {limit} bytes for an expression")]
    TooLong {
        expr: String,
        bytes: usize,
        limit: usize,
    },
    #[error("`{expr}` nests brackets {depth} deep, over the limit of {limit}")]
    TooNested {
        expr: String,
        depth: usize,
        limit: usize,
    },
    #[error("`{expr}` is not a valid CEL expression: {message}")]
    Syntax { expr: String, message: String },
    #[error("`{expr}` has more than {limit} nodes")]
    TooManyNodes { expr: String, limit: usize },
    #[error(
        "`{expr}` is {depth} levels deep (each operator of a chain is a level), over the limit of {limit}"
    )]
    TooDeep {
        expr: String,
        depth: usize,
        limit: usize,
    },
    #[error(
        "`{expr}` nests comprehensions (all, exists, map, ...) {depth} deep, over the limit of {limit}"
    )]
    TooManyComprehensions {
        expr: String,
        depth: usize,
        limit: usize,
    },
    #[error("`{expr}` calls `{function}`, which runbook expressions do not offer")]
    UnknownFunction { expr: String, function: String },
    #[error(
        "`{expr}` builds a message (`{type_name}{{...}}`), which runbook expressions do not offer"
    )]
    Message { expr: String, type_name: String },
    #[error(
        "`{expr}`: matches() needs a literal pattern (a pattern computed from inputs could be made arbitrarily slow)"
    )]
    PatternNotLiteral { expr: String },
    #[error("`{expr}`: pattern {pattern:?} is refused: {message}")]
    Pattern {
        expr: String,
        pattern: String,
        message: String,
    },
    #[error(
        "`{expr}` could cost {estimate} units to evaluate{context}, over the {left} left of the step's budget of {limit}"
    )]
    TooCostly {
        expr: String,
        estimate: String,
        context: &'static str,
        left: u64,
        limit: u64,
    },
    #[error(
        "`{expr}` could produce {estimate} bytes{context}, over the {left} left of the step's limit of {limit}"
    )]
    ResultTooLarge {
        expr: String,
        estimate: String,
        context: &'static str,
        left: u64,
        limit: u64,
    },
    #[error("`{expr}` cannot be bounded: {why}")]
    Unbounded { expr: String, why: String },
    #[error("`{expr}` made the cel crate fail ({stage}); the expression is refused")]
    Crashed { expr: String, stage: &'static str },
    #[error("`{expr}`: {message}")]
    Eval { expr: String, message: String },
    #[error("`{expr}` must be true or false, it gave {got}")]
    NotBool { expr: String, got: String },
    #[error("`{expr}`: result cannot be used: {message}")]
    Unusable { expr: String, message: String },
    #[error("`{text}`: `${{` without a closing `}}`")]
    Unclosed { text: String },
}

impl ExprError {
    /// How to fix it, for validation messages.
    pub fn help(&self) -> &'static str {
        match self {
            ExprError::Syntax { .. } | ExprError::Unclosed { .. } => {
                "see the CEL language definition; e.g. steps.check.status != 'ok'"
            }
            ExprError::UnknownFunction { .. } | ExprError::Message { .. } => {
                "runbook expressions offer CEL's standard functions and macros (docs/RUNBOOKS.md)"
            }
            _ => {
                "runbook expressions are bounded in size, depth and cost (docs/RUNBOOKS.md, Expressions)"
            }
        }
    }
}

/// The expression as errors quote it: whole when short, its start and its length otherwise.
fn shorten(source: &str) -> String {
    const SHOWN: usize = 60;
    if source.len() <= SHOWN + 20 {
        return source.to_string();
    }
    let mut end = SHOWN;
    while !source.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &source[..end], source.len())
}

/// Deepest bracket nesting outside string literals and comments: a scan cheap enough to run
/// on any input before the parser sees it.
fn nesting(source: &str) -> usize {
    let bytes = source.as_bytes();
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'(' | b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            q @ (b'\'' | b'"') => {
                let raw = i > 0 && matches!(bytes[i - 1], b'r' | b'R');
                let triple = bytes.get(i + 1) == Some(&q) && bytes.get(i + 2) == Some(&q);
                i += if triple { 3 } else { 1 };
                while i < bytes.len() {
                    if bytes[i] == b'\\' && !raw {
                        i += 2;
                        continue;
                    }
                    if bytes[i] == q
                        && (!triple
                            || (bytes.get(i + 1) == Some(&q) && bytes.get(i + 2) == Some(&q)))
                    {
                        i += if triple { 2 } else { 0 };
                        break;
                    }
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    max
}

/// A compiled expression and its source.
#[derive(Clone)]
pub struct Expr {
    pub source: String,
    program: Arc<cel::Program>,
    patterns: Arc<Patterns>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.source)
    }
}

/// What the parser's thread hands back.
type Parsed = Result<(cel::Program, Patterns), ExprError>;

/// Parse and vet `source` on the current thread (which must have [`PARSE_STACK_BYTES`]).
fn parse_and_vet(source: &str) -> Parsed {
    let expr = || shorten(source);
    let program = cel::Program::compile(source).map_err(|e| ExprError::Syntax {
        expr: expr(),
        message: e.to_string(),
    })?;
    let limits = Limits {
        nodes: MAX_EXPR_NODES,
        depth: MAX_EXPR_DEPTH,
        comprehensions: MAX_COMPREHENSION_NESTING,
    };
    // A refused tree is dropped here, on the big stack: dropping recurses as deep as the tree.
    let patterns = bounds::vet(program.expression(), limits).map_err(|r| match r {
        Refusal::Nodes(_) => ExprError::TooManyNodes {
            expr: expr(),
            limit: MAX_EXPR_NODES,
        },
        Refusal::Depth(depth) => ExprError::TooDeep {
            expr: expr(),
            depth,
            limit: MAX_EXPR_DEPTH,
        },
        Refusal::Comprehensions(depth) => ExprError::TooManyComprehensions {
            expr: expr(),
            depth,
            limit: MAX_COMPREHENSION_NESTING,
        },
        Refusal::Function(function) => ExprError::UnknownFunction {
            expr: expr(),
            function,
        },
        Refusal::Struct(type_name) => ExprError::Message {
            expr: expr(),
            type_name,
        },
        Refusal::PatternNotLiteral => ExprError::PatternNotLiteral { expr: expr() },
        Refusal::Pattern { pattern, message } => ExprError::Pattern {
            expr: expr(),
            pattern,
            message,
        },
        Refusal::Unspecified => ExprError::Crashed {
            expr: expr(),
            stage: "an unspecified node",
        },
    })?;
    // Over budget with empty inputs means over budget with any: say so at validation.
    check(
        &expr(),
        program.expression(),
        Inputs::empty(),
        &patterns,
        &mut Budget::default(),
        " even with empty inputs",
    )?;
    Ok((program, patterns))
}

/// Estimate `root` against `inputs` and take the estimate from `budget`, or refuse.
fn check(
    expr: &str,
    root: &cel::IdedExpr,
    inputs: Inputs<'_>,
    patterns: &Patterns,
    budget: &mut Budget,
    context: &'static str,
) -> Result<(), ExprError> {
    let est = bounds::estimate(root, inputs, patterns).map_err(|why| ExprError::Unbounded {
        expr: expr.to_string(),
        why,
    })?;
    let shown = |v: f64| {
        if v.is_finite() && v < 1e15 {
            format!("{}", v.ceil() as u64)
        } else {
            "more than 10^15".to_string()
        }
    };
    // A NaN estimate fits nothing.
    let fits = |estimate: f64, left: u64| estimate.is_finite() && estimate <= left as f64;
    if !fits(est.cost, budget.cost_left) {
        return Err(ExprError::TooCostly {
            expr: expr.to_string(),
            estimate: shown(est.cost),
            context,
            left: budget.cost_left,
            limit: MAX_EVAL_COST,
        });
    }
    if !fits(est.bytes, budget.bytes_left) {
        return Err(ExprError::ResultTooLarge {
            expr: expr.to_string(),
            estimate: shown(est.bytes),
            context,
            left: budget.bytes_left,
            limit: MAX_RESULT_BYTES,
        });
    }
    budget.cost_left = budget.cost_left.saturating_sub(est.cost.ceil() as u64);
    budget.bytes_left = budget.bytes_left.saturating_sub(est.bytes.ceil() as u64);
    Ok(())
}

impl Expr {
    /// Check the bounds, parse on a thread with a known large stack, vet the tree.
    pub fn compile(source: &str) -> Result<Expr, ExprError> {
        if source.len() > MAX_EXPR_BYTES {
            return Err(ExprError::TooLong {
                expr: shorten(source),
                bytes: source.len(),
                limit: MAX_EXPR_BYTES,
            });
        }
        let depth = nesting(source);
        if depth > MAX_EXPR_NESTING {
            return Err(ExprError::TooNested {
                expr: shorten(source),
                depth,
                limit: MAX_EXPR_NESTING,
            });
        }
        let owned = source.to_string();
        let crashed = || ExprError::Crashed {
            expr: shorten(source),
            stage: "parsing",
        };
        let parsed = std::thread::Builder::new()
            .name("warden-cel-parse".into())
            .stack_size(PARSE_STACK_BYTES)
            .spawn(move || catch_unwind(AssertUnwindSafe(|| parse_and_vet(&owned))))
            .map_err(|_| crashed())?
            .join();
        let (program, patterns) = match parsed {
            Ok(Ok(parsed)) => parsed?,
            Ok(Err(_)) | Err(_) => return Err(crashed()),
        };
        Ok(Expr {
            source: source.to_string(),
            program: Arc::new(program),
            patterns: Arc::new(patterns),
        })
    }

    /// Step ids named as `steps.<id>` in the expression.
    pub fn step_references(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = self.source.as_str();
        while let Some(at) = rest.find("steps.") {
            let before_ok = at == 0
                || !rest[..at]
                    .ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            let tail = &rest[at + "steps.".len()..];
            let id: String = tail
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if before_ok && !id.is_empty() {
                out.push(id);
            }
            rest = tail;
        }
        out
    }

    /// Evaluate with `vars`, after taking its estimated cost from `budget` (refused if it could
    /// exceed what is left).
    pub fn eval(&self, vars: &Vars<'_>, budget: &mut Budget) -> Result<Value, ExprError> {
        let expr = || shorten(&self.source);
        let prepared = vars.prepared();
        let inputs = Inputs {
            params: &prepared.shapes.0,
            steps: &prepared.shapes.1,
        };
        check(
            &expr(),
            self.program.expression(),
            inputs,
            &self.patterns,
            budget,
            "",
        )?;
        let result = catch_unwind(AssertUnwindSafe(|| {
            self.program
                .execute(&prepared.context)
                .map(|v| v.json().map_err(|e| e.to_string()))
        }));
        match result {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(message))) => Err(ExprError::Unusable {
                expr: expr(),
                message,
            }),
            Ok(Err(e)) => Err(ExprError::Eval {
                expr: expr(),
                message: e.to_string(),
            }),
            Err(_) => Err(ExprError::Crashed {
                expr: expr(),
                stage: "evaluating",
            }),
        }
    }

    pub fn eval_bool(&self, vars: &Vars<'_>, budget: &mut Budget) -> Result<bool, ExprError> {
        match self.eval(vars, budget)? {
            Value::Bool(b) => Ok(b),
            other => Err(ExprError::NotBool {
                expr: shorten(&self.source),
                got: shorten(&other.to_string()),
            }),
        }
    }
}

/// What a step's condition and templates may still spend: [`MAX_EVAL_COST`] units of work and
/// [`MAX_RESULT_BYTES`] of results, shared by all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    cost_left: u64,
    bytes_left: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            cost_left: MAX_EVAL_COST,
            bytes_left: MAX_RESULT_BYTES,
        }
    }
}

/// The variables expressions see, converted for `cel` and measured for the estimates once for
/// all the expressions of a step, and only if one is evaluated (a big output costs time to
/// convert).
pub struct Vars<'a> {
    params: &'a Value,
    steps: &'a Value,
    prepared: std::cell::OnceCell<Prepared>,
}

struct Prepared {
    /// Of `params` and `steps`.
    shapes: (Shape, Shape),
    context: cel::Context<'static, 'static>,
}

impl<'a> Vars<'a> {
    pub fn new(params: &'a Value, steps: &'a Value) -> Vars<'a> {
        Vars {
            params,
            steps,
            prepared: std::cell::OnceCell::new(),
        }
    }

    fn prepared(&self) -> &Prepared {
        self.prepared.get_or_init(|| {
            let mut context = cel::Context::default();
            for (name, value) in [("params", self.params), ("steps", self.steps)] {
                context.add_variable_from_value(name, to_cel(value));
            }
            Prepared {
                shapes: (Shape::of(self.params), Shape::of(self.steps)),
                context,
            }
        })
    }
}

/// JSON to CEL, with whole numbers as CEL `int` (serde's mapping would make positive ones `uint`,
/// and CEL refuses `uint + int`, so `params.days + 1` would fail).
fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            _ => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(std::sync::Arc::new(s.clone())),
        Value::Array(items) => items.iter().map(to_cel).collect::<Vec<_>>().into(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), to_cel(v)))
            .collect::<std::collections::HashMap<String, cel::Value>>()
            .into(),
    }
}

/// A configuration string: `"${expr}"` alone keeps the expression's type; `${...}` inside other
/// text is interpolated as text.
pub enum Template {
    Literal(String),
    Whole(Expr),
    Parts(Vec<Result<String, Expr>>),
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, ExprError> {
        if !text.contains("${") {
            return Ok(Template::Literal(text.to_string()));
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Ok(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| ExprError::Unclosed {
                text: shorten(text),
            })?;
            parts.push(Err(Expr::compile(after[..end].trim())?));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Ok(rest.to_string()));
        }
        Ok(match parts.as_slice() {
            [Err(e)] => Template::Whole(e.clone()),
            _ => Template::Parts(parts),
        })
    }

    pub fn exprs(&self) -> Vec<&Expr> {
        match self {
            Template::Literal(_) => vec![],
            Template::Whole(e) => vec![e],
            Template::Parts(p) => p.iter().filter_map(|x| x.as_ref().err()).collect(),
        }
    }

    pub fn render(&self, vars: &Vars<'_>, budget: &mut Budget) -> Result<Value, ExprError> {
        match self {
            Template::Literal(s) => Ok(Value::String(s.clone())),
            Template::Whole(e) => e.eval(vars, budget),
            Template::Parts(parts) => {
                let mut out = String::new();
                for p in parts {
                    match p {
                        Ok(text) => out.push_str(text),
                        Err(e) => match e.eval(vars, budget)? {
                            Value::String(s) => out.push_str(&s),
                            other => out.push_str(&other.to_string()),
                        },
                    }
                }
                Ok(Value::String(out))
            }
        }
    }
}

/// Every template in a JSON value (strings at any depth).
pub fn walk_templates(value: &Value, f: &mut dyn FnMut(&str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|v| walk_templates(v, f)),
        Value::Object(map) => map.values().for_each(|v| walk_templates(v, f)),
        _ => {}
    }
}

/// Render every template in a JSON value, all of them within `budget`.
pub fn render_value(
    value: &Value,
    vars: &Vars<'_>,
    budget: &mut Budget,
) -> Result<Value, ExprError> {
    Ok(match value {
        Value::String(s) => Template::parse(s)?.render(vars, budget)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(v, vars, budget))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, vars, budget)?)))
                .collect::<Result<_, ExprError>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(e: &Expr, params: &Value, steps: &Value) -> Result<Value, ExprError> {
        e.eval(&Vars::new(params, steps), &mut Budget::default())
    }

    #[test]
    fn conditions_and_templates() {
        let params = json!({"dir": "/tmp/x", "days": 7, "force": false});
        let steps = json!({"check": {"status": "critical", "ok": true}});
        let vars = Vars::new(&params, &steps);
        let mut budget = Budget::default();
        let e = Expr::compile("steps.check.status != 'ok' || params.force").expect("compiles");
        assert!(e.eval_bool(&vars, &mut budget).expect("evaluates"));
        assert_eq!(e.step_references(), vec!["check"]);
        assert_eq!(
            Template::parse("${params.days}")
                .expect("t")
                .render(&vars, &mut budget)
                .expect("r"),
            json!(7)
        );
        assert_eq!(
            Template::parse("dir=${params.dir}, n=${params.days + 1}")
                .expect("t")
                .render(&vars, &mut budget)
                .expect("r"),
            json!("dir=/tmp/x, n=8")
        );
        assert!(Expr::compile("steps.check.status ==").is_err());
        assert!(
            Expr::compile("1 + 1")
                .expect("c")
                .eval_bool(&vars, &mut budget)
                .is_err()
        );
        assert!(budget.cost_left < MAX_EVAL_COST, "evaluations are paid for");
    }

    #[test]
    fn the_nesting_scan_skips_strings_and_comments() {
        assert_eq!(nesting("((a))"), 2);
        assert_eq!(
            nesting(r#"'((((' + "[[[" + r'\' + '''(("''' + '\'(' + "\"[""#),
            0
        );
        assert_eq!(nesting("a // (((((\n+ [b]"), 1);
        assert_eq!(nesting("'\\'' + (b)"), 1);
    }

    /// The shapes that recurse deepest in the parser, as large as the pre-parse caps let them be,
    /// parse on the parser's thread and come back as typed refusals (a debug build measured them
    /// at up to 1.1 MiB of stack: on a 2 MiB thread they could not all be parsed).
    #[test]
    fn the_deepest_shapes_the_caps_allow_are_refused_not_crashed() {
        // One level is left for the `[0]` and `[1]` of the chains.
        let open = "(".repeat(MAX_EXPR_NESTING - 1);
        let close = ")".repeat(MAX_EXPR_NESTING - 1);
        let room = MAX_EXPR_BYTES - 2 * MAX_EXPR_NESTING - 1;
        for link in ["+1", "==1", ".b", "[0]", " in [1]"] {
            let chain = link.repeat(room / link.len());
            let source = format!("{open}1{chain}{close}");
            assert!(source.len() <= MAX_EXPR_BYTES);
            let refused = Expr::compile(&source).expect_err(link);
            assert!(
                matches!(
                    refused,
                    ExprError::TooManyNodes { .. } | ExprError::TooDeep { .. }
                ),
                "{link}: {refused}"
            );
        }
        let lists = format!(
            "{}{}",
            "[".repeat(MAX_EXPR_NESTING),
            "]".repeat(MAX_EXPR_NESTING)
        );
        assert!(Expr::compile(&lists).is_ok(), "32 levels are allowed");
    }

    #[test]
    fn ordinary_expressions_fit_the_bounds() {
        let metrics = |n: usize| -> Vec<Value> {
            (0..n)
                .map(|i| json!({"name": format!("disk{i}"), "value": i, "unit": "%"}))
                .collect()
        };
        let steps = json!({
            "check": {"ok": true, "status": "warning", "output": {"type": "check", "value": {"metrics": metrics(10_000)}}},
            "small": {"ok": true, "status": "ok", "output": {"type": "check", "value": {"metrics": metrics(1_000)}}},
        });
        let params = json!({"threshold": 90});
        for source in [
            "steps.check.output.value.metrics.exists(m, m.value > params.threshold && m.name.startsWith('disk'))",
            "steps.check.output.value.metrics.filter(m, m.unit == '%').map(m, m.name).size() > 0",
            "size(steps.check.output.value.metrics) == 10000 && steps.check.status in ['warning', 'critical']",
            "steps.check.output.value.metrics.exists_one(m, m.value == 42)",
            // `cel` compiles a pattern at every call (~50 µs): a thousand calls fit the budget.
            "steps.small.output.value.metrics.all(m, m.name.matches('^disk[0-9]+$'))",
        ] {
            let e = Expr::compile(source).expect(source);
            assert_eq!(eval(&e, &params, &steps), Ok(json!(true)), "{source}");
        }
    }
}
