//! Benchmarks that report, never assert: the API through the tunnel against the
//! API reached directly from the LAN side, as p50/p99 over many samples, plus bulk
//! TCP throughput, and the tunnel/direct ratios.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use serde::Serialize;

use sovereign_ollama::check::{CheckOptions, CheckReport};

use crate::http::Connection;
use crate::topology::Role;
use crate::{Lab, LabError, netns};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Samples per latency metric (after a short warm-up).
    pub samples: usize,
    /// Seconds per bulk transfer (each direction, each path); 0 skips them.
    pub bulk_seconds: f64,
    /// Whole `sovereign check` runs per path; 0 skips them.
    pub check_runs: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            samples: 1000,
            bulk_seconds: 2.0,
            check_runs: 5,
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub samples: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub min_us: f64,
    pub max_us: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathBench {
    /// `tunnel` or `direct`.
    pub path: String,
    /// Who measured, e.g. "VPN client v1 (10.10.10.2)".
    pub from: String,
    pub target: String,
    pub connect: Stats,
    pub request_new_connection: Stats,
    pub request_keep_alive: Stats,
    pub first_token_streamed_chat: Stats,
    /// Client to server, Mbit/s (None when skipped).
    pub bulk_upload_mbit_s: Option<f64>,
    /// Server to client, Mbit/s.
    pub bulk_download_mbit_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ratio {
    pub metric: String,
    /// Tunnel divided by direct: how many times slower (latency) or, for
    /// throughput, direct divided by tunnel.
    pub p50: f64,
    pub p99: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    pub lab: String,
    pub wireguard: String,
    pub model: String,
    pub tunnel: PathBench,
    pub direct: PathBench,
    pub ratios: Vec<Ratio>,
    /// The conformance check (`sovereign check`) through the tunnel and directly.
    pub check: Option<CheckBench>,
}

/// Whole `sovereign check` runs against the lab's API server on one path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckPath {
    pub runs: usize,
    /// Runs in which every check passed.
    pub passed_runs: usize,
    /// The whole run, as the check reports it.
    pub duration: Stats,
    /// Time to first token of every streamed generation of every run.
    pub first_token: Stats,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckBench {
    pub tunnel: CheckPath,
    pub direct: CheckPath,
    /// Tunnel divided by direct.
    pub duration_ratio: Ratio,
    pub first_token_ratio: Ratio,
}

/// Measure both paths. The bulk phase stops the API server for a moment (the
/// tunnel may reach only the API port) and starts it again.
pub fn bench(lab: &mut Lab, options: &BenchOptions) -> Result<BenchReport, LabError> {
    let topology = lab.topology().clone();
    let d = &topology.deployment;
    let target = SocketAddrV4::new(d.server.address, d.server.api_port);
    let client = topology
        .clients()
        .next()
        .ok_or_else(|| {
            LabError::Unsupported("the tunnel bench needs a VPN peer (--peers 1 or more)".into())
        })?
        .clone();
    // The direct path: the nearest LAN-side vantage the policy lets use the API.
    let (direct_node, direct_label) = if let Some(admin) = topology.first(Role::LanAdmin) {
        (
            admin.clone(),
            format!("LAN admin host {} ({})", admin.key, admin.address),
        )
    } else if d.policy.lan_api {
        let dev = topology.first(Role::LanDevice).expect("LAN device");
        (
            dev.clone(),
            format!("LAN device {} ({})", dev.key, dev.address),
        )
    } else {
        let rtr = topology.router();
        (
            rtr.clone(),
            format!(
                "the router itself ({}): the policy lets no LAN device use the API",
                d.lan.router_address
            ),
        )
    };
    let model = netns::run_in(&client.netns, move || first_model(target))?.map_err(|e| {
        LabError::Command {
            command: format!("GET http://{target}/api/tags"),
            detail: e.to_string(),
        }
    })?;
    let tunnel_address = client.tunnel.as_ref().expect("tunnel").address;
    let mut tunnel = measure(
        "tunnel",
        format!("VPN client {} ({tunnel_address})", client.key),
        &client.netns,
        target,
        &model,
        options.samples,
    )?;
    let mut direct = measure(
        "direct",
        direct_label,
        &direct_node.netns,
        target,
        &model,
        options.samples,
    )?;
    if options.bulk_seconds > 0.0 {
        let seconds = options.bulk_seconds;
        lab.stop_api()?;
        let server_netns = topology.first(Role::Server).expect("server").netns.clone();
        let outcome = (|| -> Result<(), LabError> {
            for (path, netns) in [
                (&mut tunnel, &client.netns),
                (&mut direct, &direct_node.netns),
            ] {
                path.bulk_upload_mbit_s = Some(blast(&server_netns, netns, target, seconds, true)?);
                path.bulk_download_mbit_s =
                    Some(blast(&server_netns, netns, target, seconds, false)?);
            }
            Ok(())
        })();
        let restarted = lab.start_api();
        outcome?;
        restarted?;
    }
    let ratio = |metric: &str, t: &Stats, d: &Stats| Ratio {
        metric: metric.to_string(),
        p50: round2(t.p50_us / d.p50_us.max(0.001)),
        p99: round2(t.p99_us / d.p99_us.max(0.001)),
    };
    let mut ratios = vec![
        ratio("connect", &tunnel.connect, &direct.connect),
        ratio(
            "request_new_connection",
            &tunnel.request_new_connection,
            &direct.request_new_connection,
        ),
        ratio(
            "request_keep_alive",
            &tunnel.request_keep_alive,
            &direct.request_keep_alive,
        ),
        ratio(
            "first_token_streamed_chat",
            &tunnel.first_token_streamed_chat,
            &direct.first_token_streamed_chat,
        ),
    ];
    for (metric, t, dd) in [
        (
            "bulk_upload (direct/tunnel)",
            tunnel.bulk_upload_mbit_s,
            direct.bulk_upload_mbit_s,
        ),
        (
            "bulk_download (direct/tunnel)",
            tunnel.bulk_download_mbit_s,
            direct.bulk_download_mbit_s,
        ),
    ] {
        if let (Some(t), Some(dd)) = (t, dd) {
            let r = round2(dd / t.max(0.001));
            ratios.push(Ratio {
                metric: metric.to_string(),
                p50: r,
                p99: r,
            });
        }
    }
    let check = if options.check_runs > 0 {
        let tunnel = check_path(&client.netns, target, options.check_runs)?;
        let direct = check_path(&direct_node.netns, target, options.check_runs)?;
        Some(CheckBench {
            duration_ratio: ratio("check_duration", &tunnel.duration, &direct.duration),
            first_token_ratio: ratio(
                "check_first_token",
                &tunnel.first_token,
                &direct.first_token,
            ),
            tunnel,
            direct,
        })
    } else {
        None
    };
    Ok(BenchReport {
        lab: lab.name().to_string(),
        wireguard: "wireguard-go (userspace)".into(),
        model,
        tunnel,
        direct,
        ratios,
        check,
    })
}

/// The check's options for the lab's API server: patient enough for a loaded
/// two-core machine, bounded so a broken path fails instead of hanging.
pub fn check_options(target: SocketAddrV4) -> CheckOptions {
    CheckOptions {
        url: format!("http://{target}"),
        request_timeout: Duration::from_secs(30),
        overall_timeout: Duration::from_secs(120),
        ..CheckOptions::default()
    }
}

/// One whole `sovereign check` run (the conformance engine) from inside `netns`.
pub fn run_check(netns: &str, target: SocketAddrV4) -> Result<CheckReport, LabError> {
    let options = check_options(target);
    netns::run_in(netns, move || sovereign_ollama::check::run(&options))
}

fn check_path(netns: &str, target: SocketAddrV4, runs: usize) -> Result<CheckPath, LabError> {
    let mut durations = Vec::new();
    let mut first_tokens = Vec::new();
    let mut passed_runs = 0;
    for _ in 0..runs {
        let report = run_check(netns, target)?;
        passed_runs += usize::from(report.passed());
        durations.push(Duration::from_secs_f64(report.duration_ms / 1000.0));
        first_tokens.extend(
            report
                .checks
                .iter()
                .filter_map(|c| c.generation.as_ref()?.ttft_ms)
                .map(|ms| Duration::from_secs_f64(ms / 1000.0)),
        );
    }
    Ok(CheckPath {
        runs,
        passed_runs,
        duration: stats(&mut durations),
        first_token: stats(&mut first_tokens),
    })
}

fn measure(
    path: &str,
    from: String,
    netns: &str,
    target: SocketAddrV4,
    model: &str,
    samples: usize,
) -> Result<PathBench, LabError> {
    let model = model.to_string();
    let results = netns::run_in(netns, move || -> io::Result<[Stats; 4]> {
        Ok([
            sample(samples, || connect_once(target))?,
            sample(samples, || request_new_connection(target))?,
            {
                let mut connection = Connection::new(connect(target)?)?;
                sample(samples, || request_on(&mut connection, target))?
            },
            {
                let mut connection = Connection::new(connect(target)?)?;
                sample(samples, || first_token(&mut connection, target, &model))?
            },
        ])
    })?
    .map_err(|e| LabError::Command {
        command: format!("bench {path} to {target}"),
        detail: e.to_string(),
    })?;
    let [
        connect,
        request_new_connection,
        request_keep_alive,
        first_token_streamed_chat,
    ] = results;
    Ok(PathBench {
        path: path.to_string(),
        from,
        target: target.to_string(),
        connect,
        request_new_connection,
        request_keep_alive,
        first_token_streamed_chat,
        bulk_upload_mbit_s: None,
        bulk_download_mbit_s: None,
    })
}

const WARM_UP: usize = 20;

/// Time `samples` runs of `once` after a warm-up; `once` returns the measured span.
fn sample(samples: usize, mut once: impl FnMut() -> io::Result<Duration>) -> io::Result<Stats> {
    for _ in 0..WARM_UP {
        once()?;
    }
    let mut spans: Vec<Duration> = Vec::with_capacity(samples);
    for _ in 0..samples {
        spans.push(once()?);
    }
    Ok(stats(&mut spans))
}

pub fn stats(spans: &mut [Duration]) -> Stats {
    spans.sort();
    let us = |d: Duration| round2(d.as_secs_f64() * 1e6);
    let at = |q: f64| {
        if spans.is_empty() {
            return 0.0;
        }
        // Nearest rank.
        let rank = ((q * spans.len() as f64).ceil() as usize).clamp(1, spans.len());
        us(spans[rank - 1])
    };
    Stats {
        samples: spans.len(),
        p50_us: at(0.50),
        p99_us: at(0.99),
        min_us: spans.first().map_or(0.0, |d| us(*d)),
        max_us: spans.last().map_or(0.0, |d| us(*d)),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn connect(target: SocketAddrV4) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&target.into(), Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(stream)
}

/// Close with RST (SO_LINGER 0) so thousands of samples leave no TIME_WAIT behind.
fn abort(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on an open socket with a correctly sized value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn connect_once(target: SocketAddrV4) -> io::Result<Duration> {
    let started = Instant::now();
    let stream = connect(target)?;
    let span = started.elapsed();
    abort(stream);
    Ok(span)
}

fn request_new_connection(target: SocketAddrV4) -> io::Result<Duration> {
    let started = Instant::now();
    let stream = connect(target)?;
    let mut connection = Connection::new(stream.try_clone()?)?;
    connection.send("GET", "/api/version", &target.to_string(), None, false)?;
    let response = connection.read_response()?;
    let span = started.elapsed();
    abort(stream);
    check(response.status)?;
    Ok(span)
}

fn request_on(connection: &mut Connection, target: SocketAddrV4) -> io::Result<Duration> {
    let started = Instant::now();
    connection.send("GET", "/api/version", &target.to_string(), None, false)?;
    let response = connection.read_response()?;
    let span = started.elapsed();
    check(response.status)?;
    Ok(span)
}

/// Time from sending a streamed chat completion to the first content token; the
/// rest of the stream is read so the connection can carry the next request.
fn first_token(
    connection: &mut Connection,
    target: SocketAddrV4,
    model: &str,
) -> io::Result<Duration> {
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "Say hello."}],
        "stream": true,
        "max_tokens": 16,
    })
    .to_string();
    let started = Instant::now();
    connection.send(
        "POST",
        "/v1/chat/completions",
        &target.to_string(),
        Some(&body),
        false,
    )?;
    let (status, framing) = connection.read_head()?;
    check(status)?;
    if framing != crate::http::Framing::Chunked {
        return Err(io::Error::other("the streamed response is not chunked"));
    }
    let mut first = None;
    let mut pending = String::new();
    while let Some(chunk) = connection.read_chunk()? {
        if first.is_some() {
            continue;
        }
        pending.push_str(&String::from_utf8_lossy(&chunk));
        if has_content_token(&pending) {
            first = Some(started.elapsed());
        }
    }
    first.ok_or_else(|| io::Error::other("the stream carried no content token"))
}

