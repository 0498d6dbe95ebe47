//! Fault injection: tiny raw TCP servers that hang, close mid-stream or send garbage.
//! The check must come back with failures that say what happened, never hang.
//! (No timing assertions: bounded time is shown by the test finishing at all.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use sovereign_ollama::check::{self, CheckOptions, CheckReport, Outcome};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// Accepts, reads the request, never answers.
    Hang,
    /// Even `/api/version` hangs.
    HangEverything,
    /// Sends headers and half a line, then closes.
    CloseMidStream,
    /// Answers with bytes that are not HTTP.
    NotHttp,
    /// Valid HTTP, body that is not what the endpoint returns.
    WrongShape,
    /// Well-formed answers that are wrong in content: zero vectors, a short
    /// context, no tool calls, the wrong object type (the newer checks' faults).
    WrongContent,
}

struct FakeServer {
    url: String,
    stop: Arc<AtomicBool>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn fake(fault: Fault) -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let stop = Arc::clone(&stop_flag);
            thread::spawn(move || serve(stream, fault, &stop));
        }
    });
    FakeServer { url, stop }
}

fn serve(mut stream: TcpStream, fault: Fault, stop: &AtomicBool) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let Some((path, body)) = read_request(&mut reader) else {
            return;
        };
        if fault == Fault::WrongContent {
            let (content_type, answer) = wrong_content(&path, &body);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{answer}",
                answer.len()
            );
            continue;
        }
        let healthy = match path.as_str() {
            "/api/version" => Some(r#"{"version":"0.14.0"}"#),
            "/api/tags" => Some(
                r#"{"models":[{"name":"m:latest","model":"m:latest","modified_at":"2026-01-01T00:00:00Z","size":1,"digest":"d","details":{}}]}"#,
            ),
            _ => None,
        };
        if let (Some(body), false) = (healthy, fault == Fault::HangEverything) {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            continue;
        }
        match fault {
            Fault::Hang | Fault::HangEverything => {
                while !stop.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(50));
                }
                return;
            }
            Fault::CloseMidStream => {
                let content_type = if path.starts_with("/v1/") {
                    "text/event-stream"
                } else {
                    "application/x-ndjson"
                };
                let piece = if path.starts_with("/v1/") {
                    "data: {\"id\":\"x\",\"obj"
                } else {
                    "{\"model\":\"m\",\"created_at\":\"t\",\"resp"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{piece}\r\n",
                    piece.len()
                );
                let _ = stream.flush();
                return; // dropping the socket closes it mid-stream
            }
            Fault::NotHttp => {
                let _ = stream.write_all(b"\x00\x01\x02 SSH-2.0-definitely-not-http\r\n\r\n");
                return;
            }
            Fault::WrongContent => unreachable!("answered above"),
            Fault::WrongShape => {
                let body = "<html><body>502 Bad Gateway</body></html>";
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
        }
    }
}

