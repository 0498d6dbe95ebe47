//! Routing, shared state and the helpers every API family uses.

use std::collections::BTreeMap;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::cors::{self, OriginVerdict};
use crate::http::{Handler, Request, Responder, Stream};
use crate::profile::Wire;
use crate::toy::{self, Completion, OutputFormat, Prompt, ToolSpec};
use crate::{EmulatorConfig, time};
use crate::{anthropic, native, openai};

const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u64, pub u64, pub u64);

impl Version {
    /// Parses `0.14.0`, `v0.14.0`, `0.14.0-rc1`. A pre-release counts as the release
    /// before it, so gates never open early.
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim().trim_start_matches('v');
        let (core, pre) = match text.split_once(['-', '+']) {
            Some((core, pre)) => (core, !pre.is_empty()),
            None => (text, false),
        };
        let mut numbers = core.split('.').map(|n| n.parse::<u64>());
        let (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) =
            (numbers.next(), numbers.next(), numbers.next())
        else {
            return None;
        };
        let v = Version(a, b, c);
        Some(if pre { v.previous() } else { v })
    }

    fn previous(self) -> Version {
        match self {
            Version(a, b, c) if c > 0 => Version(a, b, c - 1),
            Version(a, b, _) if b > 0 => Version(a, b - 1, u64::MAX),
            Version(a, _, _) => Version(a.saturating_sub(1), u64::MAX, u64::MAX),
        }
    }
}

pub struct ModelEntry {
    pub name: String,
    pub digest: String,
    pub size: u64,
    pub modified: SystemTime,
    pub kind: ModelKind,
}

/// What a model can do, as `/api/show` reports it in `capabilities`
/// (types/model/capability.go).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModelKind {
    pub completion: bool,
    pub tools: bool,
    pub insert: bool,
    pub vision: bool,
    pub thinking: bool,
    pub embedding: bool,
    /// A cloud model (`*-cloud`): listed with `remote_host`, generated upstream.
    pub cloud: bool,
}

impl ModelKind {
    const CHAT: ModelKind = ModelKind {
        completion: true,
        tools: true,
        insert: true,
        vision: false,
        thinking: false,
        embedding: false,
        cloud: false,
    };

    /// The kind a model name suggests, like the families people pull: `*embed*` is
    /// embedding-only; qwen3, deepseek-r1, gpt-oss and `*think*` think by default;
    /// llava and `*vision*` see images; `*-cloud` runs upstream; `*notools*` (and
    /// old families such as llama2, gemma2) chat without tools. Anything else is a
    /// chat model with tools and fill-in-the-middle (`insert`).
    pub fn from_name(name: &str) -> ModelKind {
        let n = name.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| n.contains(w));
        let mut kind = ModelKind::CHAT;
        if has(&["embed", "minilm", "bge-"]) {
            return ModelKind {
                embedding: true,
                ..ModelKind::default()
            };
        }
        if has(&["qwen3", "deepseek-r1", "gpt-oss", "think"]) {
            kind.thinking = true;
            kind.insert = false;
        }
        if has(&["deepseek-r1"]) {
            kind.tools = false;
        }
        if has(&["llava", "vision", "-vl"]) {
            kind.vision = true;
        }
        if has(&["notools", "llama2", "gemma2"]) {
            kind.tools = false;
            kind.insert = false;
        }
        kind.cloud = n.ends_with("-cloud") || n.ends_with(":cloud");
        kind
    }

    /// `NAME=cap+cap` sets the capabilities explicitly (`completion`, `tools`,
    /// `insert`, `vision`, `thinking`, `embedding`, `cloud`).
    pub fn parse_spec(spec: &str) -> Result<(String, ModelKind), String> {
        let Some((name, caps)) = spec.split_once('=') else {
            return Ok((spec.to_string(), ModelKind::from_name(spec)));
        };
        let mut kind = ModelKind::default();
        for cap in caps.split('+').map(str::trim).filter(|c| !c.is_empty()) {
            match cap {
                "completion" => kind.completion = true,
                "tools" => kind.tools = true,
                "insert" => kind.insert = true,
                "vision" => kind.vision = true,
                "thinking" => kind.thinking = true,
                "embedding" => kind.embedding = true,
                "cloud" => kind.cloud = true,
                other => {
                    return Err(format!(
                        "model {name:?}: unknown capability {other:?} (completion, tools, insert, vision, thinking, embedding, cloud)"
                    ));
                }
            }
        }
        Ok((name.to_string(), kind))
    }

    /// The `capabilities` list in `/api/show`, in Ollama's order (server/images.go
    /// `Capabilities`: completion, then tools/insert/vision/thinking as found).
    pub fn capabilities(self) -> Vec<&'static str> {
        let mut caps = Vec::new();
        for (on, name) in [
            (self.embedding, "embedding"),
            (self.completion, "completion"),
            (self.tools, "tools"),
            (self.insert, "insert"),
            (self.vision, "vision"),
            (self.thinking, "thinking"),
        ] {
            if on {
                caps.push(name);
            }
        }
        caps
    }
}

