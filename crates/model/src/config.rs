//! The typed schema of `sovereign.toml`.
//!
//! Every section has defaults that reproduce the reference topology (DESIGN.md §2),
//! so a file only has to say what differs. Unknown keys are rejected: a typo must
//! never silently fall back to a default.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One deployment: the router, the VPN, the LAN, the AI server and its peers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    #[serde(default)]
    pub router: Router,
    pub wan: Wan,
    #[serde(default)]
    pub wireguard: WireGuard,
    #[serde(default)]
    pub lan: Lan,
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub ollama: Ollama,
    #[serde(default)]
    pub policy: Policy,
    /// Peers are managed by `sovereign peer`; they stay readable here. Revoked
    /// peers are kept as tombstones so their addresses are never handed out again.
    #[serde(default, rename = "peer", skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<Peer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RouterTarget {
    /// OpenWrt 23.05 or later (fw4 / nftables, netifd WireGuard).
    #[default]
    Openwrt,
    /// A plain Debian-like Linux router: one nftables table plus userspace or kernel WireGuard.
    Linux,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Router {
    pub target: RouterTarget,
}

impl Default for Router {
    fn default() -> Self {
        Self {
            target: RouterTarget::Openwrt,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wan {
    /// The router's WAN device (OpenWrt: the device behind network `wan`).
    #[serde(default = "defaults::wan_interface")]
    pub interface: String,
    /// The router's WAN address with its prefix, e.g. 192.168.2.90/24 behind an ISP router.
    #[serde(default = "defaults::wan_address")]
    pub address: Ipv4Net,
    /// The public host:port that peers dial. Required: it is the one thing sovereign
    /// cannot infer (the router may sit behind NAT).
    pub endpoint: Endpoint,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WireGuard {
    pub interface: String,
    pub listen_port: u16,
    pub subnet: Ipv4Net,
    /// The router's own address inside the VPN subnet.
    pub address: Ipv4Addr,
    /// Set explicitly: a wrong MTU stalls streamed responses inside the tunnel.
    pub mtu: u16,
    pub persistent_keepalive: u16,
    /// What a client routes into the tunnel. Empty means only the AI server's /32
    /// (a split tunnel); the firewall, not this list, is what enforces access.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub client_allowed_ips: Vec<Ipv4Net>,
}

impl Default for WireGuard {
    fn default() -> Self {
        Self {
            interface: "wg0".into(),
            listen_port: 51820,
            subnet: "10.10.10.0/24".parse().expect("static"),
            address: Ipv4Addr::new(10, 10, 10, 1),
            mtu: 1420,
            persistent_keepalive: 25,
            client_allowed_ips: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lan {
    pub subnet: Ipv4Net,
    pub router_address: Ipv4Addr,
    /// The router's LAN device (OpenWrt: `br-lan`, the device of network `lan`).
    pub interface: String,
}

impl Default for Lan {
    fn default() -> Self {
        Self {
            subnet: "192.168.250.0/24".parse().expect("static"),
            router_address: Ipv4Addr::new(192, 168, 250, 1),
            interface: "br-lan".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    #[default]
    Macos,
    Linux,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BindMode {
    /// Listen on the server's LAN address only.
    #[default]
    LanIp,
    /// Listen on 0.0.0.0: exposes the unauthenticated API on every network the
    /// machine joins, so it is opt-in and `plan` warns about it.
    All,
}

/// How the AI server is cut off from the rest of the LAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// The server has a router port of its own and its own firewall zone. The router
    /// holds a /32 route to it and answers ARP on both sides (proxy ARP), so the
    /// server keeps its LAN address while every packet to or from it is routed, and
    /// therefore filtered.
    #[default]
    DedicatedPort,
    /// The server shares the LAN bridge with everything else (the reference design
    /// as written). Traffic between the server and other LAN devices never reaches
    /// the router, so "server -> LAN: deny" cannot be enforced.
    Shared,
}

/// How Ollama is supervised on a Mac.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MacService {
    /// A LaunchAgent in the user's GUI session: installed without root, but it runs only
    /// while that user is logged in.
    #[default]
    Agent,
    /// A system LaunchDaemon under a dedicated service account: starts at boot with
    /// nobody logged in and comes back after a power cut. Installing it needs root.
    Daemon,
}

impl MacService {
    pub fn is_agent(&self) -> bool {
        *self == MacService::Agent
    }
}

/// The account a LaunchDaemon runs Ollama as. The leading underscore is Apple's
/// convention for service accounts (`_www`, `_postgres`), which also keeps it off the
/// login window.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "_ollama";

fn is_default_service_account(name: &str) -> bool {
    name == DEFAULT_SERVICE_ACCOUNT
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    pub address: Ipv4Addr,
    pub api_port: u16,
    pub ssh_port: u16,
    pub platform: Platform,
    pub bind: BindMode,
    pub isolation: Isolation,
    /// The router port the server plugs into in `dedicated-port` mode.
    pub router_port: String,
    /// When set, the router pins the server's address with a static DHCP lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// macOS only: `agent` (default) or `daemon`. Skipped when default, so files written
    /// before this key existed render unchanged.
    #[serde(skip_serializing_if = "MacService::is_agent")]
    pub service: MacService,
    /// The account the daemon runs as (`service = "daemon"` only).
    #[serde(skip_serializing_if = "is_default_service_account")]
    pub service_account: String,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            address: Ipv4Addr::new(192, 168, 250, 20),
            api_port: 11434,
            ssh_port: 22,
            platform: Platform::Macos,
            bind: BindMode::LanIp,
            isolation: Isolation::DedicatedPort,
            router_port: "lan4".into(),
            mac: None,
            service: MacService::Agent,
            service_account: DEFAULT_SERVICE_ACCOUNT.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ollama {
    /// Coding agents need at least 64k tokens; Ollama's own default is far lower.
    pub context_length: u32,
    /// Go duration string or seconds, passed through as OLLAMA_KEEP_ALIVE.
    pub keep_alive: String,
    pub num_parallel: u16,
    pub flash_attention: bool,
    /// Models to pull and keep resident (`sovereign server warm`).
    pub models: Vec<String>,
}

impl Default for Ollama {
    fn default() -> Self {
        Self {
            context_length: 65536,
            keep_alive: "24h".into(),
            num_parallel: 1,
            flash_attention: true,
            models: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// VPN peers may also reach the server's SSH port.
    pub vpn_ssh: bool,
    /// LAN hosts with full access to the server (all ports).
    pub admin_hosts: Vec<Ipv4Addr>,
    /// Other LAN devices may use the server's API port.
    pub lan_api: bool,
    /// Off means air-gapped: the server reaches nothing beyond the router's DNS.
    #[serde(default = "defaults::yes")]
    pub server_internet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PeerStatus {
    #[default]
    Active,
    /// Cut off for a while (`peer disable`): keys and address kept, absent from the
    /// router's WireGuard config until `peer enable`.
    Disabled,
    Revoked,
}

impl PeerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerStatus::Active => "active",
            PeerStatus::Disabled => "disabled",
            PeerStatus::Revoked => "revoked",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub name: String,
    pub address: Ipv4Addr,
    pub public_key: String,
    /// RFC 3339 timestamp.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created: String,
    #[serde(default)]
    pub status: PeerStatus,
    /// Whether a preshared key for this peer lives in the state directory.
    #[serde(default = "defaults::yes")]
    pub preshared_key: bool,
    /// RFC 3339 timestamp of the last change of state (add, disable, enable, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub changed: String,
    /// RFC 3339 timestamp after which the router no longer accepts the peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

impl Peer {
    /// On the router (unless expired): neither disabled nor revoked.
    pub fn is_active(&self) -> bool {
        self.status == PeerStatus::Active
    }

    /// When the peer expires; `None` when it never does (validation refuses a
    /// timestamp that does not parse).
    pub fn expires_at(&self) -> Option<std::time::SystemTime> {
        humantime::parse_rfc3339(self.expires.as_deref()?).ok()
    }

    /// Whether the peer has expired at `now`.
    pub fn is_expired(&self, now: std::time::SystemTime) -> bool {
        self.expires_at().is_some_and(|at| at <= now)
    }

    /// On the router at `now`: active and not expired.
    pub fn is_live(&self, now: std::time::SystemTime) -> bool {
        self.is_active() && !self.is_expired(now)
    }

    /// Its keys are kept and its configs are out there: active or disabled.
    pub fn holds_keys(&self) -> bool {
        self.status != PeerStatus::Revoked
    }
}

/// `host:port` that peers dial. The host is a DNS name or an IP literal
/// (IPv6 in brackets, as WireGuard expects).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => write!(f, "[{}]:{}", self.host, self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("`{s}` opens `[` without closing it"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| format!("`{s}` has no :port after the IPv6 address"))?;
            (host, port)
        } else {
            s.rsplit_once(':').ok_or_else(|| {
                format!("`{s}` has no port; write host:port, e.g. vpn.example.com:51820")
            })?
        };
        if host.is_empty() {
            return Err(format!("`{s}` has an empty host"));
        }
        let valid_name = host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
        if host.parse::<IpAddr>().is_err() && !valid_name {
            return Err(format!("`{host}` is neither an IP address nor a DNS name"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{port}` is not a port number (1-65535)"))?;
        if port == 0 {
            return Err("port 0 cannot be dialled".into());
        }
        Ok(Endpoint {
            host: host.to_string(),
            port,
        })
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An Ethernet MAC address, kept in the canonical lower-case colon form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        let bad =
            || format!("`{s}` is not a MAC address; write six hex pairs, e.g. 3c:22:fb:12:34:56");
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut bytes = [0u8; 6];
        for (byte, part) in bytes.iter_mut().zip(parts) {
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        Ok(MacAddr(bytes))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

mod defaults {
    use ipnet::Ipv4Net;

    pub fn wan_interface() -> String {
        "wan".into()
    }

    pub fn wan_address() -> Ipv4Net {
        "192.168.2.90/24".parse().expect("static")
    }

    pub fn yes() -> bool {
        true
    }
}

impl Deployment {
    /// The reference deployment of DESIGN.md §2, used by `plan` when no file exists.
    pub fn reference() -> Self {
        let wan_address = defaults::wan_address();
        Deployment {
            router: Router::default(),
            wan: Wan {
                interface: defaults::wan_interface(),
                address: wan_address,
                endpoint: Endpoint {
                    host: wan_address.addr().to_string(),
                    port: WireGuard::default().listen_port,
                },
            },
            wireguard: WireGuard::default(),
            lan: Lan::default(),
            server: Server::default(),
            ollama: Ollama::default(),
            policy: Policy {
                server_internet: true,
                ..Policy::default()
            },
            peers: Vec::new(),
        }
    }

    pub fn active_peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.iter().filter(|p| p.is_active())
    }

    /// The deployment as the router should see it at `now`: active peers whose
    /// expiry has passed count as disabled. A view for rendering and auditing;
    /// never written back, so `peer extend` can still bring such a peer back.
    pub fn as_of(&self, now: std::time::SystemTime) -> Deployment {
        let mut d = self.clone();
        for peer in &mut d.peers {
            if peer.is_active() && peer.is_expired(now) {
                peer.status = PeerStatus::Disabled;
            }
        }
        d
    }

    /// Active and disabled peers: the ones whose keys are kept.
    pub fn keyed_peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.iter().filter(|p| p.holds_keys())
    }

    pub fn peer(&self, name: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.name == name)
    }

    /// What a client routes into the tunnel.
    pub fn client_allowed_ips(&self) -> Vec<Ipv4Net> {
        if self.wireguard.client_allowed_ips.is_empty() {
            vec![Ipv4Net::new(self.server.address, 32).expect("/32 is valid")]
        } else {
            self.wireguard.client_allowed_ips.clone()
        }
    }

    /// The API base URLs clients use. Anthropic clients take no `/v1` (they append it).
    pub fn api_urls(&self) -> ApiUrls {
        let base = format!("http://{}:{}", self.server.address, self.server.api_port);
        ApiUrls {
            ollama: base.clone(),
            openai: format!("{base}/v1"),
            anthropic: base,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiUrls {
    pub ollama: String,
    pub openai: String,
    pub anthropic: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_parses_names_ipv4_and_bracketed_ipv6() {
        let e: Endpoint = "vpn.example.com:51820".parse().unwrap();
        assert_eq!((e.host.as_str(), e.port), ("vpn.example.com", 51820));
        let e: Endpoint = "[2001:db8::1]:51820".parse().unwrap();
        assert_eq!(e.host, "2001:db8::1");
        assert_eq!(e.to_string(), "[2001:db8::1]:51820");
        assert!("vpn.example.com".parse::<Endpoint>().is_err());
        assert!("vpn..example:1".parse::<Endpoint>().is_err());
        assert!("host:0".parse::<Endpoint>().is_err());
        assert!("host:70000".parse::<Endpoint>().is_err());
    }

    #[test]
    fn the_default_service_is_not_written_so_old_files_render_unchanged() {
        let text = toml::to_string(&Deployment::reference().server).unwrap();
        assert!(!text.contains("service"), "{text}");
        let mut server = Deployment::reference().server;
        server.service = MacService::Daemon;
        server.service_account = "_ai".into();
        let text = toml::to_string(&server).unwrap();
        assert!(text.contains("service = \"daemon\""), "{text}");
        assert!(text.contains("service_account = \"_ai\""), "{text}");
        let back: Server = toml::from_str(&text).unwrap();
        assert_eq!(back, server);
        let old: Server = toml::from_str("address = \"192.168.250.20\"").unwrap();
        assert_eq!(old.service, MacService::Agent);
        assert_eq!(old.service_account, DEFAULT_SERVICE_ACCOUNT);
    }

    #[test]
    fn mac_parses_colon_and_dash_forms() {
        let m: MacAddr = "3C-22-FB-12-34-56".parse().unwrap();
        assert_eq!(m.to_string(), "3c:22:fb:12:34:56");
        assert!("3c:22:fb:12:34".parse::<MacAddr>().is_err());
        assert!("3c:22:fb:12:34:zz".parse::<MacAddr>().is_err());
    }
}

/// The names the deployment file and the README use (`openwrt`, `macos`,
/// `dedicated-port`), for every message a person reads: never the Rust names.
macro_rules! file_names {
    ($($kind:ty { $($variant:ident => $name:literal),+ $(,)? })+) => {$(
        impl $kind {
            pub fn name(self) -> &'static str {
                match self { $(Self::$variant => $name),+ }
            }
        }
        impl std::fmt::Display for $kind {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
        impl std::str::FromStr for $kind {
            type Err = String;
            /// The file's name, in any case; the error lists the choices.
            fn from_str(s: &str) -> Result<Self, String> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($name => Ok(Self::$variant),)+
                    _ => Err(format!(
                        "`{s}` is not one of: {}",
                        [$($name),+].join(", ")
                    )),
                }
            }
        }
    )+};
}

file_names! {
    RouterTarget { Openwrt => "openwrt", Linux => "linux" }
    Platform { Macos => "macos", Linux => "linux" }
    BindMode { LanIp => "lan-ip", All => "all" }
    Isolation { DedicatedPort => "dedicated-port", Shared => "shared" }
}

#[cfg(test)]
mod file_name_tests {
    use super::*;

    /// The display names are exactly the file's (serde) names.
    #[test]
    fn display_names_are_the_file_names() {
        fn serde_name<T: Serialize>(value: T) -> String {
            serde_json::to_value(value)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        }
        for t in [RouterTarget::Openwrt, RouterTarget::Linux] {
            assert_eq!(t.to_string(), serde_name(t));
        }
        for p in [Platform::Macos, Platform::Linux] {
            assert_eq!(p.to_string(), serde_name(p));
        }
        for b in [BindMode::LanIp, BindMode::All] {
            assert_eq!(b.to_string(), serde_name(b));
        }
        for i in [Isolation::DedicatedPort, Isolation::Shared] {
            assert_eq!(i.to_string(), serde_name(i));
            assert_eq!(i.to_string().parse::<Isolation>(), Ok(i));
        }
        assert_eq!("OpenWrt".parse::<RouterTarget>(), Ok(RouterTarget::Openwrt));
        let refused = "pfsense".parse::<RouterTarget>().unwrap_err();
        assert_eq!(refused, "`pfsense` is not one of: openwrt, linux");
    }
}