/// Plausible, well-formed answers that each break one promise.
fn wrong_content(path: &str, body: &str) -> (&'static str, String) {
    const JSON: &str = "application/json";
    let request: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let stream = request["stream"]
        .as_bool()
        .unwrap_or(path.starts_with("/api/"));
    let tags = r#"{"models":[{"name":"m:latest","model":"m:latest","modified_at":"2026-01-01T00:00:00Z","size":1,"digest":"d","details":{}},{"name":"e:latest","model":"e:latest","modified_at":"2026-01-01T00:00:00Z","size":1,"digest":"d","details":{}}]}"#;
    let answer = match path {
        "/api/version" => r#"{"version":"0.32.15"}"#.to_string(),
        "/api/tags" => tags.to_string(),
        "/api/show" if request["model"] == "e:latest" => {
            r#"{"details":{},"capabilities":["embedding"]}"#.to_string()
        }
        "/api/show" => r#"{"details":{},"capabilities":["completion","tools","insert"]}"#.to_string(),
        "/api/ps" => r#"{"models":[{"name":"m:latest","model":"m:latest","size":1,"digest":"d","details":{},"expires_at":"2026-01-01T00:00:00Z","size_vram":1,"context_length":2048}]}"#.to_string(),
        "/api/embed" => r#"{"model":"e:latest","embeddings":[[0,0],[0,0]]}"#.to_string(),
        "/api/embeddings" => r#"{"embedding":[]}"#.to_string(),
        "/v1/embeddings" => r#"{"object":"list","data":[{"object":"embedding","embedding":[0.5,0.5],"index":0}],"model":"e"}"#.to_string(),
        // Claims to load when asked to unload.
        "/api/generate" if request["prompt"] == "" => r#"{"model":"m","created_at":"t","response":"","done":true,"done_reason":"load"}"#.to_string(),
        "/v1/completions" => r#"{"id":"x","object":"chat.completion","model":"m","choices":[]}"#.to_string(),
        "/v1/chat/completions" if stream => {
            let chunk = r#"{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"no tools here"},"finish_reason":"stop"}]}"#;
            return ("text/event-stream", format!("data: {chunk}\n\ndata: [DONE]\n\n"));
        }
        // Plain text, whatever was asked: not JSON, no tool calls.
        "/v1/chat/completions" => r#"{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"plain words"},"finish_reason":"stop"}]}"#.to_string(),
        "/api/chat" if !stream => r#"{"model":"m","created_at":"t","message":{"role":"assistant","content":"plain words"},"done":true,"done_reason":"stop"}"#.to_string(),
        _ => r#"{"error":"not emulated"}"#.to_string(),
    };
    (JSON, answer)
}

/// Reads one request head and body; returns the path and body.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, String)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, String::from_utf8_lossy(&body).into_owned()))
}

fn run_against(server: &FakeServer, request_timeout: Duration, overall: Duration) -> CheckReport {
    let report = check::run(&CheckOptions {
        url: server.url.clone(),
        request_timeout,
        overall_timeout: overall,
        ..CheckOptions::default()
    });
    // Shown only when a test fails (or with --nocapture).
    eprintln!("{}", check::render_table(&report));
    report
}

fn reason<'r>(report: &'r CheckReport, id: &str) -> &'r str {
    match &report.checks.iter().find(|c| c.id == id).unwrap().outcome {
        Outcome::Fail { reason } => reason,
        other => panic!(
            "{id}: expected a failure, got {other:?}\n{}",
            check::render_table(report)
        ),
    }
}

#[test]
fn a_hanging_server_times_out_and_the_deadline_stops_the_run() {
    let server = fake(Fault::Hang);
    let report = run_against(&server, Duration::from_millis(300), Duration::from_secs(2));
    assert!(!report.passed());
    assert_eq!(
        report
            .checks
            .iter()
            .find(|c| c.id == "health")
            .unwrap()
            .outcome,
        Outcome::Pass
    );
    assert!(
        reason(&report, "native.show").contains("timed out"),
        "{}",
        reason(&report, "native.show")
    );
    // Later checks never start once the overall budget is spent.
    assert!(
        reason(&report, "errors.origin").contains("deadline"),
        "{}",
        reason(&report, "errors.origin")
    );
    assert_eq!(report.summary.passed, 2, "{}", check::render_table(&report));
}

#[test]
fn a_server_that_hangs_from_the_start_fails_health_only() {
    let server = fake(Fault::HangEverything);
    let report = run_against(&server, Duration::from_millis(300), Duration::from_secs(5));
    assert!(reason(&report, "health").contains("timed out"));
    assert_eq!(report.summary.failed, 1);
}

#[test]
fn a_stream_cut_off_mid_line_is_reported_as_closed() {
    let server = fake(Fault::CloseMidStream);
    let report = run_against(&server, Duration::from_secs(5), Duration::from_secs(30));
    assert!(!report.passed());
    for id in [
        "native.generate.stream",
        "native.chat.stream",
        "openai.chat.stream",
        "anthropic.messages.stream",
    ] {
        let why = reason(&report, id);
        assert!(
            why.contains("closed") || why.contains("ended"),
            "{id}: {why}"
        );
    }
}