struct LoadedModel {
    /// `None` keeps the model loaded forever (negative keep_alive).
    expires: Option<SystemTime>,
    context_length: u64,
}

pub struct App {
    pub config: EmulatorConfig,
    pub wire: Wire,
    models: Mutex<Vec<ModelEntry>>,
    loaded: Mutex<BTreeMap<String, LoadedModel>>,
    ids: AtomicU64,
    allowed_origins: Vec<String>,
    loopback_listener: bool,
}

impl App {
    pub fn new(config: EmulatorConfig, loopback_listener: bool) -> App {
        let version = Version::parse(&config.version).unwrap_or(Version(0, 0, 0));
        let now = SystemTime::now();
        let models = config
            .models
            .iter()
            .map(|spec| {
                let (name, kind) = ModelKind::parse_spec(spec)
                    .unwrap_or_else(|_| (spec.clone(), ModelKind::from_name(spec)));
                let mut entry = model_entry(&normalize_name(&name), now);
                entry.kind = kind;
                entry
            })
            .collect();
        let mut allowed_origins = cors::default_origins();
        allowed_origins.extend(config.extra_origins.iter().cloned());
        App {
            config,
            wire: Wire::of(version),
            models: Mutex::new(models),
            loaded: Mutex::new(BTreeMap::new()),
            ids: AtomicU64::new(1),
            allowed_origins,
            loopback_listener,
        }
    }

    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// A random-looking but deterministic-per-run hex id.
    pub fn hex_id(&self, len: usize) -> String {
        let n = self.next_id();
        let mut out = String::new();
        let mut seed = toy::fnv1a(&n.to_le_bytes());
        while out.len() < len {
            out.push_str(&format!("{seed:016x}"));
            seed = toy::fnv1a(&seed.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// Finds a model by name, accepting the `:latest` shorthand like Ollama.
    pub fn with_model<T>(&self, name: &str, f: impl FnOnce(&ModelEntry) -> T) -> Option<T> {
        let wanted = normalize_name(name);
        let models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        models.iter().find(|m| m.name == wanted).map(f)
    }

    pub fn list_models<T>(&self, f: impl FnMut(&ModelEntry) -> T) -> Vec<T> {
        let models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        models.iter().map(f).collect()
    }

    pub fn add_model(&self, name: &str) -> ModelEntry {
        let name = normalize_name(name);
        let entry = model_entry(&name, SystemTime::now());
        let mut models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        if !models.iter().any(|m| m.name == name) {
            models.push(model_entry(&name, entry.modified));
        }
        entry
    }

    pub fn delete_model(&self, name: &str) -> bool {
        let name = normalize_name(name);
        let mut models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        let before = models.len();
        models.retain(|m| m.name != name);
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&name);
        models.len() != before
    }

    /// Records that a generation used `model`, for `/api/ps`.
    pub fn touch_loaded(&self, model: &str, keep_alive: KeepAlive, context_length: Option<u64>) {
        let name = normalize_name(model);
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let expires = match keep_alive {
            KeepAlive::Unload => {
                loaded.remove(&name);
                return;
            }
            KeepAlive::Forever => None,
            KeepAlive::For(d) => Some(SystemTime::now() + d),
        };
        let context_length = context_length.unwrap_or(self.config.context_length);
        loaded.insert(
            name,
            LoadedModel {
                expires,
                context_length,
            },
        );
    }

    pub fn loaded_models(&self) -> Vec<Value> {
        let now = SystemTime::now();
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        loaded.retain(|_, m| m.expires.is_none_or(|e| e > now));
        loaded
            .iter()
            .filter_map(|(name, state)| {
                self.with_model(name, |m| {
                    // Go's zero-ish "forever" is far in the future; 100 years is far enough.
                    let expires = state
                        .expires
                        .unwrap_or(now + Duration::from_secs(100 * 365 * 86_400));
                    json!({
                        "name": m.name,
                        "model": m.name,
                        "size": m.size,
                        "digest": m.digest,
                        "details": model_details(m.kind),
                        "expires_at": time::rfc3339(expires),
                        "size_vram": m.size,
                        "context_length": state.context_length,
                    })
                })
            })
            .collect()
    }

    /// Sleeps like a model producing one token.
    pub fn pace_token(&self) {
        if !self.config.token_delay.is_zero() {
            thread::sleep(self.config.token_delay);
        }
    }
}

impl Handler for App {
    fn handle(&self, request: &Request, out: &mut Responder<'_>) -> io::Result<()> {
        if self.loopback_listener && !cors::host_allowed(request.header("host")) {
            return out.send(403, None, b"");
        }
        match cors::check_origin(
            request.header("origin"),
            request.header("host"),
            &self.allowed_origins,
        ) {
            OriginVerdict::Forbidden => return out.send(403, None, b""),
            OriginVerdict::Allowed(origin) => {
                out.add_header("Access-Control-Allow-Origin", &origin);
                out.add_header("Vary", "Origin");
                if request.method == "OPTIONS" {
                    out.add_header(
                        "Access-Control-Allow-Methods",
                        "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS",
                    );
                    // corsConfig.AllowHeaders, the same at every tag from v0.13.0 to
                    // v0.32.15 (server/routes.go). Anthropic's x-api-key and
                    // anthropic-version are not in it: a browser preflight for them fails.
                    out.add_header(
                        "Access-Control-Allow-Headers",
                        "Authorization,Content-Type,User-Agent,Accept,X-Requested-With,OpenAI-Beta,x-stainless-arch,x-stainless-async,x-stainless-custom-poll-interval,x-stainless-helper-method,x-stainless-lang,x-stainless-os,x-stainless-package-version,x-stainless-poll-helper,x-stainless-retry-count,x-stainless-runtime,x-stainless-runtime-version,x-stainless-timeout",
                    );
                    out.add_header("Access-Control-Max-Age", "43200");
                    return out.send(204, None, b"");
                }
            }
            OriginVerdict::NotCors => {}
        }
        self.route(request, out)
    }
}

impl App {
    fn route(&self, request: &Request, out: &mut Responder<'_>) -> io::Result<()> {
        let method = request.method.as_str();
        let path = request.path.trim_end_matches('/');
        let read = matches!(method, "GET" | "HEAD");
        let wire = self.wire;
        match (method, path) {
            (_, "") if read => {
                out.send(200, Some("text/plain; charset=utf-8"), b"Ollama is running")
            }
            (_, "/api/version") if read => {
                send_json(out, 200, &json!({ "version": self.config.version }))
            }
            (_, "/api/tags") if read => native::tags(self, out),
            ("GET", "/api/ps") => native::ps(self, out),
            ("POST", "/api/show") => native::show(self, request, out),
            ("POST", "/api/generate") => native::generate(self, request, out),
            ("POST", "/api/chat") => native::chat(self, request, out),
            ("POST", "/api/embed") => native::embed(self, request, out),
            ("POST", "/api/embeddings") => native::embeddings(self, request, out),
            ("POST", "/api/pull") => native::pull(self, request, out),
            ("DELETE", "/api/delete") => native::delete(self, request, out),
            ("GET", "/v1/models") => openai::list_models(self, out),
            // gin's `/v1/models/:model` matches one path segment, so `user/model`
            // and `hf.co/...` fall through to the 404 below (server/routes.go).
            ("GET", p)
                if p.starts_with("/v1/models/") && !p["/v1/models/".len()..].contains('/') =>
            {
                openai::retrieve_model(self, &percent_decode(&p["/v1/models/".len()..]), out)
            }
            ("POST", "/v1/chat/completions") => openai::chat_completions(self, request, out),
            ("POST", "/v1/completions") => openai::completions(self, request, out),
            ("POST", "/v1/embeddings") => openai::embeddings(self, request, out),
            ("POST", "/v1/responses") if wire.responses => openai::responses(self, request, out),
            ("POST", "/v1/messages") if wire.messages => anthropic::messages(self, request, out),
            // gin with HandleMethodNotAllowed = true (server/routes.go, every tag
            // since v0.1): a known path with another method is a plain-text 405.
            (_, p) if self.route_exists(p) => {
                out.send(405, Some("text/plain"), b"405 method not allowed")
            }
            // gin answers unknown routes with this plain-text 404.
            _ => out.send(404, Some("text/plain"), b"404 page not found"),
        }
    }

    /// Whether some method serves `path` in this version.
    fn route_exists(&self, path: &str) -> bool {
        let fixed = [
            "",
            "/api/version",
            "/api/tags",
            "/api/ps",
            "/api/show",
            "/api/generate",
            "/api/chat",
            "/api/embed",
            "/api/embeddings",
            "/api/pull",
            "/api/delete",
            "/v1/models",
            "/v1/chat/completions",
            "/v1/completions",
            "/v1/embeddings",
        ];
        fixed.contains(&path)
            || (path == "/v1/responses" && self.wire.responses)
            || (path == "/v1/messages" && self.wire.messages)
            || path
                .strip_prefix("/v1/models/")
                .is_some_and(|m| !m.is_empty() && !m.contains('/'))
    }
}

/// `keep_alive` as Ollama reads it: seconds as a number, or a Go duration string.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeepAlive {
    For(Duration),
    Forever,
    Unload,
}

impl KeepAlive {
    /// The `done_reason` of a request that only loads (or unloads) the model.
    pub fn load_reason(self) -> &'static str {
        if self == KeepAlive::Unload {
            "unload"
        } else {
            "load"
        }
    }

