//! Runbooks: TOML files naming typed parameters and ordered steps (plugin, action, config,
//! condition, timeout, retries, what to do on failure). Parsed strictly, checked without running
//! (`validate`), and executed by [`engine`]. Every error names the file, line and column.

mod bounds;
pub mod engine;
pub mod expr;
pub mod source;

/// What runs a runbook's plugin steps: the agent's plugin manager, or a test's stand-in. The
/// runbook crate never sees the sandbox; whoever implements this audits each plugin run.
pub trait StepRunner: Sync {
    /// Run one plugin call to its end; every outcome is in the report.
    fn run(&self, req: &warden_core::RunRequest) -> warden_core::RunReport;
    /// The installed plugin's manifest and what the site policy grants it, for validation.
    fn inspect(
        &self,
        plugin: &str,
    ) -> Result<(warden_core::Manifest, warden_core::grant::GrantReport), warden_core::RunError>;
}

use expr::{Expr, Template, walk_templates};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use toml::Spanned;
use warden_core::manifest::Role;

/// Largest runbook file accepted.
pub const MAX_RUNBOOK_BYTES: usize = 1 << 20;
/// Deepest nesting of arrays and tables accepted (a hostile file cannot exhaust the parser's stack).
pub const MAX_NESTING: usize = 32;
/// Most attempts a step may ask for.
pub const MAX_ATTEMPTS: u32 = 10;
/// Longest backoff between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A problem in a runbook, located.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunbookError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

impl std::fmt::Display for RunbookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        if let Some(h) = &self.help {
            write!(f, "\n  help: {h}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
}

/// What a step asks its plugin to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepAction {
    Discover,
    Check,
    /// Plan only.
    Plan,
    /// Plan, then apply exactly that plan (a dry run stops after the plan).
    Apply,
}

impl StepAction {
    fn allowed_for(self, role: Role) -> bool {
        match self {
            StepAction::Discover => role == Role::Discovery,
            StepAction::Check => role.exports_check(),
            StepAction::Plan | StepAction::Apply => role.may_change_machine(),
        }
    }
}

/// What happens when a step fails after its retries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// End the run as failed.
    #[default]
    Stop,
    /// Go on with the next step.
    Continue,
    /// Run the steps named in `fallback`, then end the run as failed.
    Fallback,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Retries {
    /// Total tries, 1 to 10.
    #[serde(default = "one")]
    pub attempts: u32,
    /// Wait before the second try; doubles each time, at most 60 s.
    #[serde(default)]
    pub backoff_ms: u64,
    /// Retry a step that timed out. Off by default: a timed-out step may have half-done work.
    #[serde(default)]
    pub retry_on_timeout: bool,
}

