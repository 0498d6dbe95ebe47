//! The deterministic toy model behind every generation endpoint.
//!
//! Rules (also in the README and `--help`):
//! - Same conversation in, same tokens out: text is picked from a fixed vocabulary by an
//!   FNV-1a hash of the conversation.
//! - Tools: when tools are offered and the last message is the user's (not a tool
//!   result), the model calls a tool: the first tool whose name appears in that
//!   message, else the first tool offered. Arguments are built from the tool's JSON
//!   schema. After a tool result it answers in text.
//! - JSON mode (`format: "json"`, `response_format: json_object`) emits a JSON object;
//!   a JSON schema as format emits an object with the schema's properties.
//! - `max_tokens`/`num_predict` truncates, with done reason `length`.
//! - A thinking model (unless told not to think) first spends [`THINKING_TOKENS`]
//!   tokens thinking; they count against `max_tokens`, as on a real server, so a
//!   small budget leaves no answer.

use serde_json::{Map, Value, json};

/// Tokens in an unconstrained answer.
const DEFAULT_ANSWER_TOKENS: usize = 12;
/// Tokens a thinking model thinks before answering: more than the 256 a client
/// typically allows, which is how real reasoning models starve JSON and tool answers.
pub const THINKING_TOKENS: usize = 300;

/// Every word the toy model can say (tests recognise its answers by them).
pub const VOCABULARY: [&str; 32] = [
    "sovereign",
    "private",
    "model",
    "tunnel",
    "answer",
    "local",
    "token",
    "quiet",
    "server",
    "packet",
    "router",
    "peer",
    "stream",
    "bright",
    "steady",
    "signal",
    "garden",
    "river",
    "stone",
    "lamp",
    "window",
    "harbor",
    "meadow",
    "copper",
    "amber",
    "cedar",
    "falcon",
    "orbit",
    "prism",
    "summit",
    "velvet",
    "willow",
];

/// A tool the client offered, reduced to what the toy model looks at.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: String,
    pub parameters: Value,
}

/// Requested output format.
#[derive(Debug, Clone)]
pub enum OutputFormat {
    Text,
    Json,
    Schema(Value),
}

/// Everything the toy model reads from a request, whatever the API family.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// The whole conversation flattened to text (system, messages, tool results).
    pub conversation: String,
    /// Text of the last message if it is the user's; `None` after a tool result.
    pub last_user_message: Option<String>,
    pub tools: Vec<ToolSpec>,
    pub format: OutputFormat,
    pub max_tokens: Option<u64>,
    /// The model thinks before it answers.
    pub think: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    Text {
        /// Thinking tokens, before the answer (empty unless the model thinks).
        thinking: Vec<String>,
        tokens: Vec<String>,
        truncated: bool,
    },
    ToolCall {
        name: String,
        arguments: Value,
    },
}

impl Prompt {
    /// Rough prompt token count, like Ollama's len/4 estimate.
    pub fn prompt_tokens(&self) -> u64 {
        (self.conversation.len() as u64 / 4).max(1)
    }
}

impl Completion {
    pub fn output_tokens(&self) -> u64 {
        match self {
            Completion::Text {
                tokens, thinking, ..
            } => (tokens.len() + thinking.len()) as u64,
            // A real model spends tokens on the call too; one per argument is close enough.
            Completion::ToolCall { arguments, .. } => {
                1 + arguments.as_object().map_or(0, |o| o.len() as u64)
            }
        }
    }

    /// Ollama's `done_reason`: `stop` or `length`.
    pub fn done_reason(&self) -> &'static str {
        match self {
            Completion::Text {
                truncated: true, ..
            } => "length",
            _ => "stop",
        }
    }

    pub fn text(&self) -> String {
        match self {
            Completion::Text { tokens, .. } => tokens.concat(),
            Completion::ToolCall { .. } => String::new(),
        }
    }

    pub fn thinking_tokens(&self) -> u64 {
        match self {
            Completion::Text { thinking, .. } => thinking.len() as u64,
            Completion::ToolCall { .. } => 0,
        }
    }

    pub fn thinking(&self) -> String {
        match self {
            Completion::Text { thinking, .. } => thinking.concat(),
            Completion::ToolCall { .. } => String::new(),
        }
    }
}

pub fn complete(prompt: &Prompt) -> Completion {
    let limit = prompt.max_tokens.map_or(usize::MAX, |m| m as usize);
    let thinking: Vec<String> = if prompt.think {
        thinking_tokens().take(limit).collect()
    } else {
        Vec::new()
    };
    if prompt.think && thinking.len() == limit {
        // The budget went on thinking: no answer, no tool call.
        return Completion::Text {
            thinking,
            tokens: Vec::new(),
            truncated: true,
        };
    }
    let limit = limit - thinking.len();
    if let Some(last) = &prompt.last_user_message
        && let Some(tool) = choose_tool(&prompt.tools, last)
    {
        return Completion::ToolCall {
            name: tool.name.clone(),
            arguments: arguments_for_schema(&tool.parameters),
        };
    }
    let seed = fnv1a(prompt.conversation.as_bytes());
    let full = match &prompt.format {
        OutputFormat::Text => text_tokens(seed),
        OutputFormat::Json => {
            json_tokens(&json!({"status": "ok", "word": VOCABULARY[(seed % 32) as usize]}))
        }
        OutputFormat::Schema(schema) => json_tokens(&arguments_for_schema(schema)),
    };
    let truncated = full.len() > limit;
    let tokens = full.into_iter().take(limit).collect();
    Completion::Text {
        thinking,
        tokens,
        truncated,
    }
}

