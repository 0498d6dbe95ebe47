//! Pure renderers: the LaunchAgent plist, the systemd unit and drop-in, and the
//! static-address advice. No I/O here; callers pass in everything detected.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::error::Error;
use crate::spec::{DaemonPaths, LAUNCHD_LABEL, MacPaths, STATE_DIRECTORY, ServiceSpec};

/// The keys of our plist, exactly; a test parses the output back and compares.
pub const PLIST_KEYS: [&str; 7] = [
    "Label",
    "ProgramArguments",
    "EnvironmentVariables",
    "RunAtLoad",
    "KeepAlive",
    "StandardOutPath",
    "StandardErrorPath",
];

/// How long the systemd service waits at boot for its address to appear.
pub const ADDRESS_WAIT_SECONDS: u32 = 60;

/// A user LaunchAgent running `ollama serve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaunchAgent {
    pub label: String,
    pub program: PathBuf,
    pub environment: Vec<(String, String)>,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl LaunchAgent {
    pub fn new(spec: &ServiceSpec, program: PathBuf, paths: &MacPaths) -> LaunchAgent {
        LaunchAgent {
            label: LAUNCHD_LABEL.to_string(),
            program,
            environment: spec.environment.clone(),
            stdout_path: paths.stdout_log.clone(),
            stderr_path: paths.stderr_log.clone(),
        }
    }
}

