//! Parsers for what the service managers and socket tools print. Each takes the
//! captured text and returns data; none of them runs anything.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

/// One job as `launchctl print gui/<uid>/<label>` describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LaunchdJob {
    /// `running`, `not running`, `spawn scheduled`, ...
    pub state: String,
    pub pid: Option<u32>,
    /// Launches since the job was loaded.
    pub runs: Option<u32>,
    /// `None` while it has never exited.
    pub last_exit_code: Option<i32>,
    pub path: Option<String>,
    pub program: Option<String>,
    /// The `environment` block launchd passes to the job.
    pub environment: BTreeMap<String, String>,
}

/// Reads the top level of a `launchctl print` service dump. Nested blocks are
/// skipped except `environment`, which shows what the job really got.
pub fn launchctl_print(text: &str) -> LaunchdJob {
    let mut job = LaunchdJob::default();
    let mut depth = 0usize;
    let mut block = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.ends_with('{') {
            if depth == 1 {
                block = trimmed
                    .trim_end_matches('{')
                    .trim_end()
                    .trim_end_matches('=')
                    .trim()
                    .to_string();
            }
            depth += 1;
            continue;
        }
        if trimmed == "}" {
            depth = depth.saturating_sub(1);
            continue;
        }
        if depth == 2 && block == "environment" {
            if let Some((name, value)) = trimmed.split_once(" => ") {
                job.environment.insert(name.to_string(), value.to_string());
            }
            continue;
        }
        if depth != 1 {
            continue;
        }
        let Some((key, value)) = trimmed.split_once(" = ") else {
            continue;
        };
        match key {
            "state" => job.state = value.to_string(),
            "pid" => job.pid = value.parse().ok(),
            "runs" => job.runs = value.parse().ok(),
            "last exit code" => job.last_exit_code = value.parse().ok(),
            "path" => job.path = Some(value.to_string()),
            "program" => job.program = Some(value.to_string()),
            _ => {}
        }
    }
    job
}

/// Where a socket listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "ip")]
pub enum ListenAddress {
    /// 0.0.0.0, `[::]` or `*`: every interface.
    Any,
    Ip(IpAddr),
}

impl ListenAddress {
    pub fn is_any(&self) -> bool {
        matches!(self, ListenAddress::Any)
    }

    pub fn is_loopback(&self) -> bool {
        matches!(self, ListenAddress::Ip(ip) if ip.is_loopback())
    }
}

impl std::fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddress::Any => f.write_str("*"),
            ListenAddress::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            ListenAddress::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// A listening TCP socket and, when the tool could see it, its process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listener {
    pub address: ListenAddress,
    pub port: u16,
    pub pid: Option<u32>,
    pub command: Option<String>,
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.address, self.port)?;
        match (&self.command, self.pid) {
            (Some(command), Some(pid)) => write!(f, " ({command}, pid {pid})"),
            (None, Some(pid)) => write!(f, " (pid {pid})"),
            _ => Ok(()),
        }
    }
}

/// `ss -Hltnp` lines: `LISTEN 0 4096 192.168.250.20:11434 0.0.0.0:* users:(("ollama",pid=812,fd=3))`.
pub fn ss_listeners(text: &str) -> Vec<Listener> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 5 || fields[0] != "LISTEN" {
                return None;
            }
            let (address, port) = split_socket(fields[3])?;
            let (command, pid) = fields
                .get(5)
                .map(|users| ss_process(users))
                .unwrap_or((None, None));
            Some(Listener {
                address,
                port,
                pid,
                command,
            })
        })
        .collect()
}

fn ss_process(users: &str) -> (Option<String>, Option<u32>) {
    let command = users
        .split_once("((\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(name, _)| name.to_string());
    let pid = users
        .split_once("pid=")
        .and_then(|(_, rest)| rest.split([',', ')']).next())
        .and_then(|pid| pid.parse().ok());
    (command, pid)
}

/// `lsof -nP -iTCP:<port> -sTCP:LISTEN` rows:
/// `ollama  812 alice 3u IPv4 0x5b1e... 0t0 TCP 192.168.250.20:11434 (LISTEN)`.
pub fn lsof_listeners(text: &str) -> Vec<Listener> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 3 || fields[0] == "COMMAND" || fields.last() != Some(&"(LISTEN)") {
                return None;
            }
            let name = fields[fields.len() - 2];
            let (address, port) = split_socket(name)?;
            Some(Listener {
                address,
                port,
                pid: fields[1].parse().ok(),
                // lsof escapes spaces in command names as \x20.
                command: Some(fields[0].replace("\\x20", " ")),
            })
        })
        .collect()
}

/// Splits `addr:port` as ss and lsof print it: `*:11434`, `0.0.0.0:11434`,
/// `[::]:11434`, `[::1]:11434`, `127.0.0.53%lo:53`, `[fe80::1]%eth0:22`.
fn split_socket(text: &str) -> Option<(ListenAddress, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.split('%').next().unwrap_or(host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let address = match host {
        "*" => ListenAddress::Any,
        _ => {
            let ip: IpAddr = host.parse().ok()?;
            if ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED) || ip == IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
                ListenAddress::Any
            } else {
                ListenAddress::Ip(ip)
            }
        }
    };
    Some((address, port))
}

