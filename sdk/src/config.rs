//! Plugin configuration: the runner hands each role function the plugin's JSON configuration
//! (already checked against the manifest's `config-schema`); [`config`] turns it into a type.

use serde::de::DeserializeOwned;

use crate::PluginError;

/// Parse the JSON configuration string into `T`.
///
/// An empty string or `null` means "no configuration" and is parsed as `{}`, so a struct whose
/// fields all have defaults works without any configuration. Parse errors become a
/// [`PluginError::bad_config`] naming the offending key and position.
///
/// ```
/// #[derive(serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Config {
///     #[serde(default = "default_limit")]
///     limit: u32,
/// }
/// fn default_limit() -> u32 {
///     80
/// }
///
/// let c: Config = warden_sdk::config("").expect("empty config uses defaults");
/// assert_eq!(c.limit, 80);
/// let err = warden_sdk::config::<Config>(r#"{"limt": 1}"#).err().expect("unknown key");
/// assert_eq!(err.code, "bad-config");
/// ```
pub fn config<T: DeserializeOwned>(json: &str) -> Result<T, PluginError> {
    let trimmed = json.trim();
    let json = if trimmed.is_empty() || trimmed == "null" {
        "{}"
    } else {
        trimmed
    };
    serde_json::from_str(json).map_err(|e| PluginError::bad_config(format!("invalid config: {e}")))
}
