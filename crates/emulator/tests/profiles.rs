//! Version profiles and model kinds: what differs between Ollama release lines, and
//! what each kind of model can and cannot do. Each expectation names the Ollama
//! source it follows (ollama/ollama at the tag given).

mod common;

use common::{Connection, Reply, start};
use ollama_emulator::EmulatorConfig;
use serde_json::{Value, json};

fn config(version: &str, models: &[&str]) -> EmulatorConfig {
    EmulatorConfig {
        version: version.into(),
        models: models.iter().map(|m| m.to_string()).collect(),
        ..EmulatorConfig::default()
    }
}

fn post(conn: &mut Connection, path: &str, body: Value) -> Reply {
    conn.send("POST", path, &[], Some(&body.to_string()))
}

/// The `data:` payloads of an SSE body.
fn sse_data(reply: &Reply) -> Vec<Value> {
    reply
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn event<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {events:#?}"))
}

#[test]
fn responses_stream_objects_lack_created_at_and_model_before_0_14_2() {
    // openai/responses.go@v0.14.0 createResponseCreatedEvent: id, object, status, output.
    let body = json!({ "model": "toy", "input": "hi", "stream": true });
    for (version, full) in [("0.13.3", false), ("0.14.1", false), ("0.14.2", true)] {
        let emulator = start(config(version, &["toy"]));
        let mut conn = Connection::open(&emulator);
        let events = sse_data(&post(&mut conn, "/v1/responses", body.clone()));
        let created = &event(&events, "response.created")["response"];
        assert_eq!(created.get("created_at").is_some(), full, "{version}");
        assert_eq!(created.get("model").is_some(), full, "{version}");
        let completed = &event(&events, "response.completed")["response"];
        assert_eq!(completed["status"], "completed");
        assert!(completed["usage"]["output_tokens"].as_u64().unwrap() > 0);
        let delta = event(&events, "response.output_text.delta");
        assert_eq!(delta.get("logprobs").is_some(), full, "{version}");
        // The non-streamed object has created_at and model in both formats.
        let whole = post(
            &mut conn,
            "/v1/responses",
            json!({ "model": "toy", "input": "hi" }),
        )
        .json();
        assert!(whole["created_at"].is_i64() && whole["model"] == "toy");
        assert_eq!(whole.get("completed_at").is_some(), full, "{version}");
    }
}

#[test]
fn anthropic_message_delta_usage_gains_input_tokens_in_0_15_5() {
    let body = json!({ "model": "toy", "max_tokens": 16, "stream": true, "messages": [{ "role": "user", "content": "hi" }] });
    for (version, input) in [("0.14.0", false), ("0.15.4", false), ("0.15.5", true)] {
        let emulator = start(config(version, &["toy"]));
        let mut conn = Connection::open(&emulator);
        let events = sse_data(&post(&mut conn, "/v1/messages", body.clone()));
        let usage = &event(&events, "message_delta")["usage"];
        assert!(usage["output_tokens"].is_u64());
        assert_eq!(usage.get("input_tokens").is_some(), input, "{version}");
    }
}

#[test]
fn routes_by_version_405_for_wrong_methods_404_for_slashes() {
    let old = start(config("0.13.0", &["toy", "me/toy"]));
    let mut conn = Connection::open(&old);
    for path in ["/v1/responses", "/v1/messages"] {
        let reply = post(&mut conn, path, json!({ "model": "toy" }));
        assert_eq!(reply.status, 404, "{path} on 0.13.0");
    }
    // gin, HandleMethodNotAllowed = true (server/routes.go).
    let wrong = conn.send("GET", "/api/chat", &[], None);
    assert_eq!(
        (wrong.status, wrong.text().as_str()),
        (405, "405 method not allowed")
    );
    assert_eq!(conn.send("POST", "/api/tags", &[], Some("{}")).status, 405);
    assert_eq!(conn.send("GET", "/v1/models/toy", &[], None).status, 200);
    // `/v1/models/:model` is one segment: a namespaced name never matches.
    let slashed = conn.send("GET", "/v1/models/me/toy", &[], None);
    assert_eq!(
        (slashed.status, slashed.text().as_str()),
        (404, "404 page not found")
    );
    let missing = conn.send("GET", "/v1/models/nope", &[], None);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["type"], "not_found_error");
}

