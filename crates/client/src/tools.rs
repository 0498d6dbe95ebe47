//! The coding agents sovereign configures, and pure, reversible edits of their
//! config files. JSON(C) edits go through a concrete syntax tree so the user's
//! comments, order and formatting survive; TOML edits go through `toml_edit`.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use jsonc_parser::ParseOptions;
use jsonc_parser::cst::{CstInputValue, CstObject, CstRootNode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ClientError;

/// What coding agents need; Ollama's default is far lower (research D.5).
pub const CODING_AGENT_MIN_CONTEXT: u32 = 65536;
/// The provider id sovereign adds to Codex and OpenCode, so a user's own `ollama`
/// provider stays untouched.
pub const PROVIDER_ID: &str = "sovereign";
const PROVIDER_NAME: &str = "Ollama via sovereign (WireGuard)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    ClaudeCode,
    Aider,
    Codex,
    OpenCode,
}

impl Tool {
    pub const ALL: [Tool; 4] = [Tool::ClaudeCode, Tool::Aider, Tool::Codex, Tool::OpenCode];

    pub fn id(self) -> &'static str {
        match self {
            Tool::ClaudeCode => "claude-code",
            Tool::Aider => "aider",
            Tool::Codex => "codex",
            Tool::OpenCode => "opencode",
        }
    }

    pub fn display(self) -> &'static str {
        match self {
            Tool::ClaudeCode => "Claude Code",
            Tool::Aider => "Aider",
            Tool::Codex => "Codex",
            Tool::OpenCode => "OpenCode",
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for Tool {
    type Err = ClientError;
    fn from_str(s: &str) -> Result<Tool, ClientError> {
        let wanted = s.trim().to_ascii_lowercase();
        Tool::ALL
            .into_iter()
            .find(|t| t.id() == wanted || (wanted == "claude" && *t == Tool::ClaudeCode))
            .ok_or_else(|| ClientError::UnknownTool(s.to_string()))
    }
}

/// Parse `claude-code,aider,...` into a sorted, deduplicated list.
pub fn parse_tools(list: &str) -> Result<Vec<Tool>, ClientError> {
    let mut tools = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(Tool::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    tools.sort();
    tools.dedup();
    Ok(tools)
}

/// Warnings when the server's context is too small for the selected agents.
pub fn context_warnings(context_length: u32, tools: &[Tool]) -> Vec<String> {
    if context_length >= CODING_AGENT_MIN_CONTEXT {
        return Vec::new();
    }
    let who = if tools.is_empty() {
        "coding agents".to_string()
    } else {
        tools
            .iter()
            .map(|t| t.display())
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![format!(
        "the server's context length is {context_length} tokens, but {who} need at least \
         {CODING_AGENT_MIN_CONTEXT}: long sessions will lose context or fail; raise \
         ollama.context_length in sovereign.toml, re-apply the server, and export the bundle again"
    )]
}

/// What the tool configs point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolTarget {
    pub openai_url: String,
    pub anthropic_url: String,
    /// The default model, when one is known.
    pub model: Option<String>,
    /// Every model the server lists (for OpenCode's picker); may be empty.
    pub models: Vec<String>,
    pub context_length: u32,
}

/// One value sovereign set in a JSON file, and what was there before (`None`: absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonEdit {
    pub path: Vec<String>,
    pub previous: Option<Value>,
}

/// The result of merging values into a JSON(C) document.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonMerge {
    pub text: String,
    pub edits: Vec<JsonEdit>,
    /// Objects that did not exist before (removed again when they end up empty).
    pub created_objects: Vec<Vec<String>>,
}

/// The `env` entries of `~/.claude/settings.json`. Claude Code wants the base URL
/// without `/v1` and a bearer token; an empty API key keeps it off Anthropic's login.
pub fn claude_settings_values(target: &ToolTarget) -> Vec<(Vec<String>, Value)> {
    let mut values = vec![
        ("ANTHROPIC_BASE_URL", target.anthropic_url.clone()),
        ("ANTHROPIC_AUTH_TOKEN", "ollama".to_string()),
        ("ANTHROPIC_API_KEY", String::new()),
    ];
    if let Some(model) = &target.model {
        values.push(("ANTHROPIC_MODEL", model.clone()));
        // Background tasks ask for a Haiku model, which the server does not have.
        values.push(("ANTHROPIC_DEFAULT_HAIKU_MODEL", model.clone()));
    }
    values
        .into_iter()
        .map(|(k, v)| (vec!["env".to_string(), k.to_string()], Value::String(v)))
        .collect()
}