/// `systemctl show -p A,B,C unit` prints `A=value` lines.
pub fn systemctl_show(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// A process from `ps -axo pid=,command=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Process {
    pub pid: u32,
    pub command: String,
}

pub fn ps_processes(text: &str) -> Vec<Process> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let (pid, command) = line.split_once(char::is_whitespace)?;
            Some(Process {
                pid: pid.parse().ok()?,
                command: command.trim().to_string(),
            })
        })
        .collect()
}

/// A hardware port from `networksetup -listallhardwareports`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HardwarePort {
    pub port: String,
    pub device: String,
}

pub fn hardware_ports(text: &str) -> Vec<HardwarePort> {
    let mut ports = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(port) = line.strip_prefix("Hardware Port: ") {
            current = Some(port.trim().to_string());
        } else if let Some(device) = line.strip_prefix("Device: ")
            && let Some(port) = current.take()
        {
            ports.push(HardwarePort {
                port,
                device: device.trim().to_string(),
            });
        }
    }
    ports
}

/// A network service from `networksetup -listnetworkserviceorder`:
/// `(1) USB 10/100/1000 LAN` then `(Hardware Port: USB 10/100/1000 LAN, Device: en7)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkService {
    pub name: String,
    pub port: String,
    pub device: String,
    pub enabled: bool,
}

pub fn network_service_order(text: &str) -> Vec<NetworkService> {
    let mut services = Vec::new();
    let mut pending: Option<(String, bool)> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("(Hardware Port: ") {
            let Some((name, enabled)) = pending.take() else {
                continue;
            };
            let rest = rest.trim_end_matches(')');
            let Some((port, device)) = rest.rsplit_once(", Device: ") else {
                continue;
            };
            services.push(NetworkService {
                name,
                port: port.to_string(),
                device: device.to_string(),
                enabled,
            });
            continue;
        }
        // `(3) Name`, or `(*) Name` for a disabled service.
        if let Some(rest) = line.strip_prefix('(')
            && let Some((index, name)) = rest.split_once(") ")
            && (index == "*" || index.chars().all(|c| c.is_ascii_digit()))
        {
            pending = Some((name.to_string(), index != "*"));
        }
    }
    services
}

/// Whether a hardware port is a wired Ethernet port (built-in, USB or Thunderbolt
/// adapters), as opposed to Wi-Fi, Bluetooth, bridges and tethering.
pub fn is_wired_port(port: &str) -> bool {
    let lower = port.to_ascii_lowercase();
    let excluded = [
        "wi-fi",
        "airport",
        "bluetooth",
        "bridge",
        "iphone",
        "ipad",
        "vpn",
    ];
    if excluded.iter().any(|word| lower.contains(word)) {
        return false;
    }
    lower.contains("ethernet") || lower.contains("lan") || lower.contains("usb")
}

/// `pmset -g` ("Currently in use"): each setting's value, e.g. `sleep` -> `1`. Notes
/// such as `1 (sleep prevented by powerd)` keep only the value.
pub fn pmset_settings(text: &str) -> BTreeMap<String, String> {
    let mut settings = BTreeMap::new();
    for line in text.lines() {
        // Settings are indented; the headings ("System-wide power settings:") are not.
        if !line.starts_with([' ', '\t']) {
            continue;
        }
        let line = line.trim();
        // Keys may contain single spaces ("Sleep On Power Button 1"); the value column
        // starts after a run of spaces when the key is short.
        let (key, rest) = match line.split_once("  ") {
            Some((key, rest)) => (key, rest.trim_start()),
            None => match line.rsplit_once(' ') {
                Some(split) => split,
                None => continue,
            },
        };
        let Some(value) = rest.split_whitespace().next() else {
            continue;
        };
        settings.insert(key.trim().to_string(), value.to_string());
    }
    settings
}

/// `fdesetup status`: `Some(true)` while the boot volume is encrypted (or being
/// encrypted or decrypted), `None` when the text says neither.
pub fn fdesetup_enabled(text: &str) -> Option<bool> {
    if text.contains("FileVault is On")
        || text.contains("Encryption in progress")
        || text.contains("Decryption in progress")
    {
        return Some(true);
    }
    text.contains("FileVault is Off").then_some(false)
}

/// `dscl . -list /Users UniqueID` (or `/Groups PrimaryGroupID`): name and id per line.
pub fn dscl_ids(text: &str) -> Vec<(String, i64)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next()?;
            let id = fields.next()?.parse().ok()?;
            Some((name.to_string(), id))
        })
        .collect()
}

