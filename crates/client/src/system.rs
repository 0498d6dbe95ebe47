//! The seams to the outside world: processes and the Ollama server.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::Command;
use std::time::Duration;

/// What a finished process left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `systemctl`, `wg`, `wg-quick`. Tests substitute a recorder.
pub trait CommandRunner {
    fn run(&self, argv: &[String]) -> std::io::Result<CommandOutput>;
}

/// The real processes.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

impl CommandRunner for SystemRunner {
    fn run(&self, argv: &[String]) -> std::io::Result<CommandOutput> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| std::io::Error::other("empty command"))?;
        let output = Command::new(program).args(args).output()?;
        Ok(CommandOutput {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// What setup and status ask the server.
pub trait ServerProbe {
    /// `/api/version`, or why it could not be had.
    fn version(&self, base_url: &str) -> Result<String, String>;
    /// The installed models' names.
    fn models(&self, base_url: &str) -> Result<Vec<String>, String>;
}

/// Talks to Ollama with a short timeout: a TCP connect first (so an absent tunnel
/// fails in seconds with a clear reason), then the API call.
#[derive(Debug, Clone, Copy)]
pub struct OllamaProbe {
    pub timeout: Duration,
}

impl Default for OllamaProbe {
    fn default() -> Self {
        OllamaProbe {
            timeout: Duration::from_secs(3),
        }
    }
}

impl OllamaProbe {
    fn client(&self, base_url: &str) -> Result<sovereign_ollama::Client, String> {
        let client = sovereign_ollama::Client::new(base_url).map_err(|e| e.to_string())?;
        let authority = client
            .base_url()
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let addresses: Vec<SocketAddr> = authority
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {authority}: {e}"))?
            .collect();
        let mut last = format!("{authority} has no address");
        for address in addresses {
            match TcpStream::connect_timeout(&address, self.timeout) {
                Ok(_) => return Ok(client.with_timeout(self.timeout)),
                Err(e) => last = format!("cannot connect to {address}: {e}"),
            }
        }
        Err(last)
    }
}

impl ServerProbe for OllamaProbe {
    fn version(&self, base_url: &str) -> Result<String, String> {
        let client = self.client(base_url)?;
        client
            .version()
            .map(|v| v.version)
            .map_err(|e| e.to_string())
    }

    fn models(&self, base_url: &str) -> Result<Vec<String>, String> {
        let client = self.client(base_url)?;
        let tags = client.tags().map_err(|e| e.to_string())?;
        Ok(tags.models.into_iter().map(|m| m.name).collect())
    }
}