fn one() -> u32 {
    1
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            attempts: 1,
            backoff_ms: 0,
            retry_on_timeout: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    #[serde(rename = "type")]
    kind: ParamType,
    default: Option<toml::Value>,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawStep {
    id: Spanned<String>,
    plugin: Spanned<String>,
    version: Option<Spanned<String>>,
    action: StepAction,
    config: Option<Spanned<toml::Table>>,
    when: Option<Spanned<String>>,
    timeout_ms: Option<u64>,
    #[serde(default)]
    retries: Retries,
    #[serde(default)]
    on_failure: OnFailure,
    #[serde(default)]
    fallback: Vec<Spanned<String>>,
    #[serde(default)]
    fallback_only: bool,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunbook {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    maintenance: bool,
    #[serde(default)]
    params: BTreeMap<String, Spanned<RawParam>>,
    steps: Vec<Spanned<RawStep>>,
}

/// A typed parameter.
#[derive(Debug, Clone, Serialize)]
pub struct Param {
    pub name: String,
    pub kind: ParamType,
    pub default: Option<serde_json::Value>,
    pub description: String,
}

/// Where something was written, for errors found later (plugin checks).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// A validated step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub id: String,
    pub plugin: String,
    pub version: semver::VersionReq,
    pub action: StepAction,
    pub config: serde_json::Value,
    #[serde(skip)]
    pub when: Option<Expr>,
    pub timeout: Option<Duration>,
    pub retries: Retries,
    pub on_failure: OnFailure,
    pub fallback: Vec<String>,
    pub fallback_only: bool,
    pub description: String,
    pub location: Location,
}

/// A runbook that parsed and passed the checks that need no plugin store.
#[derive(Debug, Clone, Serialize)]
pub struct Runbook {
    pub file: String,
    pub name: String,
    pub description: String,
    /// `maintenance = true`: the runbook changes machines in ways meant for a maintenance
    /// window. The fleet controller reads this top-level key from a runbook bundle it holds
    /// and asks for a second operator's approval before running it on an agent outside its
    /// reported windows (docs/FLEET.md, "Approvals"); an agent's own schedules keep their
    /// `[[schedule]] maintenance` key (docs/AUTOMATION.md).
    pub maintenance: bool,
    pub params: Vec<Param>,
    pub steps: Vec<Step>,
}

fn locate(source: &str, offset: usize) -> Location {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map(|i| before[i + 1..].chars().count() + 1)
        .unwrap_or(before.chars().count() + 1);
    Location { line, column }
}

/// Nesting depth of arrays and inline tables outside strings and comments.
fn max_nesting(source: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut chars = source.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('"'), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            (None, '[' | '{') => {
                depth += 1;
                max = max.max(depth);
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn param_matches(kind: ParamType, v: &serde_json::Value) -> bool {
    match kind {
        ParamType::String => v.is_string(),
        ParamType::Integer => v.is_i64() || v.is_u64(),
        ParamType::Number => v.is_number(),
        ParamType::Boolean => v.is_boolean(),
    }
}

/// The schema's complaints about a step's configuration, when every value in it is known before
/// the run (no `${...}` template anywhere): the run would validate the very same value.
fn known_config_problems(
    config: &serde_json::Value,
    manifest: &warden_core::Manifest,
) -> Option<Vec<String>> {
    let mut templated = false;
    walk_templates(config, &mut |text| templated |= text.contains("${"));
    if templated {
        return None;
    }
    warden_core::config_schema::validate(manifest.config_schema.as_ref(), config).err()
}

fn valid_step_id(id: &str) -> bool {
    id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Runbook {
    /// Parse and check everything that needs no plugin store.
    pub fn parse(source: &str, file: &str) -> Result<Runbook, Vec<RunbookError>> {
        let err = |at: Location, message: String, help: Option<&str>| RunbookError {
            file: file.to_string(),
            line: at.line,
            column: at.column,
            message,
            help: help.map(str::to_string),
        };
        if source.len() > MAX_RUNBOOK_BYTES {
            return Err(vec![err(
                Location { line: 1, column: 1 },
                format!("the runbook is larger than {MAX_RUNBOOK_BYTES} bytes"),
                None,
            )]);
        }
        if max_nesting(source) > MAX_NESTING {
            return Err(vec![err(
                Location { line: 1, column: 1 },
                format!("arrays or tables are nested deeper than {MAX_NESTING} levels"),
                Some("a runbook never needs this; the file is probably not a runbook"),
            )]);
        }
        let raw: RawRunbook = toml::from_str(source).map_err(|e| {
            let at = e
                .span()
                .map(|s| locate(source, s.start))
                .unwrap_or(Location { line: 1, column: 1 });
            vec![err(
                at,
                e.message().trim().to_string(),
                Some("see docs/RUNBOOKS.md for the format"),
            )]
        })?;
        let mut errors = Vec::new();
        let name_at = locate(source, raw.name.span().start);
        if warden_core::names::validate_plugin_name(raw.name.get_ref()).is_err() {
            errors.push(err(
                name_at,
                format!(
                    "runbook name `{}` is not valid",
                    raw.name.get_ref().escape_debug()
                ),
                Some("use lower-case letters, digits and `-`"),
            ));
        }
        let mut params = Vec::new();
        for (name, p) in &raw.params {
            let at = locate(source, p.span().start);
            let p = p.get_ref();
            let default = p.default.as_ref().map(toml_to_json);
            if let Some(d) = &default
                && !param_matches(p.kind, d)
            {
                errors.push(err(
                    at,
                    format!(
                        "parameter `{name}`: default {d} is not of type {:?}",
                        p.kind
                    )
                    .to_lowercase(),
                    Some("make the default match `type`"),
                ));
            }
            params.push(Param {
                name: name.clone(),
                kind: p.kind,
                default,
                description: p.description.clone(),
            });
        }
        let param_names: BTreeSet<&str> = raw.params.keys().map(String::as_str).collect();
        let mut steps: Vec<Step> = Vec::new();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let all_ids: BTreeSet<String> = raw
            .steps
            .iter()
            .map(|s| s.get_ref().id.get_ref().clone())
            .collect();
        for spanned in &raw.steps {
            let s = spanned.get_ref();
            let at = locate(source, s.id.span().start);
            let id = s.id.get_ref().clone();
            if !valid_step_id(&id) {
                errors.push(err(at, format!("step id `{}` is not valid", id.escape_debug()), Some("use lower-case letters, digits and `_`, starting with a letter (ids are used in expressions as steps.<id>)")));
            }
            if !seen.insert(id.clone()) {
                errors.push(err(
                    at,
                    format!("step id `{id}` is used twice"),
                    Some("give every step its own id"),
                ));
            }
            let version = match &s.version {
                None => semver::VersionReq::STAR,
                Some(v) => semver::VersionReq::parse(v.get_ref()).unwrap_or_else(|e| {
                    errors.push(err(
                        locate(source, v.span().start),
                        format!("version `{}`: {e}", v.get_ref()),
                        Some("a semver requirement such as \"^0.1\""),
                    ));
                    semver::VersionReq::STAR
                }),
            };
            let earlier: BTreeSet<&str> = steps.iter().map(|s| s.id.as_str()).collect();
            let check_expr = |e: &Expr, at: Location, errors: &mut Vec<RunbookError>| {
                for r in e.step_references() {
                    if !earlier.contains(r.as_str()) {
                        let why = if all_ids.contains(&r) && r != id {
                            "a later step"
                        } else if r == id {
                            "this step itself"
                        } else {
                            "no step"
                        };
                        errors.push(err(
                            at,
                            format!("`{}` refers to steps.{r}, which is {why}", e.source),
                            Some("expressions may only use steps that run before this one"),
                        ));
                    }
                }
                if e.source.contains("params.") {
                    let mut rest = e.source.as_str();
                    while let Some(i) = rest.find("params.") {
                        let name: String = rest[i + 7..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if !name.is_empty() && !param_names.contains(name.as_str()) {
                            errors.push(err(
                                at,
                                format!("`{}` uses params.{name}, which is not declared", e.source),
                                Some("declare it under [params]"),
                            ));
                        }
                        rest = &rest[i + 7..];
                    }
                }
            };
            let when = s.when.as_ref().and_then(|w| {
                let wat = locate(source, w.span().start);
                match Expr::compile(w.get_ref()) {
                    Ok(e) => {
                        check_expr(&e, wat, &mut errors);
                        Some(e)
                    }
                    Err(m) => {
                        errors.push(err(wat, format!("when: {m}"), Some(m.help())));
                        None
                    }
                }
            });
            let config = s
                .config
                .as_ref()
                .map(|c| toml_to_json(&toml::Value::Table(c.get_ref().clone())))
                .unwrap_or(serde_json::json!({}));
            if let Some(c) = &s.config {
                let cat = locate(source, c.span().start);
                walk_templates(&config, &mut |text| match Template::parse(text) {
                    Ok(t) => t
                        .exprs()
                        .into_iter()
                        .for_each(|e| check_expr(e, cat, &mut errors)),
                    Err(m) => errors.push(err(
                        cat,
                        format!("config: {m}"),
                        Some(match m {
                            expr::ExprError::Syntax { .. } | expr::ExprError::Unclosed { .. } => {
                                "write references as ${params.name} or ${steps.id.output...}"
                            }
                            _ => m.help(),
                        }),
                    )),
                });
            }
            if !(1..=MAX_ATTEMPTS).contains(&s.retries.attempts) {
                errors.push(err(
                    at,
                    format!("retries.attempts must be 1 to {MAX_ATTEMPTS}"),
                    None,
                ));
            }
            if s.on_failure == OnFailure::Fallback && s.fallback.is_empty() {
                errors.push(err(
                    at,
                    "on-failure = \"fallback\" needs a `fallback` list of steps".into(),
                    None,
                ));
            }
            steps.push(Step {
                id,
                plugin: s.plugin.get_ref().clone(),
                version,
                action: s.action,
                config,
                when,
                timeout: s.timeout_ms.map(Duration::from_millis),
                retries: s.retries.clone(),
                on_failure: s.on_failure,
                fallback: s.fallback.iter().map(|f| f.get_ref().clone()).collect(),
                fallback_only: s.fallback_only,
                description: s.description.clone(),
                location: locate(source, s.plugin.span().start),
            });
        }
        for (spanned, step) in raw.steps.iter().zip(&steps) {
            for f in &spanned.get_ref().fallback {
                let ok = steps
                    .iter()
                    .any(|s| &s.id == f.get_ref() && s.fallback_only);
                if !ok {
                    errors.push(err(
                        locate(source, f.span().start),
                        format!(
                            "step `{}`: fallback `{}` is not a step marked fallback-only = true",
                            step.id,
                            f.get_ref()
                        ),
                        Some("declare the fallback step with fallback-only = true"),
                    ));
                }
            }
        }
        if steps.iter().all(|s| s.fallback_only) {
            errors.push(err(
                name_at,
                "the runbook has no steps to run".into(),
                Some("add [[steps]]"),
            ));
        }
        if errors.is_empty() {
            Ok(Runbook {
                file: file.to_string(),
                name: raw.name.into_inner(),
                description: raw.description,
                maintenance: raw.maintenance,
                params,
                steps,
            })
        } else {
            Err(errors)
        }
    }

    /// Load and parse a file.
    pub fn load(path: &std::path::Path) -> Result<Runbook, Vec<RunbookError>> {
        let file = path.display().to_string();
        let fail = |message: String| {
            vec![RunbookError {
                file: file.clone(),
                line: 1,
                column: 1,
                message,
                help: None,
            }]
        };
        let bytes = warden_core::fsutil::read_capped(path, MAX_RUNBOOK_BYTES as u64)
            .map_err(|e| fail(format!("cannot read: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".into()))?;
        Runbook::parse(&text, &file)
    }

    /// Checks that need the store and the policy: plugins installed in a matching version,
    /// actions allowed by their roles, configurations the plugin's schema accepts (where no
    /// `${...}` leaves a value to the run), grants not refused.
    pub fn check_plugins(&self, runner: &dyn StepRunner) -> Vec<RunbookError> {
        let mut errors = Vec::new();
        for s in &self.steps {
            let err = |message: String, help: &str| RunbookError {
                file: self.file.clone(),
                line: s.location.line,
                column: s.location.column,
                message: format!("step `{}`: {message}", s.id),
                help: Some(help.to_string()),
            };
            match runner.inspect(&s.plugin) {
                Err(e) => errors.push(err(
                    e.to_string(),
                    "install it with `warden plugin install <bundle>`",
                )),
                Ok((m, grant)) => {
                    let m = &m;
                    if !s.version.matches(&m.version) {
                        errors.push(err(
                            format!(
                                "plugin `{}` is installed in version {}, which does not match `{}`",
                                m.name, m.version, s.version
                            ),
                            "install a matching version or change `version`",
                        ));
                    }
                    if !s.action.allowed_for(m.role) {
                        errors.push(err(format!("action `{:?}` is not possible for a {} plugin", s.action, m.role).to_lowercase(), "use discover for discovery, check for checks, plan/apply for remediations"));
                    }
                    if let Some(problems) = known_config_problems(&s.config, m) {
                        errors.push(err(
                            format!(
                                "`config` does not match the plugin's config-schema: {}",
                                problems.join("; ")
                            ),
                            "fix `config`; `warden plugin inspect <plugin>` shows the schema",
                        ));
                    }
                    if !grant.refusals.is_empty() {
                        let r: Vec<String> =
                            grant.refusals.iter().map(ToString::to_string).collect();
                        errors.push(err(
                            format!("the site policy refuses {}", r.join("; ")),
                            "widen the site policy or use another plugin",
                        ));
                    }
                }
            }
        }
        errors
    }

    /// Resolve `--param k=v` values against the declared parameters and their defaults.
    pub fn resolve_params(&self, given: &[(String, String)]) -> Result<serde_json::Value, String> {
        let mut out = serde_json::Map::new();
        for (k, _) in given {
            if !self.params.iter().any(|p| &p.name == k) {
                return Err(format!(
                    "unknown parameter `{k}` (declared: {})",
                    self.params
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        for p in &self.params {
            let value = match given.iter().rev().find(|(k, _)| k == &p.name) {
                Some((_, v)) => match p.kind {
                    ParamType::String => serde_json::Value::String(v.clone()),
                    ParamType::Integer => v.parse::<i64>().map(Into::into).map_err(|_| {
                        format!("parameter `{}` must be an integer, got `{v}`", p.name)
                    })?,
                    ParamType::Number => v
                        .parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map(serde_json::Value::Number)
                        .ok_or_else(|| {
                            format!("parameter `{}` must be a number, got `{v}`", p.name)
                        })?,
                    ParamType::Boolean => v.parse::<bool>().map(Into::into).map_err(|_| {
                        format!("parameter `{}` must be true or false, got `{v}`", p.name)
                    })?,
                },
                None => p.default.clone().ok_or_else(|| {
                    format!(
                        "parameter `{}` has no default: pass --param {}=...",
                        p.name, p.name
                    )
                })?,
            };
            out.insert(p.name.clone(), value);
        }
        Ok(serde_json::Value::Object(out))
    }
}