fn thinking_tokens() -> impl Iterator<Item = String> {
    (0..THINKING_TOKENS).map(|i| match i {
        0 => "Thinking".to_string(),
        _ => format!(" {}", VOCABULARY[i % VOCABULARY.len()]),
    })
}

fn choose_tool<'a>(tools: &'a [ToolSpec], last_user_message: &str) -> Option<&'a ToolSpec> {
    tools
        .iter()
        .find(|t| mentions(last_user_message, &t.name))
        .or_else(|| tools.first())
}

/// Whether `text` names `name` as a whole word (so tool `a` is not "mentioned" by "please").
fn mentions(text: &str, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let (text, name) = (text.to_lowercase(), name.to_lowercase());
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    text.match_indices(&name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

fn text_tokens(seed: u64) -> Vec<String> {
    let mut state = seed;
    (0..DEFAULT_ANSWER_TOKENS)
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let word = VOCABULARY[((state >> 33) % VOCABULARY.len() as u64) as usize];
            match i {
                0 => capitalise(word),
                _ if i == DEFAULT_ANSWER_TOKENS - 1 => format!(" {word}."),
                _ => format!(" {word}"),
            }
        })
        .collect()
}

/// Splits serialized JSON into token-sized pieces whose concatenation is the JSON.
fn json_tokens(value: &Value) -> Vec<String> {
    let text = value.to_string();
    let mut tokens = Vec::new();
    let mut current = String::new();
    for ch in text.chars() {
        current.push(ch);
        if matches!(ch, '{' | '}' | ',' | ':' | '"') || current.len() >= 6 {
            tokens.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

/// Builds a value that satisfies a (simple) JSON schema: required properties, or all
/// properties when none are marked required.
pub fn arguments_for_schema(schema: &Value) -> Value {
    let properties = schema.get("properties").and_then(Value::as_object);
    let Some(properties) = properties else {
        return Value::Object(Map::new());
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // Sorted by name: Ollama's tool-call arguments are a Go map, which encoding/json
    // writes with sorted keys (and nested objects the same way).
    let mut names: Vec<&String> = properties.keys().collect();
    names.sort();
    let mut out = Map::new();
    for name in names {
        if !required.is_empty() && !required.contains(&name.as_str()) {
            continue;
        }
        out.insert(name.clone(), value_for_property(&properties[name]));
    }
    Value::Object(out)
}

fn value_for_property(property: &Value) -> Value {
    if let Some(first) = property
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    // `type` may be a string or a list of strings.
    let kind = match property.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("string"),
        _ => "string",
    };
    match kind {
        "integer" | "number" => json!(1),
        "boolean" => json!(true),
        "array" => json!([]),
        "object" => arguments_for_schema(property),
        "null" => Value::Null,
        _ => json!("emulated"),
    }
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A deterministic unit vector for `text`: the same text always embeds the same.
pub fn embedding(text: &str, dimensions: usize) -> Vec<f64> {
    let mut state = fnv1a(text.as_bytes());
    let raw: Vec<f64> = (0..dimensions)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    // Rounded like a float32 printed by Go, so the JSON stays short.
    raw.iter()
        .map(|x| ((x / norm) * 1e7).round() / 1e7)
        .collect()
}

pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(text: &str) -> Prompt {
        Prompt {
            conversation: text.into(),
            last_user_message: Some(text.into()),
            tools: vec![],
            format: OutputFormat::Text,
            max_tokens: None,
            think: false,
        }
    }

    #[test]
    fn thinking_spends_the_budget_first() {
        let mut p = prompt("hi");
        p.think = true;
        p.max_tokens = Some(32);
        let c = complete(&p);
        assert_eq!(c.text(), "");
        assert_eq!(c.done_reason(), "length");
        assert!(!c.thinking().is_empty());
        p.max_tokens = None;
        let c = complete(&p);
        assert!(!c.text().is_empty());
        assert_eq!(c.output_tokens(), (THINKING_TOKENS + 12) as u64);
    }

    #[test]
    fn same_input_same_output_and_different_input_differs() {
        assert_eq!(complete(&prompt("hi")), complete(&prompt("hi")));
        assert_ne!(complete(&prompt("hi")), complete(&prompt("hello")));
    }

    #[test]
    fn json_mode_is_valid_json_and_truncation_reports_length() {
        let mut p = prompt("status please");
        p.format = OutputFormat::Json;
        let text = complete(&p).text();
        let parsed: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(parsed["status"], "ok");
        p.max_tokens = Some(2);
        assert_eq!(complete(&p).done_reason(), "length");
    }

    #[test]
    fn calls_the_named_tool_with_schema_arguments() {
        let mut p = prompt("use get_time please");
        p.tools = vec![
            ToolSpec {
                name: "get_weather".into(),
                parameters: json!({}),
            },
            ToolSpec {
                name: "get_time".into(),
                parameters: json!({"type":"object","properties":{"zone":{"type":"string","enum":["UTC"]},"n":{"type":"integer"}},"required":["zone"]}),
            },
        ];
        assert_eq!(
            complete(&p),
            Completion::ToolCall {
                name: "get_time".into(),
                arguments: json!({"zone": "UTC"})
            }
        );
        p.last_user_message = None;
        assert!(matches!(complete(&p), Completion::Text { .. }));
        assert!(mentions("call get_time now", "get_time"));
        assert!(!mentions("please", "a"));
        assert!(!mentions("get_timezone", "get_time"));
    }
}