/// `dscl . -read /Users/NAME`: the single-line attributes (`UniqueID: 301`).
/// Multi-line values (a continuation line starting with a space) are left out.
pub fn dscl_record(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|line| !line.starts_with(' '))
        .filter_map(|line| line.split_once(": "))
        .map(|(key, value)| (key.to_string(), value.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pmset_values_drop_their_notes_and_keep_keys_with_spaces() {
        let settings = pmset_settings(
            "System-wide power settings:\nCurrently in use:\n standby              0\n \
             Sleep On Power Button 1\n womp                 1\n autorestart          0\n \
             hibernatefile        /var/vm/sleepimage\n \
             sleep                1 (sleep prevented by sharingd, powerd)\n",
        );
        assert_eq!(settings["sleep"], "1");
        assert_eq!(settings["autorestart"], "0");
        assert_eq!(settings["womp"], "1");
        assert_eq!(settings["Sleep On Power Button"], "1");
        assert_eq!(settings["hibernatefile"], "/var/vm/sleepimage");
        assert!(!settings.contains_key("System-wide power settings:"));
    }

    #[test]
    fn fdesetup_states() {
        assert_eq!(fdesetup_enabled("FileVault is On.\n"), Some(true));
        assert_eq!(fdesetup_enabled("FileVault is Off.\n"), Some(false));
        assert_eq!(
            fdesetup_enabled("Encryption in progress: Percent completed = 42\n"),
            Some(true)
        );
        assert_eq!(fdesetup_enabled("fdesetup: command failed\n"), None);
    }

    #[test]
    fn dscl_lists_and_records() {
        let ids = dscl_ids("_amavisd                 83\nalice   501\nnobody -2\nbroken\n");
        assert_eq!(
            ids,
            [
                ("_amavisd".to_string(), 83),
                ("alice".to_string(), 501),
                ("nobody".to_string(), -2)
            ]
        );
        let record = dscl_record(
            "NFSHomeDirectory: /Library/Application Support/sovereign/ollama\n\
             PrimaryGroupID: 301\nRealName:\n sovereign Ollama\nUniqueID: 301\n",
        );
        assert_eq!(record["PrimaryGroupID"], "301");
        assert_eq!(
            record["NFSHomeDirectory"],
            "/Library/Application Support/sovereign/ollama"
        );
        assert!(!record.contains_key("RealName"));
    }

    #[test]
    fn socket_forms_split_into_address_and_port() {
        let ip = |s: &str| ListenAddress::Ip(s.parse().unwrap());
        assert_eq!(split_socket("*:11434"), Some((ListenAddress::Any, 11434)));
        assert_eq!(
            split_socket("0.0.0.0:11434"),
            Some((ListenAddress::Any, 11434))
        );
        assert_eq!(
            split_socket("[::]:11434"),
            Some((ListenAddress::Any, 11434))
        );
        assert_eq!(split_socket("[::1]:11434"), Some((ip("::1"), 11434)));
        assert_eq!(
            split_socket("127.0.0.53%lo:53"),
            Some((ip("127.0.0.53"), 53))
        );
        assert_eq!(split_socket("[fe80::1]%eth0:22"), Some((ip("fe80::1"), 22)));
        assert_eq!(split_socket("garbage"), None);
    }

    #[test]
    fn wired_ports_exclude_wireless_and_bridges() {
        assert!(is_wired_port("Ethernet"));
        assert!(is_wired_port("USB 10/100/1000 LAN"));
        assert!(is_wired_port("Thunderbolt Ethernet Slot 0"));
        assert!(!is_wired_port("Wi-Fi"));
        assert!(!is_wired_port("Thunderbolt Bridge"));
        assert!(!is_wired_port("iPhone USB"));
        assert!(!is_wired_port("Bluetooth PAN"));
    }

    #[test]
    fn ps_lines_keep_commands_with_spaces() {
        let processes =
            ps_processes("  412 /Applications/Ollama.app/Contents/MacOS/Ollama\n 9 a b c\n");
        assert_eq!(processes[0].pid, 412);
        assert_eq!(processes[1].command, "a b c");
    }

    proptest::proptest! {
        /// Any socket ss prints comes back as the address and port it names.
        #[test]
        fn ss_lines_round_trip(a: u8, b: u8, c: u8, d: u8, port in 1u16.., pid in 1u32..4_000_000, v6 in proptest::bool::ANY) {
            let ip: IpAddr = if v6 {
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, u16::from(a) << 8 | u16::from(b), u16::from(c) << 8 | u16::from(d)))
            } else {
                IpAddr::V4(Ipv4Addr::new(a, b, c, d))
            };
            let local = match ip {
                IpAddr::V6(v6) => format!("[{v6}]:{port}"),
                IpAddr::V4(v4) => format!("{v4}:{port}"),
            };
            let line = format!("LISTEN 0      4096   {local}   0.0.0.0:*    users:((\"ollama\",pid={pid},fd=3))\n");
            let parsed = ss_listeners(&line);
            proptest::prop_assert_eq!(parsed.len(), 1);
            let expected = if ip.is_unspecified() { ListenAddress::Any } else { ListenAddress::Ip(ip) };
            proptest::prop_assert_eq!(parsed[0].address, expected);
            proptest::prop_assert_eq!(parsed[0].port, port);
            proptest::prop_assert_eq!(parsed[0].pid, Some(pid));
        }
    }
}
