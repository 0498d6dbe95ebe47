//! Disposable ssh-reachable "routers" for tests.
//!
//! [`Sshd`] runs Debian's sshd inside an existing network namespace (the lab's
//! router node, or the fixture's own), with lab-only keys, its own config and its
//! host key pinned in a private known_hosts file. [`SshRouterFixture`] adds a
//! namespace reached from the root namespace over a veth pair and a userspace
//! WireGuard interface (`wireguard-go`). Everything is torn down on drop.
//!
//! sshd runs in its own mount namespace with a private tmpfs on /tmp, so the
//! router's lock and staging dirs never collide with another test's.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::transport::{SshTarget, SshTransport};

/// Tools the fixture needs on this machine.
pub const REQUIRED_TOOLS: &[&str] = &[
    "ip",
    "nft",
    "wg",
    "wireguard-go",
    "ssh",
    "ssh-keygen",
    "unshare",
    "/usr/sbin/sshd",
];

/// `Some(reason)` when the fixture cannot run here (not root, a tool missing).
/// Under `CI=true` a missing prerequisite is a failure, not a skip: this panics.
pub fn skip_reason() -> Option<String> {
    let mut problems = sovereign_testkit::missing_tools(REQUIRED_TOOLS);
    if !sovereign_testkit::is_root() {
        problems.push("not running as root".to_string());
    }
    if sovereign_testkit::skip_or_fail("ssh router fixture", &problems) {
        return None;
    }
    Some(problems.join(", "))
}

#[derive(Debug, thiserror::Error)]
#[error("ssh router fixture: {0}")]
pub struct FixtureError(String);

/// Debian's sshd listening on one address inside an existing network namespace,
/// accepting root with a lab-only ed25519 key. Drop it to stop sshd.
pub struct Sshd {
    pub netns: String,
    pub address: SocketAddrV4,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Sshd {
    /// Generate a client key and a host key, start sshd on `address` inside
    /// `netns`, and wait until a fresh session from inside that namespace logs in.
    pub fn start(netns: &str, address: SocketAddrV4) -> Result<Sshd, FixtureError> {
        // Outside /tmp: sshd's /tmp is replaced by a private tmpfs.
        let dir = tempfile::Builder::new()
            .prefix("sovereign-remote-sshd.")
            .tempdir_in("/var/tmp")
            .map_err(|e| FixtureError(format!("temp dir: {e}")))?;
        let mut sshd = Sshd {
            netns: netns.to_string(),
            address,
            dir,
            child: None,
        };
        sshd.spawn()?;
        sshd.wait_until_ready()?;
        Ok(sshd)
    }

    /// `root@<ip>`.
    pub fn destination(&self) -> String {
        format!("root@{}", self.address.ip())
    }

    /// How to reach this sshd as root with the lab key; the host key is checked
    /// against the private known_hosts file. `-F none`: the user's config stays out.
    pub fn target(&self) -> SshTarget {
        let port = (self.address.port() != 22).then_some(self.address.port());
        let mut target = SshTarget::new(self.destination()).with_port(port);
        target.connect_timeout = Duration::from_secs(5);
        target.extra_args = [
            "-F",
            "none",
            "-i",
            &self.path("client_key").display().to_string(),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            &format!("UserKnownHostsFile={}", self.path("known_hosts").display()),
            "-o",
            "GlobalKnownHostsFile=/dev/null",
        ]
        .map(String::from)
        .to_vec();
        target
    }

    pub fn transport(&self) -> SshTransport {
        SshTransport::new(self.target())
    }

    /// The same sshd, with a known_hosts file that does not hold its key.
    pub fn target_with_unknown_host_key(&self) -> SshTarget {
        let mut target = self.target();
        let empty = self.path("empty_known_hosts");
        let _ = std::fs::write(&empty, "");
        for arg in &mut target.extra_args {
            if arg.starts_with("UserKnownHostsFile=") {
                *arg = format!("UserKnownHostsFile={}", empty.display());
            }
        }
        target
    }

    /// A directory holding an `ssh` that runs the real client with an ssh_config
    /// naming the lab key and the pinned known_hosts (strict host-key checking).
    /// Put it first on PATH of a program that runs plain `ssh USER@HOST`, such as
    /// the `sovereign` binary: OpenSSH reads ~/.ssh from the passwd entry, not
    /// $HOME, so a temp HOME cannot hold this configuration.
    pub fn ssh_wrapper_dir(&self) -> Result<PathBuf, FixtureError> {
        let real = find_program("ssh").ok_or_else(|| FixtureError("no ssh on PATH".into()))?;
        let config = self.path("ssh_config");
        std::fs::write(
            &config,
            format!(
                "Host {host}\n\
                 \tIdentityFile {key}\n\
                 \tIdentitiesOnly yes\n\
                 \tUserKnownHostsFile {known_hosts}\n\
                 \tGlobalKnownHostsFile /dev/null\n\
                 \tStrictHostKeyChecking yes\n",
                host = self.address.ip(),
                key = self.path("client_key").display(),
                known_hosts = self.path("known_hosts").display(),
            ),
        )
        .map_err(|e| FixtureError(format!("ssh_config: {e}")))?;
        let bin = self.path("bin");
        std::fs::create_dir_all(&bin).map_err(|e| FixtureError(format!("{e}")))?;
        let wrapper = bin.join("ssh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {} -F {} \"$@\"\n",
                crate::script::quote(&real.display().to_string()),
                crate::script::quote(&config.display().to_string()),
            ),
        )
        .map_err(|e| FixtureError(format!("ssh wrapper: {e}")))?;
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| FixtureError(format!("ssh wrapper: {e}")))?;
        Ok(bin)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// What sshd wrote to stderr (errors only).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }

    fn spawn(&mut self) -> Result<(), FixtureError> {
        for key in ["client_key", "host_key"] {
            run(
                "ssh-keygen",
                &[
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "sovereign-lab-only",
                    "-f",
                    &self.path(key).display().to_string(),
                ],
            )?;
        }
        std::fs::copy(self.path("client_key.pub"), self.path("authorized_keys"))
            .map_err(|e| FixtureError(format!("authorized_keys: {e}")))?;
        let host_pub = std::fs::read_to_string(self.path("host_key.pub"))
            .map_err(|e| FixtureError(format!("host key: {e}")))?;
        let mut parts = host_pub.split_whitespace();
        let (kind, key) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let host = match self.address.port() {
            22 => self.address.ip().to_string(),
            port => format!("[{}]:{port}", self.address.ip()),
        };
        std::fs::write(self.path("known_hosts"), format!("{host} {kind} {key}\n"))
            .map_err(|e| FixtureError(format!("known_hosts: {e}")))?;
        let config = format!(
            "ListenAddress {address}\n\
             HostKey {host_key}\n\
             PidFile none\n\
             AuthorizedKeysFile {authorized}\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n\
             StrictModes no\n\
             UsePAM no\n\
             LogLevel ERROR\n",
            address = self.address,
            host_key = self.path("host_key").display(),
            authorized = self.path("authorized_keys").display(),
        );
        std::fs::write(self.path("sshd_config"), config)
            .map_err(|e| FixtureError(format!("sshd_config: {e}")))?;
        // sshd refuses to start without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd")
            .map_err(|e| FixtureError(format!("/run/sshd: {e}")))?;

        let sshd_command = format!(
            "mount -t tmpfs -o mode=1777 sovereign-router-tmp /tmp && exec /usr/sbin/sshd -D -e -f {}",
            self.path("sshd_config").display()
        );
        let log = std::fs::File::create(self.path("sshd.log"))
            .map_err(|e| FixtureError(format!("sshd.log: {e}")))?;
        self.child = Some(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.netns,
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    &sshd_command,
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| FixtureError(format!("sshd: {e}")))?,
        );
        Ok(())
    }

    /// Log in from inside the namespace itself, so this works whether or not the
    /// caller's namespace has a route to `address`.
    fn wait_until_ready(&mut self) -> Result<(), FixtureError> {
        let args = self.transport().args("true", true);
        let netns = self.netns.clone();
        let child = &mut self.child;
        let result = wait_until("sshd to accept the lab key", || {
            if let Some(child) = child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                return true;
            }
            Command::new("ip")
                .args(["netns", "exec", &netns, "ssh"])
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        let exited = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        match (result, exited) {
            (Ok(()), None) => Ok(()),
            (_, Some(status)) => Err(FixtureError(format!(
                "sshd exited ({status}); log:\n{}",
                self.log()
            ))),
            (Err(e), None) => Err(FixtureError(format!("{e}; sshd log:\n{}", self.log()))),
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One running router; drop it to tear everything down.
pub struct SshRouterFixture {
    pub netns: String,
    pub wg_interface: String,
    pub router_address: Ipv4Addr,
    pub client_address: Ipv4Addr,
    pub listen_port: u16,
    host_veth: String,
    router_veth: String,
    sshd: Option<Sshd>,
    wireguard: Option<Child>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl SshRouterFixture {
    /// Start a router whose WireGuard interface listens on `listen_port` with a
    /// fresh private key and holds 10.10.10.1/24.
    pub fn start(listen_port: u16) -> Result<Self, FixtureError> {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let tag = format!("{pid:x}{n}");
        let (router_address, client_address) = free_slash30(pid, n)?;
        let mut fixture = SshRouterFixture {
            netns: format!("sovereign-remote-{tag}"),
            wg_interface: format!("srwg{tag}"),
            router_address,
            client_address,
            listen_port,
            host_veth: format!("sr{tag}h"),
            router_veth: format!("sr{tag}r"),
            sshd: None,
            wireguard: None,
        };
        fixture.build()?;
        Ok(fixture)
    }

    /// An ssh transport to the router as root with the lab key; host key checked
    /// against the fixture's own known_hosts file.
    pub fn transport(&self) -> SshTransport {
        self.sshd().transport()
    }

    pub fn target(&self) -> SshTarget {
        self.sshd().target()
    }

    /// The same router, with a known_hosts file that does not hold its key.
    pub fn target_with_unknown_host_key(&self) -> SshTarget {
        self.sshd().target_with_unknown_host_key()
    }

    /// Run a command inside the router's namespace (not over ssh).
    pub fn exec(&self, args: &[&str]) -> Result<String, FixtureError> {
        let mut full = vec!["netns", "exec", self.netns.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Run a shell script inside the router's namespace (not over ssh).
    pub fn sh(&self, script: &str) -> Result<String, FixtureError> {
        self.exec(&["sh", "-c", script])
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.sshd().path(name)
    }

    fn sshd(&self) -> &Sshd {
        self.sshd.as_ref().expect("a started fixture runs sshd")
    }

    fn build(&mut self) -> Result<(), FixtureError> {
        let veth_router = self.router_veth.clone();
        run("ip", &["netns", "add", &self.netns])?;
        run(
            "ip",
            &[
                "link",
                "add",
                &self.host_veth,
                "type",
                "veth",
                "peer",
                "name",
                &veth_router,
            ],
        )?;
        run("ip", &["link", "set", &veth_router, "netns", &self.netns])?;
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/30", self.client_address),
                "dev",
                &self.host_veth,
            ],
        )?;
        run("ip", &["link", "set", &self.host_veth, "up"])?;
        let ns = self.netns.clone();
        run(
            "ip",
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/30", self.router_address),
                "dev",
                &veth_router,
            ],
        )?;
        run("ip", &["-n", &ns, "link", "set", &veth_router, "up"])?;
        run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;

        self.sshd = Some(Sshd::start(
            &ns,
            SocketAddrV4::new(self.router_address, 22),
        )?);
        self.wireguard = Some(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns,
                    "env",
                    "WG_PROCESS_FOREGROUND=1",
                    "wireguard-go",
                    &self.wg_interface,
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| FixtureError(format!("wireguard-go: {e}")))?,
        );
        let wg = self.wg_interface.clone();
        wait_until("the WireGuard interface", || {
            self.exec(&["wg", "show", &wg]).is_ok()
        })?;
        let key = run("wg", &["genkey"])?;
        let key_file = self.path("wg_private_key");
        std::fs::write(&key_file, key.trim()).map_err(|e| FixtureError(e.to_string()))?;
        let port = self.listen_port.to_string();
        self.exec(&[
            "wg",
            "set",
            &wg,
            "private-key",
            &key_file.display().to_string(),
            "listen-port",
            &port,
        ])?;
        self.exec(&["ip", "addr", "add", "10.10.10.1/24", "dev", &wg])?;
        self.exec(&["ip", "link", "set", &wg, "up"])?;
        Ok(())
    }
}

impl Drop for SshRouterFixture {
    fn drop(&mut self) {
        drop(self.sshd.take());
        if let Some(mut child) = self.wireguard.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Rollback timers and sessions started over ssh live in the namespace.
        if let Ok(pids) = run("ip", &["netns", "pids", &self.netns]) {
            for pid in pids.split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = run("ip", &["netns", "del", &self.netns]);
        let _ = run("ip", &["link", "del", &self.host_veth]);
        let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.wg_interface));
    }
}
fn free_slash30(pid: u32, n: u32) -> Result<(Ipv4Addr, Ipv4Addr), FixtureError> {
    let used = run("ip", &["-4", "-o", "addr", "show"]).unwrap_or_default();
    // 100.100.0.0/16 inside the shared-address space, one /30 per fixture.
    let start = (pid.wrapping_mul(16).wrapping_add(n)) % 16384;
    for offset in 0..16384 {
        let index = (start + offset) % 16384;
        let base = Ipv4Addr::new(100, 100, (index >> 6) as u8, ((index & 63) << 2) as u8);
        let [a, b, c, d] = base.octets();
        let network = format!(" {a}.{b}.{c}.");
        let taken = used
            .lines()
            .filter(|l| l.contains(&network))
            .any(|l| (d..d + 4).any(|h| l.contains(&format!(" {a}.{b}.{c}.{h}/"))));
        if !taken {
            return Ok((Ipv4Addr::new(a, b, c, d + 2), Ipv4Addr::new(a, b, c, d + 1)));
        }
    }
    Err(FixtureError("no free /30 in 100.100.0.0/16".into()))
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) -> Result<(), FixtureError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(FixtureError(format!("timed out waiting for {what}")))
}

fn run(program: &str, args: &[&str]) -> Result<String, FixtureError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| FixtureError(format!("{program}: {e}")))?;
    if !output.status.success() {
        return Err(FixtureError(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn find_program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}
