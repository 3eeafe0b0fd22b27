//! Validation of a plugin's JSON configuration against the JSON Schema its manifest carries,
//! done by the runner before the plugin runs, so plugins see only well-formed input.

use serde_json::Value;

/// Largest plugin configuration accepted, in bytes of JSON.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

/// Check that `schema` is a usable JSON Schema.
pub fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::validator_for(schema).map_err(|e| e.to_string())
}

/// Validate `config`; on failure return one message per violation, each naming where it is.
pub fn validate(schema: Option<&Value>, config: &Value) -> Result<(), Vec<String>> {
    let encoded_len = serde_json::to_vec(config)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if encoded_len > MAX_CONFIG_BYTES {
        return Err(vec![format!(
            "configuration is larger than {MAX_CONFIG_BYTES} bytes"
        )]);
    }
    let Some(schema) = schema else { return Ok(()) };
    let validator = compile(schema).map_err(|e| vec![format!("config-schema: {e}")])?;
    let errors: Vec<String> = validator
        .iter_errors(config)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("at `{at}`: {e}")
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn violations_name_their_location() {
        let schema = json!({"type": "object", "properties": {"days": {"type": "integer"}}, "required": ["dir"]});
        let errors = validate(Some(&schema), &json!({"days": "seven"})).expect_err("invalid");
        assert!(errors.iter().any(|e| e.contains("/days")), "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("dir")), "{errors:?}");
        assert!(validate(Some(&schema), &json!({"dir": "/tmp", "days": 3})).is_ok());
    }

    #[test]
    fn no_schema_accepts_any_small_config() {
        assert!(validate(None, &json!({"anything": [1, 2]})).is_ok());
    }
}
