//! Runbook expressions, in CEL (Common Expression Language, via the `cel` crate): conditions
//! (`when`) and `${...}` references in step configuration. CEL is side-effect free, terminates,
//! and is a standard other tools (Kubernetes, Envoy) already teach operators.

use serde_json::Value;

/// A compiled expression and its source.
#[derive(Clone)]
pub struct Expr {
    pub source: String,
    program: std::sync::Arc<cel::Program>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.source)
    }
}

impl Expr {
    pub fn compile(source: &str) -> Result<Expr, String> {
        let program = cel::Program::compile(source)
            .map_err(|e| format!("`{source}` is not a valid CEL expression: {e}"))?;
        Ok(Expr {
            source: source.to_string(),
            program: std::sync::Arc::new(program),
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

    /// Evaluate with `params` and `steps` (JSON objects) as variables.
    pub fn eval(&self, params: &Value, steps: &Value) -> Result<Value, String> {
        let mut context = cel::Context::default();
        for (name, value) in [("params", params), ("steps", steps)] {
            context.add_variable_from_value(name, to_cel(value));
        }
        let value = self
            .program
            .execute(&context)
            .map_err(|e| format!("`{}`: {e}", self.source))?;
        value
            .json()
            .map_err(|e| format!("`{}`: result cannot be used: {e}", self.source))
    }

    pub fn eval_bool(&self, params: &Value, steps: &Value) -> Result<bool, String> {
        match self.eval(params, steps)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!(
                "`{}` must be true or false, it gave {other}",
                self.source
            )),
        }
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
    pub fn parse(text: &str) -> Result<Template, String> {
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
            let end = after
                .find('}')
                .ok_or_else(|| format!("`{text}`: `${{` without a closing `}}`"))?;
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

    pub fn render(&self, params: &Value, steps: &Value) -> Result<Value, String> {
        match self {
            Template::Literal(s) => Ok(Value::String(s.clone())),
            Template::Whole(e) => e.eval(params, steps),
            Template::Parts(parts) => {
                let mut out = String::new();
                for p in parts {
                    match p {
                        Ok(text) => out.push_str(text),
                        Err(e) => match e.eval(params, steps)? {
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

/// Render every template in a JSON value.
pub fn render_value(value: &Value, params: &Value, steps: &Value) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => Template::parse(s)?.render(params, steps)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(v, params, steps))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, params, steps)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_and_templates() {
        let params = json!({"dir": "/tmp/x", "days": 7, "force": false});
        let steps = json!({"check": {"status": "critical", "ok": true}});
        let e = Expr::compile("steps.check.status != 'ok' || params.force").expect("compiles");
        assert!(e.eval_bool(&params, &steps).expect("evaluates"));
        assert_eq!(e.step_references(), vec!["check"]);
        assert_eq!(
            Template::parse("${params.days}")
                .expect("t")
                .render(&params, &steps)
                .expect("r"),
            json!(7)
        );
        assert_eq!(
            Template::parse("dir=${params.dir}, n=${params.days + 1}")
                .expect("t")
                .render(&params, &steps)
                .expect("r"),
            json!("dir=/tmp/x, n=8")
        );
        assert!(Expr::compile("steps.check.status ==").is_err());
        assert!(
            Expr::compile("1 + 1")
                .expect("c")
                .eval_bool(&params, &steps)
                .is_err()
        );
    }
}
