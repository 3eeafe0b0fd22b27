//! Templates of JSON bodies: a JSON value whose strings may hold `{{name}}` placeholders,
//! rendered by replacing each with its variable's value. Substitution happens inside the parsed
//! strings, so a value can never break out of its string or change the document's shape. An
//! unknown placeholder is a `bad-config` error naming it (a typo must not send a ticket saying
//! `{{incident.monitr}}`).

use serde_json::Value;
use std::collections::BTreeMap;
use warden_sdk::PluginError;

/// Variables by name, e.g. `incident.monitor`.
pub type Vars = BTreeMap<&'static str, String>;

/// `template` with every placeholder replaced.
pub fn render(template: &Value, vars: &Vars) -> Result<Value, PluginError> {
    Ok(match template {
        Value::String(s) => Value::String(render_str(s, vars)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render(v, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render(v, vars)?)))
                .collect::<Result<_, PluginError>>()?,
        ),
        other => other.clone(),
    })
}

fn render_str(text: &str, vars: &Vars) -> Result<String, PluginError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(PluginError::bad_config(format!(
                "template `{text}`: `{{{{` without `}}}}`"
            )));
        };
        let name = after[..end].trim();
        let value = vars.get(name).ok_or_else(|| {
            let known: Vec<&str> = vars.keys().copied().collect();
            PluginError::bad_config(format!(
                "template `{text}`: unknown placeholder `{{{{{name}}}}}` (known: {})",
                known.join(", ")
            ))
        })?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Vars {
        let mut v = Vars::new();
        v.insert("incident.monitor", "disk \"root\"".into());
        v.insert("note.text", "line\nbreak".into());
        v
    }

    #[test]
    fn placeholders_are_replaced_inside_strings_only() {
        let t =
            json!({"title": "[{{incident.monitor}}] down", "n": 3, "list": ["{{ note.text }}"]});
        let out = render(&t, &vars()).expect("renders");
        assert_eq!(
            out,
            json!({"title": "[disk \"root\"] down", "n": 3, "list": ["line\nbreak"]})
        );
    }

    #[test]
    fn an_unknown_or_unclosed_placeholder_is_a_config_error() {
        let err = render(&json!("{{incident.monitr}}"), &vars()).expect_err("unknown");
        assert_eq!(err.code, "bad-config");
        assert!(err.message.contains("incident.monitr"), "{}", err.message);
        assert!(render(&json!("{{open"), &vars()).is_err());
    }
}