    pub fn from_request(value: Option<&Value>) -> KeepAlive {
        let seconds = match value {
            None | Some(Value::Null) => return KeepAlive::For(DEFAULT_KEEP_ALIVE),
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s
                .trim()
                .parse::<f64>()
                .ok()
                .or_else(|| parse_go_duration(s)),
            Some(_) => None,
        };
        match seconds {
            None => KeepAlive::For(DEFAULT_KEEP_ALIVE),
            Some(s) if s < 0.0 => KeepAlive::Forever,
            Some(0.0) => KeepAlive::Unload,
            Some(s) => KeepAlive::For(Duration::from_secs_f64(s.min(1e10))),
        }
    }
}

/// Parses Go durations such as `5m`, `1h30m`, `-1s`, `250ms` into seconds.
fn parse_go_duration(text: &str) -> Option<f64> {
    let text = text.trim();
    let (sign, mut rest) = match text.strip_prefix('-') {
        Some(r) => (-1.0, r),
        None => (1.0, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Some(sign * total)
}

/// What one generation did, for Ollama's timing fields (all in nanoseconds).
pub struct GenerationClock {
    start: Instant,
    first_token: Option<Instant>,
}

impl GenerationClock {
    pub fn start() -> GenerationClock {
        GenerationClock {
            start: Instant::now(),
            first_token: None,
        }
    }

    pub fn token(&mut self) {
        self.first_token.get_or_insert_with(Instant::now);
    }

    /// The native final-object metrics.
    pub fn metrics(
        &self,
        prompt: &Prompt,
        completion: &Completion,
    ) -> serde_json::Map<String, Value> {
        let end = Instant::now();
        let first = self.first_token.unwrap_or(end);
        let nanos = |d: Duration| d.as_nanos() as u64;
        let mut m = serde_json::Map::new();
        m.insert("total_duration".into(), json!(nanos(end - self.start)));
        m.insert(
            "load_duration".into(),
            json!(nanos(Duration::from_micros(250))),
        );
        m.insert("prompt_eval_count".into(), json!(prompt.prompt_tokens()));
        m.insert(
            "prompt_eval_duration".into(),
            json!(nanos(first - self.start)),
        );
        m.insert("eval_count".into(), json!(completion.output_tokens()));
        m.insert("eval_duration".into(), json!(nanos(end - first).max(1)));
        m
    }
}

/// Plays a completion out token by token at the configured pace.
pub fn play_tokens(
    app: &App,
    completion: &Completion,
    clock: &mut GenerationClock,
    mut emit: impl FnMut(&str) -> io::Result<()>,
) -> io::Result<()> {
    if let Completion::Text { tokens, .. } = completion {
        for token in tokens {
            app.pace_token();
            clock.token();
            emit(token)?;
        }
    } else {
        app.pace_token();
        clock.token();
    }
    Ok(())
}

/// A completion generated without streaming still takes generation time.
pub fn play_silently(app: &App, completion: &Completion, clock: &mut GenerationClock) {
    let _ = play_thinking(app, completion, clock, |_| Ok(()));
    let _ = play_tokens(app, completion, clock, |_| Ok(()));
}

pub fn send_json(out: &mut Responder<'_>, status: u16, body: &Value) -> io::Result<()> {
    out.send(
        status,
        Some("application/json; charset=utf-8"),
        body.to_string().as_bytes(),
    )
}

pub fn send_ndjson_line(stream: &mut Stream<'_>, value: &Value) -> io::Result<()> {
    let mut line = value.to_string();
    line.push('\n');
    stream.send(line.as_bytes())
}

/// `event: NAME\ndata: JSON\n\n` (Responses API and Anthropic).
pub fn send_sse_event(stream: &mut Stream<'_>, event: &str, data: &Value) -> io::Result<()> {
    stream.send(format!("event: {event}\ndata: {data}\n\n").as_bytes())
}

/// `data: JSON\n\n` (OpenAI chat completions).
pub fn send_sse_data(stream: &mut Stream<'_>, data: &str) -> io::Result<()> {
    stream.send(format!("data: {data}\n\n").as_bytes())
}

/// Parses a request body as a JSON object; `Err` carries Go-like error text.
pub fn parse_body(request: &Request) -> Result<serde_json::Map<String, Value>, String> {
    if request.body.is_empty() {
        return Err("missing request body".into());
    }
    match serde_json::from_slice::<Value>(&request.body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!(
            "json: cannot unmarshal {} into Go value of type map",
            json_kind(&other)
        )),
        Err(e) => Err(go_json_error(&request.body, &e)),
    }
}

/// encoding/json's wording: a cut-off body is `unexpected EOF` (what gin's
/// ShouldBindJSON returns and Ollama passes on), a stray byte `invalid character`.
fn go_json_error(body: &[u8], error: &serde_json::Error) -> String {
    if error.is_eof() {
        return "unexpected EOF".into();
    }
    let text = String::from_utf8_lossy(body);
    let at = text
        .lines()
        .nth(error.line().saturating_sub(1))
        .and_then(|line| line.chars().nth(error.column().saturating_sub(1)));
    match at {
        Some(c) => format!("invalid character '{c}' looking for beginning of value"),
        None => format!("invalid JSON: {error}"),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Flattens message content: a string, or a list of parts/blocks with text.
pub fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|part| match part {
                Value::String(s) => s.clone(),
                Value::Object(o) => o
                    .get("text")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| content_text(o.get("content"))),
                _ => String::new(),
            })
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Tools in any of the three families' shapes.
pub fn parse_tools(tools: Option<&Value>) -> Vec<ToolSpec> {
    let Some(Value::Array(tools)) = tools else {
        return Vec::new();
    };
    tools
        .iter()
        .filter_map(|tool| {
            let function = tool.get("function").unwrap_or(tool);
            let name = function.get("name")?.as_str()?.to_string();
            let parameters = function
                .get("parameters")
                .or_else(|| function.get("input_schema"))
                .cloned()
                .unwrap_or(Value::Null);
            Some(ToolSpec { name, parameters })
        })
        .collect()
}

/// Builds the toy model's view of a chat-style conversation.
pub struct ConversationBuilder {
    text: String,
    last_user: Option<String>,
}

impl ConversationBuilder {
    pub fn new() -> ConversationBuilder {
        ConversationBuilder {
            text: String::new(),
            last_user: None,
        }
    }

    pub fn push(&mut self, role: &str, text: &str) {
        self.text.push_str(role);
        self.text.push_str(": ");
        self.text.push_str(text);
        self.text.push('\n');
        self.last_user = (role == "user").then(|| text.to_string());
    }

    pub fn finish(
        self,
        tools: Vec<ToolSpec>,
        format: OutputFormat,
        max_tokens: Option<u64>,
    ) -> Prompt {
        Prompt {
            conversation: self.text,
            last_user_message: self.last_user,
            tools,
            format,
            max_tokens,
            think: false,
        }
    }
}

/// What a request asks of its model, for [`App::admit`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Admission {
    /// `/api/chat` (and what is built on it) rather than `/api/generate`.
    pub chat: bool,
    pub tools: bool,
    /// A `suffix` (fill-in-the-middle) was sent.
    pub insert: bool,
    /// The request's think value: `None` leaves the model's default.
    pub think: Option<bool>,
}