/// The `provider.sovereign` entry of `opencode.json`.
pub fn opencode_values(target: &ToolTarget) -> Vec<(Vec<String>, Value)> {
    let mut names = target.models.clone();
    if let Some(model) = &target.model
        && !names.contains(model)
    {
        names.insert(0, model.clone());
    }
    let models: serde_json::Map<String, Value> = names
        .iter()
        .map(|m| (m.clone(), serde_json::json!({ "name": m })))
        .collect();
    let provider = serde_json::json!({
        "npm": "@ai-sdk/openai-compatible",
        "name": PROVIDER_NAME,
        "options": { "baseURL": target.openai_url },
        "models": models,
    });
    let mut values = vec![(
        vec!["provider".to_string(), PROVIDER_ID.to_string()],
        provider,
    )];
    // Without a top-level model OpenCode picks one itself (the last one its state
    // remembers), which need not be the one setup announced.
    if let Some(model) = &target.model {
        values.push((
            vec!["model".to_string()],
            Value::String(format!("{PROVIDER_ID}/{model}")),
        ));
    }
    values
}

/// Set `values` in a JSON(C) document, keeping everything else as the user wrote it.
/// `new_file_prefix` holds the top-level entries of a file that does not exist yet.
pub fn merge_json(
    existing: Option<&str>,
    path: &Path,
    new_file_prefix: &[(&str, Value)],
    values: &[(Vec<String>, Value)],
) -> Result<JsonMerge, ClientError> {
    let Some(existing) = existing.filter(|t| !t.trim().is_empty()) else {
        return Ok(new_json_file(new_file_prefix, values));
    };
    let root = parse_jsonc(existing, path)?;
    let top = root
        .object_value()
        .ok_or_else(|| unparsable_json(path, "the top level is not an object"))?;
    let mut edits = Vec::new();
    let mut created_objects = Vec::new();
    for (key_path, value) in values {
        let (parents, last) = key_path.split_at(key_path.len() - 1);
        let mut object = top.clone();
        for (depth, key) in parents.iter().enumerate() {
            if object.get(key).is_none() {
                created_objects.push(key_path[..=depth].to_vec());
            }
            object = object.object_value_or_create(key).ok_or_else(|| {
                unparsable_json(
                    path,
                    &format!("`{}` is not an object", key_path[..=depth].join(".")),
                )
            })?;
        }
        let previous = object
            .get(&last[0])
            .and_then(|p| p.value())
            .and_then(|v| v.to_serde_value());
        set_property(&object, &last[0], value);
        edits.push(JsonEdit {
            path: key_path.clone(),
            previous,
        });
    }
    created_objects.dedup();
    Ok(JsonMerge {
        text: root.to_string(),
        edits,
        created_objects,
    })
}

/// Undo [`merge_json`]: put back previous values, drop what was added, and remove
/// objects sovereign created once they are empty.
pub fn unmerge_json(
    text: &str,
    path: &Path,
    edits: &[JsonEdit],
    created_objects: &[Vec<String>],
) -> Result<String, ClientError> {
    let root = parse_jsonc(text, path)?;
    let Some(top) = root.object_value() else {
        return Ok(text.to_string());
    };
    for edit in edits.iter().rev() {
        let (parents, last) = edit.path.split_at(edit.path.len() - 1);
        let Some(object) = walk(&top, parents) else {
            continue;
        };
        match &edit.previous {
            Some(previous) => set_property(&object, &last[0], previous),
            None => {
                if let Some(prop) = object.get(&last[0]) {
                    prop.remove();
                }
            }
        }
    }
    let mut created: Vec<&Vec<String>> = created_objects.iter().collect();
    created.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for object_path in created {
        let (parents, last) = object_path.split_at(object_path.len() - 1);
        let Some(parent) = walk(&top, parents) else {
            continue;
        };
        let Some(prop) = parent.get(&last[0]) else {
            continue;
        };
        if prop
            .object_value()
            .is_some_and(|o| o.properties().is_empty())
        {
            prop.remove();
        }
    }
    Ok(root.to_string())
}

/// True when a JSON document has nothing left but an empty object (and maybe a `$schema`).
pub fn json_is_empty(text: &str) -> bool {
    let Some(value) = jsonc_value(text) else {
        return false;
    };
    value
        .as_object()
        .is_some_and(|o| o.keys().all(|k| k == "$schema"))
}

/// A JSON(C) document as a plain value; `None` when it does not parse.
pub fn jsonc_value(text: &str) -> Option<Value> {
    jsonc_parser::parse_to_serde_value::<Option<Value>>(text, &ParseOptions::default())
        .ok()
        .flatten()
}

