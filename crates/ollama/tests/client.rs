//! The small client `sovereign server status/warm` uses, against the emulator and
//! against canned transports.

use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ollama_emulator::{Emulator, EmulatorConfig};
use sovereign_ollama::types::native::{GenerateRequest, KeepAlive};
use sovereign_ollama::{Client, Error, HttpRequest, HttpResponse, Transport, TransportError};

fn emulator() -> Emulator {
    Emulator::start("127.0.0.1:0", EmulatorConfig::default()).unwrap()
}

#[test]
fn status_calls_return_typed_answers() {
    let emulator = emulator();
    let client = Client::new(&emulator.base_url()).unwrap();
    assert_eq!(
        client.version().unwrap().version,
        ollama_emulator::DEFAULT_VERSION
    );
    let tags = client.tags().unwrap();
    assert_eq!(tags.models.len(), 1);
    assert_eq!(tags.models[0].name, "toy:latest");
    assert!(client.ps().unwrap().models.is_empty());
    assert_eq!(client.show("toy").unwrap().context_length(), Some(65536));
}

#[test]
fn warm_loads_the_model_for_ps() {
    let emulator = emulator();
    let client = Client::new(&emulator.base_url()).unwrap();
    let answer = client
        .warm("toy", KeepAlive::Duration("30m".into()))
        .unwrap();
    assert_eq!(answer.done_reason.as_deref(), Some("load"));
    let ps = client.ps().unwrap();
    assert_eq!(ps.models.len(), 1);
    assert_eq!(ps.models[0].name, "toy:latest");
    assert_eq!(ps.models[0].context_length, Some(65536));
    client.warm("toy", KeepAlive::Seconds(0)).unwrap();
    assert!(client.ps().unwrap().models.is_empty());
}

#[test]
fn generate_forces_a_single_answer() {
    let emulator = emulator();
    let client = Client::new(&emulator.base_url()).unwrap();
    let request = GenerateRequest {
        model: "toy".into(),
        prompt: "hi".into(),
        stream: true,
        ..GenerateRequest::default()
    };
    let answer = client.generate(&request).unwrap();
    assert!(answer.done);
    assert!(!answer.response.is_empty());
    assert!(answer.metrics.eval_count.unwrap() > 0);
}

#[test]
fn pull_reports_progress_as_it_arrives() {
    let emulator = emulator();
    let client = Client::new(&emulator.base_url()).unwrap();
    let mut statuses = Vec::new();
    client
        .pull("qwen3-coder:30b", |p| statuses.push(p.status.clone()))
        .unwrap();
    assert_eq!(
        statuses.first().map(String::as_str),
        Some("pulling manifest")
    );
    assert_eq!(statuses.last().map(String::as_str), Some("success"));
    assert!(
        client
            .tags()
            .unwrap()
            .models
            .iter()
            .any(|m| m.name == "qwen3-coder:30b")
    );
}

#[test]
fn unknown_models_surface_the_servers_message() {
    let emulator = emulator();
    let client = Client::new(&emulator.base_url()).unwrap();
    match client.show("ghost") {
        Err(Error::Status {
            status: 404, body, ..
        }) => assert!(body.contains("not found"), "{body}"),
        other => panic!("expected a 404, got {other:?}"),
    }
}

/// Answers every request with the same canned body and records what was asked.
struct Canned {
    status: u16,
    body: &'static str,
    seen: Mutex<Vec<HttpRequest>>,
}

impl Transport for Canned {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        self.seen.lock().unwrap().push(request);
        Ok(HttpResponse {
            status: self.status,
            content_type: Some("application/x-ndjson".into()),
            body: Box::new(Cursor::new(self.body.as_bytes())),
        })
    }
}

#[test]
fn a_pull_that_fails_mid_stream_is_an_error_with_the_servers_words() {
    let transport = Arc::new(Canned {
        status: 200,
        body: "{\"status\":\"pulling manifest\"}\n{\"error\":\"pull model manifest: file does not exist\"}\n",
        seen: Mutex::new(Vec::new()),
    });
    let client = Client::with_transport("10.10.10.1", transport.clone())
        .unwrap()
        .with_timeout(Duration::from_secs(7));
    let mut seen = 0;
    match client.pull("nope", |_| seen += 1) {
        Err(Error::StreamError { message, .. }) => {
            assert_eq!(message, "pull model manifest: file does not exist")
        }
        other => panic!("expected a stream error, got {other:?}"),
    }
    assert_eq!(seen, 1);
    let requests = transport.seen.lock().unwrap();
    assert_eq!(requests[0].url, "http://10.10.10.1:11434/api/pull");
    // A pull may take long: it is bounded by silence, not by total time.
    assert_eq!(
        (requests[0].timeout, requests[0].idle_timeout),
        (None, Some(Duration::from_secs(7)))
    );
}

#[test]
fn a_pull_stream_that_just_stops_is_not_a_success() {
    let transport = Arc::new(Canned {
        status: 200,
        body: "{\"status\":\"pulling manifest\"}\n",
        seen: Mutex::new(Vec::new()),
    });
    let client = Client::with_transport("h", transport).unwrap();
    assert!(matches!(
        client.pull("m", |_| {}),
        Err(Error::StreamEnded { .. })
    ));
}

#[test]
fn a_version_of_the_wrong_shape_is_a_decode_error() {
    let transport = Arc::new(Canned {
        status: 200,
        body: "{\"name\":\"ollama\"}",
        seen: Mutex::new(Vec::new()),
    });
    let client = Client::with_transport("h", transport).unwrap();
    match client.version() {
        Err(e @ Error::Decode { .. }) => {
            assert!(e.to_string().contains("missing field `version`"), "{e}")
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
}