#[test]
fn no_models_is_data_null() {
    let emulator = start(config("0.32.15", &[]));
    let mut conn = Connection::open(&emulator);
    let list = conn.send("GET", "/v1/models", &[], None).json();
    assert_eq!(list, json!({ "object": "list", "data": null }));
    let tags = conn.send("GET", "/api/tags", &[], None).json();
    assert_eq!(tags, json!({ "models": [] }));
}

#[test]
fn embeddings_on_all_three_endpoints() {
    let emulator = start(config("0.32.15", &["toy", "nomic-embed-text"]));
    let mut conn = Connection::open(&emulator);
    let embed = post(
        &mut conn,
        "/api/embed",
        json!({ "model": "nomic-embed-text", "input": ["a", "b"] }),
    )
    .json();
    let vectors = embed["embeddings"].as_array().unwrap();
    assert_eq!(vectors.len(), 2);
    assert_eq!(vectors[0].as_array().unwrap().len(), 64);
    assert_ne!(vectors[0], vectors[1]);
    let norm: f64 = vectors[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap().powi(2))
        .sum();
    assert!((norm - 1.0).abs() < 1e-3, "unit vectors, got {norm}");

    let old = post(
        &mut conn,
        "/api/embeddings",
        json!({ "model": "nomic-embed-text", "prompt": "a" }),
    )
    .json();
    assert_eq!(old["embedding"], vectors[0]);

    let openai = post(
        &mut conn,
        "/v1/embeddings",
        json!({ "model": "nomic-embed-text", "input": "a" }),
    )
    .json();
    assert_eq!(openai["object"], "list");
    assert_eq!(openai["data"][0]["embedding"], vectors[0]);
    let b64 = post(
        &mut conn,
        "/v1/embeddings",
        json!({ "model": "nomic-embed-text", "input": "a", "encoding_format": "base64" }),
    )
    .json();
    assert_eq!(b64["data"][0]["embedding"].as_str().unwrap().len(), 344);
    let missing = post(
        &mut conn,
        "/api/embed",
        json!({ "model": "nope", "input": "a" }),
    );
    assert_eq!(
        (missing.status, missing.json()["error"].clone()),
        (404, json!("model 'nope' not found"))
    );
}

#[test]
fn model_kinds_report_and_enforce_their_capabilities() {
    let emulator = start(config(
        "0.32.15",
        &[
            "toy",
            "nomic-embed-text",
            "qwen3:8b",
            "llava",
            "gpt-oss:120b-cloud",
            "llama2",
        ],
    ));
    let mut conn = Connection::open(&emulator);
    let caps = |conn: &mut Connection, model: &str| {
        post(conn, "/api/show", json!({ "model": model })).json()["capabilities"].clone()
    };
    assert_eq!(
        caps(&mut conn, "toy"),
        json!(["completion", "tools", "insert"])
    );
    assert_eq!(caps(&mut conn, "nomic-embed-text"), json!(["embedding"]));
    assert_eq!(
        caps(&mut conn, "qwen3:8b"),
        json!(["completion", "tools", "thinking"])
    );
    assert_eq!(
        caps(&mut conn, "llava"),
        json!(["completion", "tools", "insert", "vision"])
    );
    let tags = conn.send("GET", "/api/tags", &[], None).json();
    let cloud = &tags["models"][4];
    assert_eq!(cloud["remote_host"], "https://ollama.com:443");

    let chat = |model: &str| json!({ "model": model, "stream": false, "messages": [{ "role": "user", "content": "hi" }] });
    let refused = post(&mut conn, "/api/chat", chat("nomic-embed-text"));
    assert_eq!(
        (refused.status, refused.json()["error"].clone()),
        (400, json!("\"nomic-embed-text\" does not support chat"))
    );
    let openai = post(&mut conn, "/v1/chat/completions", chat("nomic-embed-text"));
    assert_eq!(openai.status, 400);
    assert_eq!(openai.json()["error"]["type"], "invalid_request_error");
    assert_eq!(
        post(&mut conn, "/api/chat", chat("gpt-oss:120b-cloud")).status,
        502
    );
    let mut with_tools = chat("llama2");
    with_tools["tools"] =
        json!([{ "type": "function", "function": { "name": "f", "parameters": {} } }]);
    let no_tools = post(&mut conn, "/api/chat", with_tools);
    assert_eq!(no_tools.status, 400);
    assert!(
        no_tools.json()["error"]
            .as_str()
            .unwrap()
            .ends_with("does not support tools")
    );
    let mut think = chat("toy");
    think["think"] = json!(true);
    assert_eq!(post(&mut conn, "/api/chat", think).status, 400);
}