fn new_json_file(prefix: &[(&str, Value)], values: &[(Vec<String>, Value)]) -> JsonMerge {
    let mut top = serde_json::Map::new();
    for (k, v) in prefix {
        top.insert((*k).to_string(), v.clone());
    }
    let mut created_objects = Vec::new();
    let mut edits = Vec::new();
    for (key_path, value) in values {
        let mut object = &mut top;
        for (depth, key) in key_path[..key_path.len() - 1].iter().enumerate() {
            if !object.contains_key(key) {
                created_objects.push(key_path[..=depth].to_vec());
            }
            object = object
                .entry(key.clone())
                .or_insert_with(|| Value::Object(serde_json::Map::new()))
                .as_object_mut()
                .expect("sovereign only nests objects");
        }
        object.insert(key_path[key_path.len() - 1].clone(), value.clone());
        edits.push(JsonEdit {
            path: key_path.clone(),
            previous: None,
        });
    }
    let mut text =
        serde_json::to_string_pretty(&Value::Object(top)).expect("JSON values serialize");
    text.push('\n');
    JsonMerge {
        text,
        edits,
        created_objects,
    }
}

fn walk(top: &CstObject, keys: &[String]) -> Option<CstObject> {
    let mut object = top.clone();
    for key in keys {
        object = object.object_value(key)?;
    }
    Some(object)
}

fn set_property(object: &CstObject, key: &str, value: &Value) {
    match object.get(key) {
        Some(prop) => prop.set_value(to_cst(value)),
        None => {
            object.append(key, to_cst(value));
        }
    }
}

fn to_cst(value: &Value) -> CstInputValue {
    match value {
        Value::Null => CstInputValue::Null,
        Value::Bool(b) => CstInputValue::Bool(*b),
        Value::Number(n) => CstInputValue::Number(n.to_string()),
        Value::String(s) => CstInputValue::String(s.clone()),
        Value::Array(items) => CstInputValue::Array(items.iter().map(to_cst).collect()),
        Value::Object(map) => {
            CstInputValue::Object(map.iter().map(|(k, v)| (k.clone(), to_cst(v))).collect())
        }
    }
}

fn parse_jsonc(text: &str, path: &Path) -> Result<CstRootNode, ClientError> {
    CstRootNode::parse(text, &ParseOptions::default())
        .map_err(|e| unparsable_json(path, &e.to_string()))
}

fn unparsable_json(path: &Path, reason: &str) -> ClientError {
    ClientError::UnparsableConfig {
        path: path.to_path_buf(),
        format: "JSON",
        reason: reason.to_string(),
    }
}

/// The Codex provider table. Codex speaks the Responses API (Ollama >= 0.13.3) to a
/// base URL that ends in `/v1`.
fn codex_provider_table(target: &ToolTarget) -> toml_edit::Table {
    let mut table = toml_edit::Table::new();
    table.insert("name", toml_edit::value(PROVIDER_NAME));
    table.insert("base_url", toml_edit::value(target.openai_url.clone()));
    table.insert("wire_api", toml_edit::value("responses"));
    table
}

/// A reversible edit of `~/.codex/config.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct TomlMerge {
    pub text: String,
    /// True when `[model_providers]` did not exist before.
    pub created_parent: bool,
}

/// Add `[model_providers.sovereign]` to Codex's config, keeping the user's content.
/// `owned` says the manifest records an earlier sovereign edit of this table.
pub fn merge_codex_config(
    existing: Option<&str>,
    path: &Path,
    target: &ToolTarget,
    owned: bool,
) -> Result<TomlMerge, ClientError> {
    let mut doc = parse_toml(existing.unwrap_or(""), path)?;
    let created_parent = !doc.contains_key("model_providers");
    let providers = doc
        .entry("model_providers")
        .or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            toml_edit::Item::Table(t)
        })
        .as_table_mut()
        .ok_or_else(|| unparsable_toml(path, "`model_providers` is not a table"))?;
    if providers.contains_key(PROVIDER_ID) && !owned {
        return Err(ClientError::Foreign {
            path: path.to_path_buf(),
            what: format!(
                "it already defines [model_providers.{PROVIDER_ID}], which sovereign did not write"
            ),
        });
    }
    providers.insert(
        PROVIDER_ID,
        toml_edit::Item::Table(codex_provider_table(target)),
    );
    Ok(TomlMerge {
        text: doc.to_string(),
        created_parent,
    })
}

