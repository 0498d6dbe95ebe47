//! The real [`Network`]: TCP connects that tell a reset, an ICMP error and silence
//! apart, the Ollama API with short timeouts, and one full-size streamed request.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};

use super::{Connect, ModelFacts, Network, server_address};

/// Doctor's network, with one budget per request.
#[derive(Debug, Clone, Copy)]
pub struct OllamaNetwork {
    pub timeout: Duration,
}

impl Network for OllamaNetwork {
    fn connect(&self, address: SocketAddrV4, timeout: Duration) -> Connect {
        match TcpStream::connect_timeout(&SocketAddr::V4(address), timeout) {
            Ok(_) => Connect::Connected,
            Err(e) => classify(&e),
        }
    }

    fn version(&self, url: &str) -> Result<String, String> {
        self.client(url)?
            .version()
            .map(|v| v.version)
            .map_err(|e| e.to_string())
    }

    fn models(&self, url: &str) -> Result<Vec<ModelFacts>, String> {
        let client = self.client(url)?;
        let tags = client.tags().map_err(|e| e.to_string())?;
        Ok(tags
            .models
            .into_iter()
            .map(|m| {
                // Older servers have no capabilities in /api/show: unknown, not "none".
                let shown = client.show(&m.name).ok();
                let context_length = shown.as_ref().and_then(|s| {
                    s.model_info
                        .iter()
                        .find(|(k, _)| k.ends_with(".context_length"))
                        .and_then(|(_, v)| v.as_u64())
                });
                ModelFacts {
                    name: m.name,
                    capabilities: shown.and_then(|s| s.capabilities).unwrap_or_default(),
                    context_length,
                }
            })
            .collect())
    }

    fn full_size(&self, url: &str, model: &str) -> Result<(), String> {
        let address =
            server_address(url).ok_or_else(|| format!("`{url}` is not http://IP:PORT"))?;
        // 16 KiB of prompt: a dozen full-size packets, each as large as the path allows.
        let filler = "sovereign doctor checks the path MTU. ".repeat(420);
        let body = serde_json::json!({
            "model": model,
            "messages": [{"role": "user", "content": filler}],
            "stream": true,
            "options": {"num_predict": 64},
        })
        .to_string();
        let request = format!(
            "POST /api/chat HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let started = Instant::now();
        let mut stream = TcpStream::connect_timeout(&SocketAddr::V4(address), self.timeout)
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_write_timeout(Some(self.timeout));
        let _ = stream.set_read_timeout(Some(self.timeout));
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("sending a {} B request stalled: {e}", request.len()))?;
        let mut answer = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            if started.elapsed() > self.timeout * 3 {
                return Err("the streamed answer did not finish".into());
            }
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
                Err(e) => {
                    return Err(format!(
                        "a {} B request got {} B of answer, then nothing for {} s: {e}",
                        request.len(),
                        answer.len(),
                        self.timeout.as_secs()
                    ));
                }
            }
        }
        let text = String::from_utf8_lossy(&answer);
        if !text.starts_with("HTTP/1.1 200") && !text.starts_with("HTTP/1.0 200") {
            return Err(format!(
                "the chat request was answered with {}",
                text.lines().next().unwrap_or("nothing")
            ));
        }
        if !text.contains("\"done\":true") {
            return Err("the streamed answer ended before its last line".into());
        }
        Ok(())
    }
}

impl OllamaNetwork {
    fn client(&self, url: &str) -> Result<sovereign_ollama::Client, String> {
        Ok(sovereign_ollama::Client::new(url)
            .map_err(|e| e.to_string())?
            .with_timeout(self.timeout))
    }
}

/// A connect error as the layer that caused it: a reset (refused), an ICMP error
/// (host/net unreachable, which is how Linux reports admin-prohibited), or silence.
fn classify(e: &std::io::Error) -> Connect {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => Connect::Refused,
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Connect::Silence,
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => {
            Connect::Unreachable(e.to_string())
        }
        _ => match e.raw_os_error() {
            // EHOSTUNREACH, ENETUNREACH on Linux; EACCES/EPERM: a local firewall.
            Some(113) | Some(101) => Connect::Unreachable(e.to_string()),
            Some(13) | Some(1) => Connect::Unreachable(format!("blocked on this machine: {e}")),
            _ => Connect::Other(e.to_string()),
        },
    }
}
