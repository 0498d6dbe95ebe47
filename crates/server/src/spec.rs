//! What the service must look like, derived from the deployment alone.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sovereign_model::{BindMode, Deployment};

/// Our own LaunchAgent label; the bash original used `com.ollama`, the app uses
/// `com.ollama.ollama` and Homebrew `homebrew.mxcl.ollama`, so none of them collide.
pub const LAUNCHD_LABEL: &str = "com.sovereign.ollama";
/// The systemd unit sovereign installs when the machine has no `ollama.service`.
pub const SYSTEMD_UNIT: &str = "sovereign-ollama.service";
/// The unit Ollama's own Linux installer writes.
pub const UPSTREAM_UNIT: &str = "ollama.service";
pub const SYSTEMD_DIR: &str = "/etc/systemd/system";
/// Sorts after the `override.conf` that `systemctl edit` and Ollama's docs create, so
/// our `Environment=` lines win over theirs.
pub const DROPIN_NAME: &str = "sovereign.conf";
/// Where the unit mode keeps models when there is no `ollama` user (DynamicUser).
pub const STATE_DIRECTORY: &str = "sovereign-ollama";

/// Where `ollama` lives on a Mac, in the order we prefer them: Homebrew's CLI is
/// upgraded by `brew upgrade` without touching our plist; the app bundle's copy is
/// the fallback.
pub const MACOS_OLLAMA_CANDIDATES: [&str; 3] = [
    "/opt/homebrew/bin/ollama",
    "/usr/local/bin/ollama",
    "/Applications/Ollama.app/Contents/Resources/ollama",
];
/// Where Ollama's Linux installer (and distribution packages) put the binary.
pub const LINUX_OLLAMA_CANDIDATES: [&str; 2] = ["/usr/local/bin/ollama", "/usr/bin/ollama"];

/// The service sovereign wants running, independent of the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceSpec {
    pub server_address: Ipv4Addr,
    pub port: u16,
    pub bind: BindMode,
    /// `OLLAMA_*` variables in the order they are written.
    pub environment: Vec<(String, String)>,
    pub keep_alive: String,
    pub models: Vec<String>,
}

impl ServiceSpec {
    pub fn from_deployment(deployment: &Deployment) -> ServiceSpec {
        let server = &deployment.server;
        let ollama = &deployment.ollama;
        let listen = match server.bind {
            BindMode::LanIp => server.address,
            BindMode::All => Ipv4Addr::UNSPECIFIED,
        };
        let environment = vec![
            (
                "OLLAMA_HOST".to_string(),
                format!("{listen}:{}", server.api_port),
            ),
            (
                "OLLAMA_CONTEXT_LENGTH".to_string(),
                ollama.context_length.to_string(),
            ),
            ("OLLAMA_KEEP_ALIVE".to_string(), ollama.keep_alive.clone()),
            (
                "OLLAMA_NUM_PARALLEL".to_string(),
                ollama.num_parallel.to_string(),
            ),
            (
                "OLLAMA_FLASH_ATTENTION".to_string(),
                if ollama.flash_attention { "1" } else { "0" }.to_string(),
            ),
        ];
        ServiceSpec {
            server_address: server.address,
            port: server.api_port,
            bind: server.bind,
            environment,
            keep_alive: ollama.keep_alive.clone(),
            models: ollama.models.clone(),
        }
    }

    /// The address Ollama is told to listen on.
    pub fn listen_address(&self) -> Ipv4Addr {
        match self.bind {
            BindMode::LanIp => self.server_address,
            BindMode::All => Ipv4Addr::UNSPECIFIED,
        }
    }

    /// Where clients (and `status`) reach the API: the LAN address even when bound to all.
    pub fn api_url(&self) -> String {
        format!("http://{}:{}", self.server_address, self.port)
    }

    /// The address the service must wait for at boot; none when bound to all.
    pub fn wait_for_address(&self) -> Option<Ipv4Addr> {
        match self.bind {
            BindMode::LanIp => Some(self.server_address),
            BindMode::All => None,
        }
    }
}

/// Paths of the macOS installation for one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MacPaths {
    pub plist: PathBuf,
    pub log_dir: PathBuf,
    pub stdout_log: PathBuf,
    pub stderr_log: PathBuf,
    /// The bash original's agent, a conflict when present.
    pub legacy_plist: PathBuf,
    pub homebrew_plist: PathBuf,
}