/// Remove what [`merge_codex_config`] added.
pub fn unmerge_codex_config(
    text: &str,
    path: &Path,
    created_parent: bool,
) -> Result<String, ClientError> {
    let mut doc = parse_toml(text, path)?;
    if let Some(providers) = doc
        .get_mut("model_providers")
        .and_then(|i| i.as_table_mut())
    {
        providers.remove(PROVIDER_ID);
        if created_parent && providers.is_empty() {
            doc.remove("model_providers");
        }
    }
    Ok(doc.to_string())
}

/// `~/.codex/sovereign.config.toml`: a self-contained profile for `codex --profile sovereign`.
pub fn render_codex_profile(target: &ToolTarget) -> String {
    let mut doc = toml_edit::DocumentMut::new();
    if let Some(model) = &target.model {
        doc.insert("model", toml_edit::value(model.clone()));
    }
    doc.insert("model_provider", toml_edit::value(PROVIDER_ID));
    doc.insert(
        "model_context_window",
        toml_edit::value(i64::from(target.context_length)),
    );
    let mut providers = toml_edit::Table::new();
    providers.set_implicit(true);
    providers.insert(
        PROVIDER_ID,
        toml_edit::Item::Table(codex_provider_table(target)),
    );
    doc.insert("model_providers", toml_edit::Item::Table(providers));
    format!(
        "# Written by `sovereign client setup`; `sovereign client uninstall` removes it.\n\
         # Use it with `codex --profile {PROVIDER_ID}`.\n{doc}"
    )
}

fn parse_toml(text: &str, path: &Path) -> Result<toml_edit::DocumentMut, ClientError> {
    text.parse::<toml_edit::DocumentMut>()
        .map_err(|e| unparsable_toml(path, &e.to_string()))
}