#[test]
fn a_thinking_model_spends_the_budget_unless_told_not_to_think() {
    let emulator = start(config("0.32.15", &["qwen3:8b"]));
    let mut conn = Connection::open(&emulator);
    let mut body = json!({
        "model": "qwen3:8b", "stream": false, "options": { "num_predict": 32 },
        "messages": [{ "role": "user", "content": "hi" }],
    });
    let starved = post(&mut conn, "/api/chat", body.clone()).json();
    assert_eq!(starved["message"]["content"], "");
    assert!(!starved["message"]["thinking"].as_str().unwrap().is_empty());
    assert_eq!(starved["done_reason"], "length");
    body["think"] = json!(false);
    let answered = post(&mut conn, "/api/chat", body).json();
    assert!(!answered["message"]["content"].as_str().unwrap().is_empty());
    assert!(answered["message"].get("thinking").is_none());

    let openai = json!({ "model": "qwen3:8b", "max_tokens": 32, "messages": [{ "role": "user", "content": "hi" }] });
    let starved = post(&mut conn, "/v1/chat/completions", openai.clone()).json();
    assert_eq!(starved["choices"][0]["message"]["content"], "");
    assert!(starved["choices"][0]["message"]["reasoning"].is_string());
    let mut none = openai;
    none["reasoning_effort"] = json!("none");
    let answered = post(&mut conn, "/v1/chat/completions", none).json();
    assert_ne!(answered["choices"][0]["message"]["content"], "");
}

#[test]
fn v1_completions_fill_in_the_middle_with_suffix() {
    let emulator = start(config("0.32.15", &["toy", "qwen3:8b"]));
    let mut conn = Connection::open(&emulator);
    let body = json!({ "model": "toy", "prompt": "def add(a, b):", "suffix": "    return c", "max_tokens": 8 });
    let completion = post(&mut conn, "/v1/completions", body.clone()).json();
    assert_eq!(completion["object"], "text_completion");
    assert!(
        !completion["choices"][0]["text"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(completion["choices"][0]["finish_reason"], "length");
    // The suffix is part of the prompt the model sees.
    let mut without = body.clone();
    without.as_object_mut().unwrap().remove("suffix");
    let plain = post(&mut conn, "/v1/completions", without).json();
    assert_ne!(
        plain["choices"][0]["text"],
        completion["choices"][0]["text"]
    );
    // A model without `insert` refuses a suffix.
    let mut qwen = body;
    qwen["model"] = json!("qwen3:8b");
    let refused = post(&mut conn, "/v1/completions", qwen);
    assert_eq!(refused.status, 400);
    assert!(
        refused.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not support insert")
    );
    let streamed = post(
        &mut conn,
        "/v1/completions",
        json!({ "model": "toy", "prompt": "x", "stream": true }),
    );
    let chunks = sse_data(&streamed);
    assert!(chunks.len() > 2);
    assert!(streamed.text().ends_with("data: [DONE]\n\n"));
}

#[test]
fn a_thinking_model_streams_a_reasoning_item_first_in_responses() {
    let emulator = start(config("0.32.15", &["qwen3:8b"]));
    let mut conn = Connection::open(&emulator);
    let body = json!({ "model": "qwen3:8b", "input": "hi", "stream": true });
    let events = sse_data(&post(&mut conn, "/v1/responses", body.clone()));
    let first_added = event(&events, "response.output_item.added");
    assert_eq!(first_added["item"]["type"], "reasoning");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "response.reasoning_summary_text.delta")
    );
    assert_eq!(
        event(&events, "response.output_text.delta")["output_index"],
        1
    );
    let output = &event(&events, "response.completed")["response"]["output"];
    assert_eq!(output[0]["type"], "reasoning");
    assert_eq!(output[1]["type"], "message");
    // reasoning.effort "none" is read from 0.22.0 (openai/responses.go@v0.22.0).
    let mut quiet = body;
    quiet["reasoning"] = json!({ "effort": "none" });
    for (version, thinks) in [("0.21.2", true), ("0.22.0", false)] {
        let emulator = start(config(version, &["qwen3:8b"]));
        let mut conn = Connection::open(&emulator);
        let events = sse_data(&post(&mut conn, "/v1/responses", quiet.clone()));
        let reasoned = events
            .iter()
            .any(|e| e["type"] == "response.reasoning_summary_text.delta");
        assert_eq!(reasoned, thinks, "{version}");
    }
}