impl MacPaths {
    pub fn for_home(home: &Path) -> MacPaths {
        let agents = home.join("Library/LaunchAgents");
        let log_dir = home.join("Library/Logs/sovereign");
        MacPaths {
            plist: agents.join(format!("{LAUNCHD_LABEL}.plist")),
            stdout_log: log_dir.join("ollama.out.log"),
            stderr_log: log_dir.join("ollama.err.log"),
            log_dir,
            legacy_plist: agents.join("com.ollama.plist"),
            homebrew_plist: agents.join("homebrew.mxcl.ollama.plist"),
        }
    }
}

/// Paths of the system-wide LaunchDaemon. Fixed, because launchd only reads system
/// jobs from `/Library/LaunchDaemons` and they belong to no user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaemonPaths {
    pub plist: PathBuf,
    pub log_dir: PathBuf,
    pub stdout_log: PathBuf,
    pub stderr_log: PathBuf,
    /// The rotation rule for the two logs.
    pub newsyslog: PathBuf,
    /// `/Library/Application Support/sovereign`, created when missing.
    pub support_dir: PathBuf,
    /// The service account's home: Ollama keeps its key pair under `$HOME/.ollama`.
    pub data_dir: PathBuf,
    /// `OLLAMA_MODELS`, owned by the service account.
    pub models_dir: PathBuf,
}

impl DaemonPaths {
    pub fn system() -> DaemonPaths {
        let log_dir = PathBuf::from("/Library/Logs/sovereign");
        let support_dir = PathBuf::from("/Library/Application Support/sovereign");
        let data_dir = support_dir.join("ollama");
        DaemonPaths {
            plist: PathBuf::from(format!("/Library/LaunchDaemons/{LAUNCHD_LABEL}.plist")),
            stdout_log: log_dir.join("ollama.out.log"),
            stderr_log: log_dir.join("ollama.err.log"),
            log_dir,
            newsyslog: PathBuf::from(format!("/etc/newsyslog.d/{LAUNCHD_LABEL}.conf")),
            models_dir: data_dir.join("models"),
            support_dir,
            data_dir,
        }
    }
}

/// Which systemd file sovereign owns on Linux.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LinuxLayout {
    /// Our own `sovereign-ollama.service`.
    Unit { path: PathBuf, unit: String },
    /// A drop-in that reconfigures an existing `ollama.service`.
    DropIn { path: PathBuf, unit: String },
}

impl LinuxLayout {
    pub fn unit() -> LinuxLayout {
        LinuxLayout::Unit {
            path: Path::new(SYSTEMD_DIR).join(SYSTEMD_UNIT),
            unit: SYSTEMD_UNIT.to_string(),
        }
    }

    pub fn drop_in() -> LinuxLayout {
        LinuxLayout::DropIn {
            path: Path::new(SYSTEMD_DIR)
                .join(format!("{UPSTREAM_UNIT}.d"))
                .join(DROPIN_NAME),
            unit: UPSTREAM_UNIT.to_string(),
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            LinuxLayout::Unit { path, .. } | LinuxLayout::DropIn { path, .. } => path,
        }
    }

    pub fn unit_name(&self) -> &str {
        match self {
            LinuxLayout::Unit { unit, .. } | LinuxLayout::DropIn { unit, .. } => unit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_all_listens_everywhere_but_status_still_uses_the_lan_address() {
        let mut deployment = Deployment::reference();
        deployment.server.bind = BindMode::All;
        let spec = ServiceSpec::from_deployment(&deployment);
        assert_eq!(spec.environment[0].1, "0.0.0.0:11434");
        assert_eq!(spec.api_url(), "http://192.168.250.20:11434");
        assert_eq!(spec.wait_for_address(), None);
    }

    #[test]
    fn lan_bind_uses_the_server_address() {
        let spec = ServiceSpec::from_deployment(&Deployment::reference());
        assert_eq!(
            spec.environment[0],
            ("OLLAMA_HOST".into(), "192.168.250.20:11434".into())
        );
        assert_eq!(
            spec.wait_for_address(),
            Some(Ipv4Addr::new(192, 168, 250, 20))
        );
    }
}
