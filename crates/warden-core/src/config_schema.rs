//! Validation of a plugin's JSON configuration against the JSON Schema its manifest carries,
//! done by the runner before the plugin runs, so plugins see only well-formed input.

use serde_json::Value;

/// Largest plugin configuration accepted, in bytes of JSON.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

/// Check that `schema` is a usable JSON Schema.
pub fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::validator_for(schema).map_err(|e| e.to_string())
}

/// Refuse a configuration whose JSON encoding is over [`MAX_CONFIG_BYTES`].
pub fn check_size(encoded_len: usize) -> Result<(), Vec<String>> {
    if encoded_len > MAX_CONFIG_BYTES {
        return Err(vec![format!(
            "configuration is larger than {MAX_CONFIG_BYTES} bytes"
        )]);
    }
    Ok(())
}

/// Validate `config` against an already compiled schema; one message per violation, each
/// naming where it is.
pub fn validate_with(
    validator: Option<&jsonschema::Validator>,
    config: &Value,
) -> Result<(), Vec<String>> {
    let Some(validator) = validator else {
        return Ok(());
    };
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

/// Size check, compile and validate in one go (the runner keeps the compiled schema instead).
pub fn validate(schema: Option<&Value>, config: &Value) -> Result<(), Vec<String>> {
    check_size(
        serde_json::to_vec(config)
            .map(|v| v.len())
            .unwrap_or(usize::MAX),
    )?;
    let validator = schema
        .map(compile)
        .transpose()
        .map_err(|e| vec![format!("config-schema: {e}")])?;
    validate_with(validator.as_ref(), config)
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