#[test]
fn bytes_that_are_not_http_fail_cleanly() {
    let server = fake(Fault::NotHttp);
    let report = run_against(&server, Duration::from_secs(5), Duration::from_secs(30));
    assert!(!report.passed());
    assert_eq!(report.summary.passed, 2, "{}", check::render_table(&report));
    let why = reason(&report, "native.chat");
    assert!(!why.is_empty());
}

#[test]
fn a_body_of_the_wrong_shape_fails_as_a_decode_error() {
    let server = fake(Fault::WrongShape);
    let report = run_against(&server, Duration::from_secs(5), Duration::from_secs(30));
    assert!(!report.passed());
    assert!(
        reason(&report, "native.show").contains("not a valid"),
        "{}",
        reason(&report, "native.show")
    );
    assert!(
        reason(&report, "openai.chat.stream").contains("Content-Type"),
        "{}",
        reason(&report, "openai.chat.stream")
    );
    assert!(
        reason(&report, "errors.origin").contains("HTTP 200"),
        "{}",
        reason(&report, "errors.origin")
    );
}

/// Set in the child process that runs inside a network namespace of its own.
const SILENT_CHILD: &str = "SOVEREIGN_CHECK_SILENT_CHILD";
/// An address routed into the namespace's loopback, where nothing owns it: SYNs
/// vanish without a reset, like a WireGuard tunnel whose peer is gone.
const SILENT_ADDRESS: &str = "10.213.0.2:11434";

#[test]
fn a_silent_address_fails_within_seconds_naming_the_tunnel() {
    let probe = std::process::Command::new("unshare")
        .args(["-rn", "true"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("skipped: unshare -rn (a user and network namespace) is not available here");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let script = "ip link set lo up && ip route add 10.213.0.0/24 dev lo && exec \"$0\" --exact silent_address_child --nocapture --test-threads=1";
    let mut child = std::process::Command::new("unshare")
        .args(["-rn", "sh", "-c", script])
        .arg(&exe)
        .env(SILENT_CHILD, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Generous bound so a regression fails instead of hanging the suite.
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("check against a silent address ran over 30 s");
        }
        thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(status.success(), "{text}");
    assert!(
        text.contains("1 passed"),
        "the child test did not run: {text}"
    );
}

/// The half of the test above that runs inside the namespace.
#[test]
fn silent_address_child() {
    if std::env::var_os(SILENT_CHILD).is_none() {
        return;
    }
    let started = std::time::Instant::now();
    let report = check::run(&CheckOptions {
        url: format!("http://{SILENT_ADDRESS}"),
        ..CheckOptions::default()
    });
    let elapsed = started.elapsed();
    let why = reason(&report, "health");
    assert!(
        why.contains("no answer from 10.213.0.2:11434") && why.contains("sovereign doctor"),
        "{why}"
    );
    assert_eq!(report.summary.failed, 1, "{}", check::render_table(&report));
    // A figure, not an assertion: HEALTH_TIMEOUT is 3 s, the parent bounds the run
    // at 30 s so it cannot hang.
    eprintln!("silent address: check finished in {elapsed:?}");
}

#[test]
fn wrong_content_fails_the_newer_checks_by_name() {
    let server = fake(Fault::WrongContent);
    let report = run_against(&server, Duration::from_secs(5), Duration::from_secs(30));
    assert_eq!(report.model.as_deref(), Some("m:latest"));
    for (id, expected) in [
        ("native.context", "OLLAMA_CONTEXT_LENGTH"),
        ("native.chat.schema", "not JSON"),
        ("native.embed", "all zeros"),
        ("native.embeddings", "empty"),
        ("openai.embeddings", "1 vector(s) for 2 input(s)"),
        ("openai.chat.schema", "not JSON"),
        ("openai.chat.tools.stream", "no chunk carried tool_calls"),
        ("openai.completions.suffix", "text_completion"),
        ("native.keep_alive", "expected \"unload\""),
    ] {
        let why = reason(&report, id);
        assert!(why.contains(expected), "{id}: {why}");
    }
}