fn unparsable_toml(path: &Path, reason: &str) -> ClientError {
    ClientError::UnparsableConfig {
        path: path.to_path_buf(),
        format: "TOML",
        reason: reason.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(model: Option<&str>) -> ToolTarget {
        ToolTarget {
            openai_url: "http://192.168.250.20:11434/v1".into(),
            anthropic_url: "http://192.168.250.20:11434".into(),
            model: model.map(str::to_string),
            models: vec!["qwen3-coder:30b".into(), "gpt-oss:20b".into()],
            context_length: 65536,
        }
    }

    const CLAUDE_USER: &str = r#"{
  // my settings
  "permissions": { "allow": ["Bash(ls:*)"] },
  "env": {
    "ANTHROPIC_BASE_URL": "https://gateway.example",
    "OTHER": "kept"
  },
  "theme": "dark"
}
"#;

    #[test]
    fn claude_settings_merge_keeps_the_users_settings_golden() {
        let p = Path::new("settings.json");
        let merged = merge_json(
            Some(CLAUDE_USER),
            p,
            &[],
            &claude_settings_values(&target(Some("qwen3-coder:30b"))),
        )
        .unwrap();
        insta::assert_snapshot!(merged.text);
        let value: Value = jsonc_value(&merged.text).unwrap();
        assert_eq!(
            value["env"]["ANTHROPIC_BASE_URL"],
            "http://192.168.250.20:11434"
        );
        assert_eq!(value["env"]["OTHER"], "kept");
        assert_eq!(value["theme"], "dark");
        let restored =
            unmerge_json(&merged.text, p, &merged.edits, &merged.created_objects).unwrap();
        let restored: Value = jsonc_value(&restored).unwrap();
        let original: Value = jsonc_value(CLAUDE_USER).unwrap();
        assert_eq!(restored, original);
    }

    #[test]
    fn claude_settings_new_file_golden() {
        let merged = merge_json(
            None,
            Path::new("s.json"),
            &[],
            &claude_settings_values(&target(None)),
        )
        .unwrap();
        insta::assert_snapshot!(merged.text);
        let back = unmerge_json(
            &merged.text,
            Path::new("s.json"),
            &merged.edits,
            &merged.created_objects,
        )
        .unwrap();
        assert!(json_is_empty(&back), "{back}");
    }

    #[test]
    fn opencode_new_file_golden() {
        let schema = [(
            "$schema",
            Value::String("https://opencode.ai/config.json".into()),
        )];
        let merged = merge_json(
            None,
            Path::new("o.json"),
            &schema,
            &opencode_values(&target(Some("qwen3-coder:30b"))),
        )
        .unwrap();
        insta::assert_snapshot!(merged.text);
        assert!(
            merged
                .text
                .contains("\"baseURL\": \"http://192.168.250.20:11434/v1\"")
        );
        assert!(
            merged
                .text
                .contains(&format!("\"model\": \"{PROVIDER_ID}/qwen3-coder:30b\"")),
            "{}",
            merged.text
        );
    }

    /// The user's own default model comes back on uninstall.
    #[test]
    fn opencode_default_model_is_recorded_and_restored() {
        let user = "{\n  \"model\": \"anthropic/claude-sonnet\"\n}\n";
        let p = Path::new("o.json");
        let values = opencode_values(&target(Some("qwen3-coder:30b")));
        let merged = merge_json(Some(user), p, &[], &values).unwrap();
        assert!(
            merged
                .text
                .contains(&format!("\"{PROVIDER_ID}/qwen3-coder:30b\""))
        );
        let back = unmerge_json(&merged.text, p, &merged.edits, &merged.created_objects).unwrap();
        assert!(
            back.contains("\"model\": \"anthropic/claude-sonnet\""),
            "{back}"
        );
    }

    #[test]
    fn opencode_merge_into_jsonc_keeps_comments() {
        let user = "{\n  // mine\n  \"provider\": {\n    \"ollama\": { \"npm\": \"x\" }\n  }\n}\n";
        let p = Path::new("o.json");
        let merged = merge_json(Some(user), p, &[], &opencode_values(&target(None))).unwrap();
        assert!(merged.text.contains("// mine") && merged.text.contains("\"ollama\""));
        assert!(merged.created_objects.is_empty());
        let back = unmerge_json(&merged.text, p, &merged.edits, &merged.created_objects).unwrap();
        assert!(
            back.contains("// mine") && !back.contains(PROVIDER_ID),
            "{back}"
        );
    }

    #[test]
    fn broken_json_is_refused_with_the_path() {
        let err = merge_json(
            Some("{ \"env\": "),
            Path::new("/h/.claude/settings.json"),
            &[],
            &claude_settings_values(&target(None)),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("/h/.claude/settings.json"),
            "{err}"
        );
        let err = merge_json(
            Some("{ \"env\": 3 }"),
            Path::new("s.json"),
            &[],
            &claude_settings_values(&target(None)),
        )
        .unwrap_err();
        assert!(err.to_string().contains("`env` is not an object"), "{err}");
    }

    const CODEX_USER: &str = "# my codex\nmodel = \"gpt-5\"\n\n[model_providers.other]\nname = \"x\" # keep\nbase_url = \"https://x/v1\"\n";

    #[test]
    fn codex_config_merge_golden_and_reverses() {
        let p = Path::new("config.toml");
        let merged = merge_codex_config(Some(CODEX_USER), p, &target(None), false).unwrap();
        insta::assert_snapshot!(merged.text);
        assert!(!merged.created_parent);
        assert_eq!(
            unmerge_codex_config(&merged.text, p, false).unwrap(),
            CODEX_USER
        );
    }

    #[test]
    fn codex_config_new_file_reverses_to_empty() {
        let p = Path::new("config.toml");
        let merged = merge_codex_config(None, p, &target(None), false).unwrap();
        assert!(
            merged
                .text
                .contains("base_url = \"http://192.168.250.20:11434/v1\"")
        );
        assert_eq!(
            unmerge_codex_config(&merged.text, p, true).unwrap().trim(),
            ""
        );
    }

    #[test]
    fn codex_refuses_a_foreign_sovereign_provider() {
        let user = "[model_providers.sovereign]\nname = \"mine\"\n";
        let err =
            merge_codex_config(Some(user), Path::new("c.toml"), &target(None), false).unwrap_err();
        assert!(err.to_string().contains("did not write"), "{err}");
        assert!(merge_codex_config(Some(user), Path::new("c.toml"), &target(None), true).is_ok());
    }

    #[test]
    fn codex_profile_golden() {
        insta::assert_snapshot!(render_codex_profile(&target(Some("qwen3-coder:30b"))));
    }

    #[test]
    fn tools_parse_and_context_warnings() {
        assert_eq!(
            parse_tools("codex,claude-code,codex").unwrap(),
            vec![Tool::ClaudeCode, Tool::Codex]
        );
        assert!(
            parse_tools("cursor")
                .unwrap_err()
                .to_string()
                .contains("cursor")
        );
        assert!(context_warnings(65536, &[Tool::Codex]).is_empty());
        let w = context_warnings(4096, &[Tool::ClaudeCode]);
        assert!(
            w[0].contains("4096") && w[0].contains("Claude Code"),
            "{w:?}"
        );
    }
}