pub fn render_plist(agent: &LaunchAgent) -> Result<String, Error> {
    use plist::{Dictionary, Value};

    let mut environment = Dictionary::new();
    for (name, value) in &agent.environment {
        environment.insert(name.clone(), Value::String(value.clone()));
    }
    let mut root = Dictionary::new();
    root.insert("Label".into(), Value::String(agent.label.clone()));
    root.insert(
        "ProgramArguments".into(),
        Value::Array(vec![
            Value::String(agent.program.display().to_string()),
            Value::String("serve".into()),
        ]),
    );
    root.insert(
        "EnvironmentVariables".into(),
        Value::Dictionary(environment),
    );
    root.insert("RunAtLoad".into(), Value::Boolean(true));
    // Restart whenever it exits: launchd throttles respawns to one per 10 s by default.
    root.insert("KeepAlive".into(), Value::Boolean(true));
    root.insert(
        "StandardOutPath".into(),
        Value::String(agent.stdout_path.display().to_string()),
    );
    root.insert(
        "StandardErrorPath".into(),
        Value::String(agent.stderr_path.display().to_string()),
    );
    let mut out = Vec::new();
    Value::Dictionary(root)
        .to_writer_xml(&mut out)
        .map_err(|e| Error::Plist(format!("cannot write the LaunchAgent plist: {e}")))?;
    let mut text = String::from_utf8(out).map_err(|e| Error::Plist(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

/// The keys of the daemon plist, exactly, in order.
pub const DAEMON_PLIST_KEYS: [&str; 9] = [
    "Label",
    "ProgramArguments",
    "EnvironmentVariables",
    "UserName",
    "GroupName",
    "RunAtLoad",
    "KeepAlive",
    "StandardOutPath",
    "StandardErrorPath",
];

/// How many old logs newsyslog keeps, and the size (KiB) that triggers a rotation.
pub const LOG_GENERATIONS: u32 = 5;
pub const LOG_ROTATE_KIB: u32 = 10240;

/// A system LaunchDaemon running `ollama serve` as a service account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaunchDaemon {
    pub label: String,
    pub program: PathBuf,
    /// `OLLAMA_*`, then `HOME` and `OLLAMA_MODELS` in the account's data directory.
    pub environment: Vec<(String, String)>,
    pub user: String,
    pub group: String,
    pub wait_for_address: Option<Ipv4Addr>,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl LaunchDaemon {
    pub fn new(
        spec: &ServiceSpec,
        program: PathBuf,
        user: &str,
        group: &str,
        paths: &DaemonPaths,
    ) -> LaunchDaemon {
        let mut environment = spec.environment.clone();
        // launchd gives a daemon no HOME; Ollama would otherwise put its key pair and
        // models under / or fail. Both live in the account's own directory.
        environment.push(("HOME".into(), paths.data_dir.display().to_string()));
        environment.push((
            "OLLAMA_MODELS".into(),
            paths.models_dir.display().to_string(),
        ));
        LaunchDaemon {
            label: LAUNCHD_LABEL.to_string(),
            program,
            environment,
            user: user.to_string(),
            group: group.to_string(),
            wait_for_address: spec.wait_for_address(),
            stdout_path: paths.stdout_log.clone(),
            stderr_path: paths.stderr_log.clone(),
        }
    }

    /// What launchd executes. At boot a daemon starts before DHCP (or even the link)
    /// has given the Mac its LAN address, and Ollama then fails with "can't assign
    /// requested address"; launchd has no "after network" ordering, so a bounded shell
    /// loop waits for the address and then `exec`s Ollama, which keeps launchd's pid.
    /// The binary is passed as `$0` so its path needs no quoting inside the script.
    pub fn program_arguments(&self) -> Vec<String> {
        let program = self.program.display().to_string();
        let Some(address) = self.wait_for_address else {
            return vec![program, "serve".into()];
        };
        let script = format!(
            "i=0; until /sbin/ifconfig | /usr/bin/grep -qF 'inet {address} '; do \
             i=$((i+1)); if [ \"$i\" -ge {ADDRESS_WAIT_SECONDS} ]; then \
             echo \"sovereign: {address} is not assigned to any interface after {ADDRESS_WAIT_SECONDS}s\" >&2; \
             exit 1; fi; sleep 1; done; exec \"$0\" serve"
        );
        vec!["/bin/sh".into(), "-c".into(), script, program]
    }
}

/// The daemon's plist. `KeepAlive` restarts a failed address wait too, so a lease
/// that arrives after a minute is still picked up (launchd throttles to one start
/// per 10 s).
pub fn render_daemon_plist(daemon: &LaunchDaemon) -> Result<String, Error> {
    use plist::{Dictionary, Value};

    let mut environment = Dictionary::new();
    for (name, value) in &daemon.environment {
        environment.insert(name.clone(), Value::String(value.clone()));
    }
    let mut root = Dictionary::new();
    root.insert("Label".into(), Value::String(daemon.label.clone()));
    root.insert(
        "ProgramArguments".into(),
        Value::Array(
            daemon
                .program_arguments()
                .into_iter()
                .map(Value::String)
                .collect(),
        ),
    );
    root.insert(
        "EnvironmentVariables".into(),
        Value::Dictionary(environment),
    );
    // Without UserName a LaunchDaemon runs as root.
    root.insert("UserName".into(), Value::String(daemon.user.clone()));
    root.insert("GroupName".into(), Value::String(daemon.group.clone()));
    root.insert("RunAtLoad".into(), Value::Boolean(true));
    root.insert("KeepAlive".into(), Value::Boolean(true));
    root.insert(
        "StandardOutPath".into(),
        Value::String(daemon.stdout_path.display().to_string()),
    );
    root.insert(
        "StandardErrorPath".into(),
        Value::String(daemon.stderr_path.display().to_string()),
    );
    let mut out = Vec::new();
    Value::Dictionary(root)
        .to_writer_xml(&mut out)
        .map_err(|e| Error::Plist(format!("cannot write the LaunchDaemon plist: {e}")))?;
    let mut text = String::from_utf8(out).map_err(|e| Error::Plist(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

/// `/etc/newsyslog.d/com.sovereign.ollama.conf`: rotate both logs at 10 MiB, keep 5.
///
/// launchd opens `StandardOutPath` once per start and keeps that descriptor, and
/// Ollama cannot be told to reopen its log, so after a rotation Ollama goes on writing
/// into the renamed `.0` file until it restarts; the fresh file fills from then on.
/// Flag `N` (send no signal) is the only honest choice: a signal would kill Ollama and
/// unload every model just to rotate a log. No compression flag either, since the
/// `.0` file may still be written to.
pub fn render_newsyslog(paths: &DaemonPaths, owner: &str, group: &str) -> String {
    let mut out = String::from(MANAGED_HEADER);
    out.push_str(
        "# launchd keeps the old log open until Ollama restarts, so the newest lines can sit\n\
         # in ollama.*.log.0 for a while; nothing is lost.\n",
    );
    out.push_str(
        "# logfilename                           [owner:group]    mode count size  when flags\n",
    );
    for log in [&paths.stdout_log, &paths.stderr_log] {
        out.push_str(&format!(
            "{:<39} {:<16} 640  {LOG_GENERATIONS:<5} {LOG_ROTATE_KIB:<5} *    N\n",
            log.display(),
            format!("{owner}:{group}"),
        ));
    }
    out
}

/// Who the systemd service runs as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnitUser {
    /// An existing account, normally `ollama` from Ollama's installer.
    Named(String),
    /// No account exists: systemd allocates one and keeps models in
    /// `/var/lib/sovereign-ollama`, which survives uninstall.
    Dynamic,
}

/// The systemd side of the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SystemdService {
    pub program: PathBuf,
    pub environment: Vec<(String, String)>,
    pub wait_for_address: Option<Ipv4Addr>,
    pub user: UnitUser,
}

impl SystemdService {
    pub fn new(spec: &ServiceSpec, program: PathBuf, user: UnitUser) -> SystemdService {
        SystemdService {
            program,
            environment: spec.environment.clone(),
            wait_for_address: spec.wait_for_address(),
            user,
        }
    }
}

/// How every file sovereign writes begins; uninstall without a manifest only removes
/// files that start so.
pub const MANAGED_MARKER: &str = "# Managed by sovereign";

const MANAGED_HEADER: &str = "# Managed by sovereign (`sovereign server install`); \
                              `sovereign server uninstall` removes this file.\n";

/// A complete `sovereign-ollama.service`.
pub fn render_unit(service: &SystemdService) -> String {
    let mut out = String::from(MANAGED_HEADER);
    out.push_str("[Unit]\nDescription=Ollama bound to this server's LAN address (sovereign)\n");
    out.push_str("Documentation=https://github.com/ollama/ollama/blob/main/docs/linux.mdx\n");
    out.push_str(UNIT_ORDERING);
    out.push_str("\n[Service]\n");
    out.push_str(&format!(
        "ExecStart={} serve\n",
        escape_exec_path(&service.program.display().to_string())
    ));
    match &service.user {
        UnitUser::Named(user) => {
            out.push_str(&format!("User={user}\nGroup={user}\n"));
        }
        UnitUser::Dynamic => {
            out.push_str("DynamicUser=yes\n");
            out.push_str(&format!("StateDirectory={STATE_DIRECTORY}\n"));
            // Ollama keeps keys and models under $HOME/.ollama; point both at the state dir.
            out.push_str(&environment_line(
                "HOME",
                &format!("/var/lib/{STATE_DIRECTORY}"),
            ));
            out.push_str(&environment_line(
                "OLLAMA_MODELS",
                &format!("/var/lib/{STATE_DIRECTORY}/models"),
            ));
            // GPU device nodes belong to these groups on Debian and Ubuntu.
            out.push_str("SupplementaryGroups=render video\n");
        }
    }
    push_service_body(&mut out, service);
    out.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    out
}

/// A drop-in for an existing `ollama.service`: only what we change.
pub fn render_dropin(service: &SystemdService) -> String {
    let mut out = String::from(MANAGED_HEADER);
    out.push_str("# Everything else comes from ollama.service itself.\n");
    out.push_str("[Unit]\n");
    out.push_str(UNIT_ORDERING);
    out.push_str("\n[Service]\n");
    push_service_body(&mut out, service);
    out
}

/// `network-online.target` alone is not enough: it is reached when *a* network is up
/// (or immediately, with no wait-online service enabled), not when *our* address is
/// assigned, and binding an unassigned address fails with "cannot assign requested
/// address". Restarting forever (no start limit) covers a DHCP lease that arrives late.
const UNIT_ORDERING: &str = "After=network-online.target\nWants=network-online.target\n\
                             StartLimitIntervalSec=0\n";

fn push_service_body(out: &mut String, service: &SystemdService) {
    for (name, value) in &service.environment {
        out.push_str(&environment_line(name, value));
    }
    if let Some(address) = service.wait_for_address {
        out.push_str(&wait_for_address_line(address));
    }
    out.push_str("Restart=always\nRestartSec=3\n");
}

/// Waits (bounded) until `address` is assigned to some interface. Chosen over
/// `net.ipv4.ip_nonlocal_bind=1`, which would change binding for every program on
/// the machine, and over `IP_FREEBIND`, which Ollama has no option for.
fn wait_for_address_line(address: Ipv4Addr) -> String {
    // `$$` is a literal `$` for systemd. `ip addr show to <ip>/32` prints the address
    // only once it is assigned; no inner quotes keeps systemd's and sh's quoting apart.
    format!(
        "ExecStartPre=/bin/sh -c 'i=0; until ip -4 -o addr show to {address}/32 | grep -q .; do \
         i=$$((i+1)); if [ $$i -ge {ADDRESS_WAIT_SECONDS} ]; then \
         echo sovereign: {address} is not assigned to any interface after {ADDRESS_WAIT_SECONDS}s >&2; \
         exit 1; fi; sleep 1; done'\n"
    )
}

fn environment_line(name: &str, value: &str) -> String {
    let assignment = format!("{name}={value}");
    format!("Environment=\"{}\"\n", escape_unit_value(&assignment))
}

/// Escapes a value for a double-quoted systemd setting: backslash, quote and the `%`
/// specifier character.
fn escape_unit_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn escape_exec_path(path: &str) -> String {
    if path.contains([' ', '"', '\\', '%', '$']) {
        return format!("\"{}\"", escape_unit_value(path).replace('$', "$$"));
    }
    path.to_string()
}

/// What to run (macOS) or write (Linux) to pin the server's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaticAddress {
    pub address: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub router: Ipv4Addr,
    /// The router is also the DNS server: the firewall allows the server DNS to it only.
    pub dns: Ipv4Addr,
}

/// `networksetup` commands for a macOS network service (its *service* name, such as
/// "USB 10/100/1000 LAN", not its device name such as en7).
pub fn macos_static_commands(service_name: &str, target: &StaticAddress) -> Vec<crate::Command> {
    vec![
        crate::Command::new(
            "networksetup",
            [
                "-setmanual".to_string(),
                service_name.to_string(),
                target.address.to_string(),
                target.subnet.netmask().to_string(),
                target.router.to_string(),
            ],
        ),
        crate::Command::new(
            "networksetup",
            [
                "-setdnsservers".to_string(),
                service_name.to_string(),
                target.dns.to_string(),
            ],
        ),
    ]
}

/// Configuration snippets for the three common Linux network stacks.
pub fn linux_static_advice(interface: &str, target: &StaticAddress) -> String {
    let cidr = format!("{}/{}", target.address, target.subnet.prefix_len());
    let StaticAddress { router, dns, .. } = target;
    format!(
        "Pin {cidr} on {interface} with whichever network stack this machine uses.\n\
         \n\
         NetworkManager (nmcli; find the connection with `nmcli -t -f NAME,DEVICE con show`):\n\
         \x20 nmcli con mod \"<connection>\" ipv4.method manual ipv4.addresses {cidr} \\\n\
         \x20   ipv4.gateway {router} ipv4.dns {dns}\n\
         \x20 nmcli con up \"<connection>\"\n\
         \n\
         systemd-networkd (/etc/systemd/network/10-sovereign-lan.network, then \
         `networkctl reload`):\n\
         \x20 [Match]\n\
         \x20 Name={interface}\n\
         \x20 [Network]\n\
         \x20 Address={cidr}\n\
         \x20 Gateway={router}\n\
         \x20 DNS={dns}\n\
         \n\
         ifupdown (/etc/network/interfaces, then `ifdown {interface} && ifup {interface}`):\n\
         \x20 auto {interface}\n\
         \x20 iface {interface} inet static\n\
         \x20     address {cidr}\n\
         \x20     gateway {router}\n\
         \x20     dns-nameservers {dns}\n\
         \n\
         Or leave the machine on DHCP and set `server.mac` in sovereign.toml so the router \
         hands out {address} as a static lease.\n",
        address = target.address,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_values_escape_specifiers_quotes_and_backslashes() {
        assert_eq!(escape_unit_value(r#"a%b"c\d"#), r#"a%%b\"c\\d"#);
        assert_eq!(
            environment_line("OLLAMA_KEEP_ALIVE", "24h"),
            "Environment=\"OLLAMA_KEEP_ALIVE=24h\"\n"
        );
    }

    #[test]
    fn exec_paths_with_spaces_are_quoted() {
        assert_eq!(
            escape_exec_path("/usr/local/bin/ollama"),
            "/usr/local/bin/ollama"
        );
        assert_eq!(
            escape_exec_path("/opt/my apps/ollama"),
            "\"/opt/my apps/ollama\""
        );
    }
}