/// An SSE `data:` event of a chat completion chunk with non-empty content.
pub fn has_content_token(events: &str) -> bool {
    events
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .any(|data| {
            serde_json::from_str::<serde_json::Value>(data.trim())
                .ok()
                .and_then(|v| {
                    v["choices"][0]["delta"]["content"]
                        .as_str()
                        .map(|c| !c.is_empty())
                })
                .unwrap_or(false)
        })
}

fn check(status: u16) -> io::Result<()> {
    if status == 200 {
        return Ok(());
    }
    Err(io::Error::other(format!("HTTP {status}")))
}

/// The first installed model (`/api/tags`), for the chat benchmark.
fn first_model(target: SocketAddrV4) -> io::Result<String> {
    let response = crate::http::get(target, "/api/tags", Duration::from_secs(5))?;
    check(response.status)?;
    let value: serde_json::Value =
        serde_json::from_str(&response.body).map_err(io::Error::other)?;
    value["models"][0]["name"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| io::Error::other("the server lists no models"))
}

/// A plain TCP blast on the API port for `seconds`: `upload` sends from the
/// client, otherwise the server sends. Returns the receiver's Mbit/s.
fn blast(
    server_netns: &str,
    client_netns: &str,
    target: SocketAddrV4,
    seconds: f64,
    upload: bool,
) -> Result<f64, LabError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let duration = Duration::from_secs_f64(seconds);
    let server = netns::spawn_in(server_netns, move || -> io::Result<f64> {
        let listener = TcpListener::bind(target)?;
        let _ = ready_tx.send(());
        let (stream, _) = listener.accept()?;
        if upload {
            receive(stream)
        } else {
            send(stream, duration).map(|_| 0.0)
        }
    });
    if ready_rx.recv_timeout(Duration::from_secs(5)).is_err() {
        let detail = match netns::join(server)? {
            Err(e) => e.to_string(),
            Ok(_) => "it stopped without listening".into(),
        };
        return Err(LabError::Command {
            command: format!("bulk sink on {target}"),
            detail,
        });
    }
    let client = netns::spawn_in(client_netns, move || -> io::Result<f64> {
        let stream = connect(target)?;
        stream.set_read_timeout(Some(duration + Duration::from_secs(10)))?;
        if upload {
            send(stream, duration).map(|_| 0.0)
        } else {
            receive(stream)
        }
    });
    let failure = |e: io::Error| LabError::Command {
        command: format!("bulk transfer to {target}"),
        detail: e.to_string(),
    };
    let client = netns::join(client)?.map_err(failure)?;
    let server = netns::join(server)?.map_err(failure)?;
    Ok(round2(if upload { server } else { client }))
}