/// Why a model cannot serve a request: (HTTP status, Ollama's error text).
pub type Refusal = (u16, String);

impl App {
    /// Checks a generation request against the model's capabilities like
    /// ChatHandler/GenerateHandler (server/routes.go@v0.32.15: "%q does not support
    /// chat|generate|thinking", CheckCapabilities' "NAME does not support tools") and
    /// returns whether the model will think.
    pub fn admit(&self, model: &str, wanted: Admission) -> Result<bool, Refusal> {
        let Some(kind) = self.with_model(model, |m| m.kind) else {
            return Err((404, crate::native::model_not_found(model)));
        };
        if !kind.completion {
            let what = if wanted.chat { "chat" } else { "generate" };
            return Err((400, format!("{model:?} does not support {what}")));
        }
        if kind.cloud {
            // Cloud models run on ollama.com, which a test double never reaches
            // (cloudErrRemoteInferenceUnavailable, server/routes.go@v0.32.15).
            return Err((502, "remote model is unavailable".into()));
        }
        let full = normalize_name(model);
        if wanted.tools && !kind.tools {
            return Err((400, format!("{full} does not support tools")));
        }
        if wanted.insert && !kind.insert {
            return Err((400, format!("{full} does not support insert")));
        }
        if wanted.think == Some(true) && !kind.thinking {
            return Err((400, format!("{model:?} does not support thinking")));
        }
        Ok(wanted.think.unwrap_or(kind.thinking) && kind.thinking)
    }
}

