//! Benchmark (reports figures, asserts nothing): a whole `sovereign check` run against
//! the in-process emulator, per-check time to first token, and plain request rates.
//!
//! `cargo bench -p sovereign-ollama`
//! Set `SOVEREIGN_BENCH_URL=http://HOST:PORT` (e.g. the emulator through the lab's
//! WireGuard tunnel) to also measure that target and print its TTFT against direct.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ollama_emulator::{Emulator, EmulatorConfig};
use sovereign_ollama::Client;
use sovereign_ollama::check::{self, CheckOptions, CheckReport};
use sovereign_ollama::types::native::GenerateRequest;

const RUNS: usize = 10;

fn main() {
    for delay_ms in [0u64, 5] {
        let emulator = Emulator::start(
            "127.0.0.1:0",
            EmulatorConfig {
                token_delay: Duration::from_millis(delay_ms),
                ..EmulatorConfig::default()
            },
        )
        .expect("emulator starts");
        println!("== emulator direct, token delay {delay_ms} ms ==");
        let direct = bench_check(&emulator.base_url());
        bench_requests(&emulator.base_url());
        if let Ok(url) = std::env::var("SOVEREIGN_BENCH_URL") {
            println!("== {url} ==");
            let other = bench_check(&url);
            compare_ttft(&direct, &other);
        }
        println!();
    }
}

/// Runs the whole check RUNS times; prints run durations and median TTFT per check.
fn bench_check(url: &str) -> BTreeMap<String, f64> {
    let options = CheckOptions {
        url: url.to_string(),
        ..CheckOptions::default()
    };
    let mut durations = Vec::new();
    let mut ttft: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..RUNS {
        let report: CheckReport = check::run(&options);
        if !report.passed() {
            println!("  (run had failures)\n{}", check::render_table(&report));
        }
        durations.push(report.duration_ms);
        for c in &report.checks {
            if let Some(t) = c.generation.as_ref().and_then(|g| g.ttft_ms) {
                ttft.entry(c.id.clone()).or_default().push(t);
            }
        }
    }
    let (min, median, max) = spread(&mut durations);
    println!(
        "  whole check run ({RUNS} runs): min {min:.1} ms, median {median:.1} ms, max {max:.1} ms"
    );
    let medians: BTreeMap<String, f64> = ttft
        .into_iter()
        .map(|(id, mut values)| (id, spread(&mut values).1))
        .collect();
    for (id, value) in &medians {
        println!("  TTFT median {id:<28} {value:>8.2} ms");
    }
    medians
}

/// Sequential keep-alive request rates through the library client.
fn bench_requests(url: &str) {
    let client = Client::new(url).expect("valid url");
    let n = 1000;
    let start = Instant::now();
    for _ in 0..n {
        client.version().expect("version");
    }
    let elapsed = start.elapsed();
    println!(
        "  {n} x GET /api/version: {:.0} req/s ({:.3} ms each)",
        n as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e3 / n as f64
    );
    let request = GenerateRequest {
        model: "toy".into(),
        prompt: "bench".into(),
        ..GenerateRequest::default()
    };
    let n = 200;
    let start = Instant::now();
    for _ in 0..n {
        client.generate(&request).expect("generate");
    }
    let elapsed = start.elapsed();
    println!(
        "  {n} x POST /api/generate (12 tokens): {:.0} req/s",
        n as f64 / elapsed.as_secs_f64()
    );
}

fn compare_ttft(direct: &BTreeMap<String, f64>, other: &BTreeMap<String, f64>) {
    for (id, d) in direct {
        if let Some(o) = other.get(id) {
            println!(
                "  TTFT {id:<28} direct {d:>8.2} ms, target {o:>8.2} ms, ratio {:.2}",
                o / d.max(1e-6)
            );
        }
    }
}

fn spread(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(|a, b| a.total_cmp(b));
    (
        values[0],
        values[values.len() / 2],
        values[values.len() - 1],
    )
}
