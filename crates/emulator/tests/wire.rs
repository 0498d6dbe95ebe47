//! The emulator at the wire: framing, keep-alive, CORS, version gating, `/api/ps`
//! and `/api/pull`, spoken to with a raw HTTP/1.1 client so nothing here shares
//! code with the emulator or with sovereign's own client.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use common::{Connection, ndjson, start};
use ollama_emulator::EmulatorConfig;
use serde_json::{Value, json};

#[test]
fn serves_many_requests_on_one_keep_alive_connection() {
    let emulator = start(EmulatorConfig::default());
    let mut conn = Connection::open(&emulator);
    for i in 0..1000 {
        let reply = if i % 2 == 0 {
            conn.send("GET", "/api/version", &[], None)
        } else {
            conn.send(
                "POST",
                "/api/generate",
                &[],
                Some(r#"{"model":"toy","prompt":"hi"}"#),
            )
        };
        assert_eq!(reply.status, 200, "request {i}");
    }
}

#[test]
fn root_and_head_answer_like_ollama() {
    let emulator = start(EmulatorConfig::default());
    let mut conn = Connection::open(&emulator);
    let root = conn.send("GET", "/", &[], None);
    assert_eq!(
        (root.status, root.text().as_str()),
        (200, "Ollama is running")
    );
    let head = conn.send("HEAD", "/api/version", &[], None);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    // The connection is still usable after a HEAD (no stray body bytes).
    assert_eq!(
        conn.send("GET", "/api/version", &[], None).json(),
        json!({ "version": ollama_emulator::DEFAULT_VERSION })
    );
    let missing = conn.send("GET", "/api/nope", &[], None);
    assert_eq!(
        (missing.status, missing.text().as_str()),
        (404, "404 page not found")
    );
}

#[test]
fn native_streams_are_ndjson_ending_with_done_and_stats() {
    let emulator = start(EmulatorConfig::default());
    let mut conn = Connection::open(&emulator);
    let reply = conn.send(
        "POST",
        "/api/chat",
        &[],
        Some(r#"{"model":"toy","messages":[{"role":"user","content":"hi"}]}"#),
    );
    assert_eq!(reply.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(reply.header("transfer-encoding"), Some("chunked"));
    let lines = ndjson(&reply);
    let (last, pieces) = lines.split_last().unwrap();
    assert!(
        pieces
            .iter()
            .all(|l| l["done"] == false && l["message"]["role"] == "assistant")
    );
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "stop");
    for field in [
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ] {
        assert!(last[field].is_u64(), "{field} missing in {last}");
    }
    assert_eq!(last["eval_count"], json!(pieces.len()));
}

#[test]
fn the_toy_model_is_deterministic() {
    let emulator = start(EmulatorConfig::default());
    let mut conn = Connection::open(&emulator);
    let body = r#"{"model":"toy","prompt":"same question","stream":false}"#;
    let first = conn.send("POST", "/api/generate", &[], Some(body)).json();
    let second = conn.send("POST", "/api/generate", &[], Some(body)).json();
    assert_eq!(first["response"], second["response"]);
    let other = conn
        .send(
            "POST",
            "/api/generate",
            &[],
            Some(r#"{"model":"toy","prompt":"another question","stream":false}"#),
        )
        .json();
    assert_ne!(first["response"], other["response"]);
}

#[test]
fn json_format_yields_json_and_tools_get_called() {
    let emulator = start(EmulatorConfig::default());
    let mut conn = Connection::open(&emulator);
    let reply = conn
        .send(
            "POST",
            "/api/generate",
            &[],
            Some(r#"{"model":"toy","prompt":"status?","format":"json","stream":false}"#),
        )
        .json();
    let parsed: Value = serde_json::from_str(reply["response"].as_str().unwrap()).unwrap();
    assert!(parsed.is_object());

    let tools = r#"[{"type":"function","function":{"name":"a","parameters":{}}},{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"q":{"type":"string"}},"required":["q"]}}}]"#;
    let body = format!(
        r#"{{"model":"toy","stream":false,"tools":{tools},"messages":[{{"role":"user","content":"please lookup x"}}]}}"#
    );
    let reply = conn.send("POST", "/api/chat", &[], Some(&body)).json();
    let call = &reply["message"]["tool_calls"][0]["function"];
    assert_eq!(call["name"], "lookup");
    assert_eq!(call["arguments"], json!({ "q": "emulated" }));

    // After the tool answers, the model answers in text.
    let body = format!(
        r#"{{"model":"toy","stream":false,"tools":{tools},"messages":[{{"role":"user","content":"lookup x"}},{{"role":"assistant","content":"","tool_calls":[{{"function":{{"name":"lookup","arguments":{{"q":"x"}}}}}}]}},{{"role":"tool","content":"42"}}]}}"#
    );
    let reply = conn.send("POST", "/api/chat", &[], Some(&body)).json();
    assert!(reply["message"].get("tool_calls").is_none());
    assert!(!reply["message"]["content"].as_str().unwrap().is_empty());
}

#[test]
fn errors_have_each_familys_shape() {
    let emulator = start(EmulatorConfig::default());
    let mut conn = Connection::open(&emulator);
    let native = conn.send(
        "POST",
        "/api/chat",
        &[],
        Some(r#"{"model":"ghost","messages":[]}"#),
    );
    assert_eq!(native.status, 404);
    assert_eq!(
        native.json(),
        json!({ "error": "model \"ghost\" not found, try pulling it first" })
    );

    let missing_model = conn.send("POST", "/api/generate", &[], Some(r#"{"prompt":"x"}"#));
    assert_eq!(
        (missing_model.status, missing_model.json()),
        (400, json!({ "error": "model is required" }))
    );

    let openai = conn.send("POST", "/v1/chat/completions", &[], Some("{nope"));
    assert_eq!(openai.status, 400);
    let body = openai.json();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"].is_string()
            && body["error"]["param"].is_null()
            && body["error"]["code"].is_null()
    );

    let anthropic = conn.send(
        "POST",
        "/v1/messages",
        &[],
        Some(r#"{"model":"ghost","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#),
    );
    assert_eq!(anthropic.status, 404);
    let body = anthropic.json();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "not_found_error");
    assert!(body["request_id"].as_str().unwrap().starts_with("req_"));

    let no_max_tokens = conn.send(
        "POST",
        "/v1/messages",
        &[],
        Some(r#"{"model":"toy","messages":[{"role":"user","content":"hi"}]}"#),
    );
    assert_eq!(no_max_tokens.status, 400);
}

#[test]
fn cors_refuses_foreign_origins_with_an_empty_403_and_answers_preflights() {
    let emulator = start(EmulatorConfig::default());
    let mut conn = Connection::open(&emulator);
    let refused = conn.send(
        "GET",
        "/api/tags",
        &[("Origin", "http://evil.example")],
        None,
    );
    assert_eq!(refused.status, 403);
    assert!(refused.body.is_empty());

    let allowed = conn.send(
        "GET",
        "/api/tags",
        &[("Origin", "http://localhost:5173")],
        None,
    );
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("http://localhost:5173")
    );

    let preflight = conn.send(
        "OPTIONS",
        "/v1/chat/completions",
        &[
            ("Origin", "vscode-webview://x"),
            ("Access-Control-Request-Method", "POST"),
        ],
        None,
    );
    assert_eq!(preflight.status, 204);
    let allowed = preflight.header("access-control-allow-headers").unwrap();
    assert!(allowed.contains("Authorization"));
    // Ollama's list (server/routes.go corsConfig.AllowHeaders) has the OpenAI SDK's
    // headers but not Anthropic's.
    assert!(allowed.contains("x-stainless-helper-method"));
    assert!(!allowed.contains("x-api-key"));

    let extra = start(EmulatorConfig {
        extra_origins: vec!["https://app.example".into()],
        ..EmulatorConfig::default()
    });
    let mut conn = Connection::open(&extra);
    assert_eq!(
        conn.send(
            "GET",
            "/api/version",
            &[("Origin", "https://app.example")],
            None
        )
        .status,
        200
    );
}

#[test]
fn a_loopback_listener_refuses_foreign_host_headers() {
    let emulator = start(EmulatorConfig::default());
    let mut conn = Connection::open(&emulator);
    let rebinding = {
        let head = "GET /api/version HTTP/1.1\r\nHost: attacker.example\r\n\r\n";
        conn.writer.write_all(head.as_bytes()).unwrap();
        conn.read_reply(false)
    };
    assert_eq!(rebinding.status, 403);
}

#[test]
fn an_older_version_lacks_the_newer_endpoints() {
    let old = start(EmulatorConfig {
        version: "0.13.0".into(),
        ..EmulatorConfig::default()
    });
    let mut conn = Connection::open(&old);
    let responses = conn.send(
        "POST",
        "/v1/responses",
        &[],
        Some(r#"{"model":"toy","input":"hi"}"#),
    );
    assert_eq!(responses.status, 404);
    let messages = conn.send(
        "POST",
        "/v1/messages",
        &[],
        Some(r#"{"model":"toy","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#),
    );
    assert_eq!(messages.status, 404);
    assert_eq!(
        conn.send("GET", "/api/version", &[], None).json()["version"],
        "0.13.0"
    );

    let middle = start(EmulatorConfig {
        version: "0.13.3".into(),
        ..EmulatorConfig::default()
    });
    let mut conn = Connection::open(&middle);
    assert_eq!(
        conn.send(
            "POST",
            "/v1/responses",
            &[],
            Some(r#"{"model":"toy","input":"hi"}"#)
        )
        .status,
        200
    );
    assert_eq!(
        conn.send(
            "POST",
            "/v1/messages",
            &[],
            Some(r#"{"model":"toy","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#)
        )
        .status,
        404
    );
}

#[test]
fn ps_follows_keep_alive_and_num_ctx() {
    let emulator = start(EmulatorConfig {
        models: vec!["a".into(), "b".into()],
        ..EmulatorConfig::default()
    });
    let mut conn = Connection::open(&emulator);
    assert_eq!(
        conn.send("GET", "/api/ps", &[], None).json(),
        json!({ "models": [] })
    );

    let load = conn
        .send(
            "POST",
            "/api/generate",
            &[],
            Some(r#"{"model":"a","keep_alive":"10m","options":{"num_ctx":65536},"stream":false}"#),
        )
        .json();
    assert_eq!(load["done_reason"], "load");
    conn.send(
        "POST",
        "/api/chat",
        &[],
        Some(r#"{"model":"b:latest","messages":[{"role":"user","content":"x"}],"stream":false}"#),
    );
    let ps = conn.send("GET", "/api/ps", &[], None).json();
    let names: Vec<&str> = ps["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a:latest", "b:latest"]);
    assert_eq!(ps["models"][0]["context_length"], 65536);
    assert!(
        ps["models"][0]["expires_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    let unload = conn
        .send(
            "POST",
            "/api/generate",
            &[],
            Some(r#"{"model":"a","keep_alive":0,"stream":false}"#),
        )
        .json();
    assert_eq!(unload["done_reason"], "unload");
    let ps = conn.send("GET", "/api/ps", &[], None).json();
    assert_eq!(ps["models"].as_array().unwrap().len(), 1);
}

#[test]
fn pull_streams_progress_and_installs_the_model() {
    let emulator = start(EmulatorConfig::default());
    let mut conn = Connection::open(&emulator);
    let reply = conn.send("POST", "/api/pull", &[], Some(r#"{"model":"fresh"}"#));
    assert_eq!(reply.header("content-type"), Some("application/x-ndjson"));
    let lines = ndjson(&reply);
    let statuses: Vec<&str> = lines
        .iter()
        .map(|l| l["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.first(), Some(&"pulling manifest"));
    assert_eq!(
        &statuses[statuses.len() - 3..],
        ["verifying sha256 digest", "writing manifest", "success"]
    );
    let progress: Vec<&Value> = lines.iter().filter(|l| l.get("total").is_some()).collect();
    assert!(progress.len() >= 2);
    assert_eq!(
        progress.last().unwrap()["completed"],
        progress.last().unwrap()["total"]
    );
    let tags = conn.send("GET", "/api/tags", &[], None).json();
    assert!(
        tags["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "fresh:latest")
    );
}

#[test]
fn openai_stream_is_sse_with_done_and_usage_chunk() {
    let emulator = start(EmulatorConfig::default());
    let mut conn = Connection::open(&emulator);
    let reply = conn.send(
        "POST",
        "/v1/chat/completions",
        &[],
        Some(r#"{"model":"toy","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#),
    );
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let events: Vec<&str> = reply
        .text()
        .leak()
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .collect();
    assert_eq!(events.last(), Some(&"data: [DONE]"));
    let usage: Value =
        serde_json::from_str(events[events.len() - 2].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].is_u64());
    let finish: Value =
        serde_json::from_str(events[events.len() - 3].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
}

#[test]
fn the_binary_prints_its_address_first() {
    let binary = env!("CARGO_BIN_EXE_ollama-emulator");
    let mut child = std::process::Command::new(binary)
        .args(["--listen", "127.0.0.1:0", "--version", "0.13.0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .write_all(b"GET /api/version HTTP/1.0\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert!(reply.ends_with(r#"{"version":"0.13.0"}"#), "{reply}");
}