/// Plays the thinking part of a completion token by token.
pub fn play_thinking(
    app: &App,
    completion: &Completion,
    clock: &mut GenerationClock,
    mut emit: impl FnMut(&str) -> io::Result<()>,
) -> io::Result<()> {
    if let Completion::Text { thinking, .. } = completion {
        for token in thinking {
            app.pace_token();
            clock.token();
            emit(token)?;
        }
    }
    Ok(())
}

/// The native `think` value: a bool, or a level ("low", "medium", "high") that
/// means thinking on (api/types.go ThinkValue).
pub fn think_value(value: Option<&Value>) -> Option<bool> {
    match value? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => Some(!s.is_empty()),
        _ => None,
    }
}

/// OpenAI's `reasoning_effort`: "none" turns thinking off, any other effort on
/// (openai/openai.go thinkFromReasoningEffort).
pub fn think_from_effort(effort: Option<&Value>) -> Option<bool> {
    match effort?.as_str()? {
        "" => None,
        "none" => Some(false),
        _ => Some(true),
    }
}

pub fn model_details(kind: ModelKind) -> Value {
    let family = if kind.embedding { "toybert" } else { "toy" };
    json!({
        "parent_model": "",
        "format": "gguf",
        "family": family,
        "families": [family],
        "parameter_size": "1M",
        "quantization_level": "Q4_0",
    })
}

