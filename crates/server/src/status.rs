//! `status`: what is really running, compared with what the deployment says.

use std::net::IpAddr;

use serde::Serialize;
use sovereign_model::BindMode;
use sovereign_ollama::Client;
use sovereign_ollama::version::{MESSAGES_SINCE, OllamaVersion, RESPONSES_SINCE};

use crate::parse::{ListenAddress, Listener};
use crate::power::PowerStatus;
use crate::service::ServiceState;
use crate::spec::ServiceSpec;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub service: ServiceState,
    /// `OLLAMA_HOST` as the deployment wants it.
    pub configured_bind: String,
    /// What really listens on the API port.
    pub listeners: Vec<Listener>,
    pub bind_matches: bool,
    pub api: ApiStatus,
    /// Loud: exposure on every network, or a loopback-only server.
    pub warnings: Vec<String>,
    /// What is running contradicts the deployment; `status` exits 1.
    pub problems: Vec<String>,
    /// macOS: the power settings and FileVault, as far as always-on cares.
    pub power: Option<PowerStatus>,
}

impl Status {
    pub fn consistent(&self) -> bool {
        self.problems.is_empty()
    }

    /// Adds the Mac's power settings. A setting that contradicts always-on is a
    /// warning, not a problem: the service runs, it just may not stay reachable.
    pub fn add_power(&mut self, power: PowerStatus) {
        self.warnings.extend(power.contradictions.iter().cloned());
        if power.filevault == Some(true) && self.service.runs_without_login {
            self.warnings
                .push(crate::power::filevault_note(power.filevault));
        }
        self.power = Some(power);
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ApiStatus {
    pub url: String,
    pub reachable: bool,
    pub error: Option<String>,
    pub version: Option<String>,
    pub families: Vec<ApiFamily>,
    pub loaded_models: Vec<LoadedModel>,
}

/// One API surface and whether this Ollama version serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiFamily {
    pub name: &'static str,
    pub path: &'static str,
    pub available: bool,
    /// The first release that serves it, when that matters.
    pub since: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadedModel {
    pub name: String,
    pub size_vram: u64,
    pub context_length: Option<u64>,
    pub expires_at: String,
}

/// Asks the running server for its version and loaded models.
pub fn probe_api(client: &Client) -> ApiStatus {
    let mut api = ApiStatus {
        url: client.base_url().to_string(),
        ..ApiStatus::default()
    };
    let version = match client.version() {
        Ok(version) => version.version,
        Err(error) => {
            api.error = Some(error.to_string());
            return api;
        }
    };
    api.reachable = true;
    api.families = api_families(&version);
    api.version = Some(version);
    match client.ps() {
        Ok(ps) => {
            api.loaded_models = ps
                .models
                .into_iter()
                .map(|m| LoadedModel {
                    name: m.name,
                    size_vram: m.size_vram,
                    context_length: m.context_length,
                    expires_at: m.expires_at,
                })
                .collect();
        }
        Err(error) => api.error = Some(format!("listing loaded models: {error}")),
    }
    api
}

/// Which API families a given Ollama version serves.
pub fn api_families(version: &str) -> Vec<ApiFamily> {
    let parsed = OllamaVersion::parse(version);
    let since = |minimum: &OllamaVersion| parsed.as_ref().is_some_and(|v| v >= minimum);
    vec![
        ApiFamily {
            name: "native",
            path: "/api/*",
            available: true,
            since: None,
        },
        ApiFamily {
            name: "openai-chat",
            path: "/v1/chat/completions",
            available: true,
            since: None,
        },
        ApiFamily {
            name: "openai-responses",
            path: "/v1/responses",
            available: since(&RESPONSES_SINCE),
            since: Some(RESPONSES_SINCE.to_string()),
        },
        ApiFamily {
            name: "anthropic-messages",
            path: "/v1/messages",
            available: since(&MESSAGES_SINCE),
            since: Some(MESSAGES_SINCE.to_string()),
        },
    ]
}

/// Compares the service, its sockets and its API with the deployment. Pure.
pub fn evaluate(
    spec: &ServiceSpec,
    context_length: u32,
    service: ServiceState,
    listeners: Vec<Listener>,
    api: ApiStatus,
) -> Status {
    let mut warnings = Vec::new();
    let mut problems = Vec::new();
    let configured_bind = format!("{}:{}", spec.listen_address(), spec.port);

    if !service.installed && !service.loaded {
        problems.push(format!(
            "{} is not installed; run `sovereign server install`",
            service.name
        ));
    } else if !service.loaded {
        problems.push(format!(
            "{} is installed but not loaded; run `sovereign server start`",
            service.name
        ));
    } else if !service.running {
        problems.push(format!(
            "{} is loaded but not running (state: {}); see `sovereign server logs`",
            service.name, service.state
        ));
    }
    if let Some(host) = service.environment.get("OLLAMA_HOST")
        && *host != configured_bind
    {
        problems.push(format!(
            "the installed service sets OLLAMA_HOST={host} but the deployment says {configured_bind}; \
             run `sovereign server install` again"
        ));
    }

    let mut bind_matches = !listeners.is_empty();
    if listeners.is_empty() {
        problems.push(format!("nothing listens on port {}", spec.port));
    }
    for listener in &listeners {
        if let (Some(pid), Some(ours)) = (listener.pid, service.pid)
            && pid != ours
        {
            problems.push(format!(
                "port {} belongs to another process: {listener}, not the service (pid {ours})",
                spec.port
            ));
            bind_matches = false;
        }
        match listener.address {
            ListenAddress::Any => {
                warnings.push(format!(
                    "!!! Ollama listens on {listener}: EVERY network this machine joins can use \
                     its unauthenticated API. Set server.bind = \"lan-ip\" unless that is intended."
                ));
                if spec.bind != BindMode::All {
                    bind_matches = false;
                    problems.push(format!(
                        "the deployment binds {configured_bind}, but Ollama listens on {listener}"
                    ));
                }
            }
            ListenAddress::Ip(ip) if ip.is_loopback() => {
                warnings.push(format!(
                    "!!! Ollama listens on {listener} (loopback only): no VPN peer can reach it. \
                     Usually OLLAMA_HOST is missing from the environment of whatever started it."
                ));
                bind_matches = false;
                problems.push(format!(
                    "the deployment binds {configured_bind}, but Ollama listens on {listener}"
                ));
            }
            ListenAddress::Ip(ip) => {
                let expected =
                    spec.bind == BindMode::LanIp && ip == IpAddr::V4(spec.server_address);
                if !expected {
                    bind_matches = false;
                    problems.push(format!(
                        "the deployment binds {configured_bind}, but Ollama listens on {listener}"
                    ));
                }
            }
        }
    }

    if api.reachable {
        for family in api.families.iter().filter(|f| !f.available) {
            warnings.push(format!(
                "Ollama {} does not serve {} (needs {} or later); upgrade Ollama",
                api.version.as_deref().unwrap_or("?"),
                family.path,
                family.since.as_deref().unwrap_or("?")
            ));
        }
        for model in &api.loaded_models {
            if let Some(loaded) = model.context_length
                && loaded < u64::from(context_length)
            {
                warnings.push(format!(
                    "{} is loaded with a {loaded}-token context, below the configured {context_length}",
                    model.name
                ));
            }
        }
    } else {
        problems.push(format!(
            "the API at {} does not answer: {}",
            api.url,
            api.error.as_deref().unwrap_or("no answer")
        ));
    }

    Status {
        service,
        configured_bind,
        listeners,
        bind_matches,
        api,
        warnings,
        problems,
        power: None,
    }
}