fn send(mut stream: TcpStream, duration: Duration) -> io::Result<()> {
    let buffer = vec![0x5au8; 128 * 1024];
    let started = Instant::now();
    while started.elapsed() < duration {
        stream.write_all(&buffer)?;
    }
    stream.shutdown(std::net::Shutdown::Write)
}

fn receive(mut stream: TcpStream) -> io::Result<f64> {
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let mut started = None;
    loop {
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        started.get_or_insert_with(Instant::now);
        total += n as u64;
    }
    let seconds = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    Ok(if seconds > 0.0 {
        total as f64 * 8.0 / seconds / 1e6
    } else {
        0.0
    })
}

/// The report as text.
pub fn render_text(report: &BenchReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "lab {}: API at {} ({}), model {}",
        report.lab, report.tunnel.target, report.wireguard, report.model
    );
    let _ = writeln!(out, "  tunnel: from {}", report.tunnel.from);
    let _ = writeln!(out, "  direct: from {}", report.direct.from);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  {:<28} {:>14} {:>14} {:>14} {:>14} {:>8} {:>8}",
        "metric (us)", "tunnel p50", "tunnel p99", "direct p50", "direct p99", "x p50", "x p99"
    );
    let rows = [
        (
            "TCP connect",
            &report.tunnel.connect,
            &report.direct.connect,
        ),
        (
            "request, new connection",
            &report.tunnel.request_new_connection,
            &report.direct.request_new_connection,
        ),
        (
            "request, keep-alive",
            &report.tunnel.request_keep_alive,
            &report.direct.request_keep_alive,
        ),
        (
            "first token, streamed chat",
            &report.tunnel.first_token_streamed_chat,
            &report.direct.first_token_streamed_chat,
        ),
    ];
    for ((label, t, d), ratio) in rows.iter().zip(&report.ratios) {
        let _ = writeln!(
            out,
            "  {label:<28} {:>14.1} {:>14.1} {:>14.1} {:>14.1} {:>8.2} {:>8.2}",
            t.p50_us, t.p99_us, d.p50_us, d.p99_us, ratio.p50, ratio.p99
        );
    }
    let _ = writeln!(
        out,
        "  ({} samples each after {WARM_UP} warm-up; x = tunnel / direct)",
        report.tunnel.connect.samples
    );
    if let Some(check) = &report.check {
        let ms = |us: f64| us / 1000.0;
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  {:<28} {:>14} {:>14} {:>14} {:>14} {:>8} {:>8}",
            "sovereign check (ms)",
            "tunnel p50",
            "tunnel p99",
            "direct p50",
            "direct p99",
            "x p50",
            "x p99"
        );
        for (label, t, d, r) in [
            (
                "whole run",
                &check.tunnel.duration,
                &check.direct.duration,
                &check.duration_ratio,
            ),
            (
                "first token, generations",
                &check.tunnel.first_token,
                &check.direct.first_token,
                &check.first_token_ratio,
            ),
        ] {
            let _ = writeln!(
                out,
                "  {label:<28} {:>14.1} {:>14.1} {:>14.1} {:>14.1} {:>8.2} {:>8.2}",
                ms(t.p50_us),
                ms(t.p99_us),
                ms(d.p50_us),
                ms(d.p99_us),
                r.p50,
                r.p99
            );
        }
        let _ = writeln!(
            out,
            "  ({} runs per path; all checks passed in {} of them through the tunnel, {} directly; \
             first token over {} and {} streamed generations)",
            check.tunnel.runs,
            check.tunnel.passed_runs,
            check.direct.passed_runs,
            check.tunnel.first_token.samples,
            check.direct.first_token.samples
        );
    }
    if let (Some(tu), Some(td), Some(du), Some(dd)) = (
        report.tunnel.bulk_upload_mbit_s,
        report.tunnel.bulk_download_mbit_s,
        report.direct.bulk_upload_mbit_s,
        report.direct.bulk_download_mbit_s,
    ) {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  bulk TCP (Mbit/s)   tunnel upload {tu:.0}, download {td:.0}; direct upload {du:.0}, download {dd:.0}"
        );
        let _ = writeln!(
            out,
            "                      direct/tunnel: upload {:.1}x, download {:.1}x",
            du / tu.max(0.001),
            dd / td.max(0.001)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut spans: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        let s = stats(&mut spans);
        assert_eq!(
            (s.p50_us, s.p99_us, s.min_us, s.max_us, s.samples),
            (50.0, 99.0, 1.0, 100.0, 100)
        );
    }

    #[test]
    fn content_token_detection_skips_empty_deltas() {
        let empty =
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
        let token = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n";
        assert!(!has_content_token(empty));
        assert!(has_content_token(&format!("{empty}{token}")));
        assert!(!has_content_token("data: [DONE]\n\n"));
    }
}