/// Ollama names without a tag mean `:latest`.
pub fn normalize_name(name: &str) -> String {
    let name = name.trim();
    let last_segment = name.rsplit('/').next().unwrap_or(name);
    if last_segment.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

fn model_entry(name: &str, modified: SystemTime) -> ModelEntry {
    let mut digest = String::new();
    let mut seed = toy::fnv1a(name.as_bytes());
    for _ in 0..4 {
        digest.push_str(&format!("{seed:016x}"));
        seed = toy::fnv1a(&seed.to_le_bytes());
    }
    ModelEntry {
        name: name.to_string(),
        digest,
        size: 1_000_000 + toy::fnv1a(name.as_bytes()) % 1_000_000,
        modified,
        kind: ModelKind::from_name(name),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (
                (bytes[i + 1] as char).to_digit(16),
                (bytes[i + 2] as char).to_digit(16),
            )
        {
            let b = (hi * 16 + lo) as u8;
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_gate_strictly() {
        use crate::profile::{MESSAGES_SINCE, RESPONSES_SINCE};
        assert!(Version::parse("0.14.0").unwrap() >= MESSAGES_SINCE);
        assert!(Version::parse("0.14.0-rc1").unwrap() < MESSAGES_SINCE);
        assert!(Version::parse("0.13.3").unwrap() >= RESPONSES_SINCE);
        assert!(Version::parse("0.13.0").unwrap() < RESPONSES_SINCE);
        assert_eq!(Version::parse("garbage"), None);
    }

    #[test]
    fn model_kinds_from_names_and_specs() {
        assert!(ModelKind::from_name("nomic-embed-text:latest").embedding);
        assert!(!ModelKind::from_name("nomic-embed-text").completion);
        assert!(ModelKind::from_name("qwen3:8b").thinking);
        assert!(ModelKind::from_name("gpt-oss:120b-cloud").cloud);
        assert!(ModelKind::from_name("llava:7b").vision);
        assert!(!ModelKind::from_name("llama2:7b").tools);
        let (name, kind) = ModelKind::parse_spec("x:1=completion+thinking").unwrap();
        assert_eq!(name, "x:1");
        assert_eq!(kind.capabilities(), ["completion", "thinking"]);
        assert!(ModelKind::parse_spec("x=flying").is_err());
    }

    #[test]
    fn keep_alive_forms() {
        assert_eq!(
            KeepAlive::from_request(Some(&json!("5m"))),
            KeepAlive::For(Duration::from_secs(300))
        );
        assert_eq!(
            KeepAlive::from_request(Some(&json!(-1))),
            KeepAlive::Forever
        );
        assert_eq!(
            KeepAlive::from_request(Some(&json!("0"))),
            KeepAlive::Unload
        );
        assert_eq!(
            KeepAlive::from_request(Some(&json!("1h30m"))),
            KeepAlive::For(Duration::from_secs(5400))
        );
    }

    #[test]
    fn names_and_decoding() {
        assert_eq!(normalize_name("toy"), "toy:latest");
        assert_eq!(normalize_name("me/toy:7b"), "me/toy:7b");
        assert_eq!(percent_decode("toy%3Alatest"), "toy:latest");
        assert_eq!(percent_decode("bad%zz%"), "bad%zz%");
    }
}
