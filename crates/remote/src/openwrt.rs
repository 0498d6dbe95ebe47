//! OpenWrt: a `uci batch`, checked by `fw4 check` while still uncommitted, then
//! committed and applied by netifd (WireGuard peers via `wg syncconf` on current
//! releases) and `fw4 reload`.
//!
//! fw4 renders from the default UCI cursor, which includes uncommitted changes
//! (the deltas in /tmp/.uci). So the snapshot comes first, then validation stages
//! the wiring (`sovereign-wire.sh`, which finds the LAN bridge by name) and the
//! batch as deltas, runs `fw4 check`, and reverts them if anything fails; nothing
//! is committed or reloaded until every check has passed. The rendered
//! `sovereign.uci` ends with `commit` lines for the by-hand path, and `uci batch`
//! executes them at once, so the staged copy has them stripped. Because a commit
//! takes every pending delta, sovereign refuses to start when someone else left
//! uncommitted changes. After the reload the wiring script proves that the port
//! left the bridge (config and kernel); if it did not, the apply rolls back at
//! once instead of waiting for the timer.
//!
//! The proxy-ARP sysctl file of dedicated-port isolation is part of the same
//! transaction: snapshot (the file, or its absence, plus the live values of every
//! key it or the new file sets), install by rename after the commit, load with
//! `sysctl -p` after the network reload (the devices must exist), and restore both
//! file and values on rollback. Removing a file reverts no kernel state, so keys the
//! new file drops (all of them when switching to shared isolation) are set back to
//! the interface default (`net.ipv4.conf.default.*`). OpenWrt loads /etc/sysctl.d
//! at boot (/etc/init.d/sysctl) and again for a device's keys whenever it appears
//! (/etc/hotplug.d/net/00-sysctl), so the file outlives reboots and bridge rebuilds.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

use crate::apply::lock_and_stage;
use crate::script::quote;
use crate::target::{OpenwrtConfig, TargetScripts, section, sections, unified_diff};

pub(crate) struct Scripts<'a>(pub &'a OpenwrtConfig);

/// Where sovereign installs the rendered `etc/sysctl.d/90-sovereign.conf`.
pub const SYSCTL_FILE: &str = "/etc/sysctl.d/90-sovereign.conf";
/// The install's temp name: beside the target for an atomic rename, and not
/// `*.conf`, so neither the boot script nor hotplug reads it half written.
const SYSCTL_TEMP: &str = "/etc/sysctl.d/.90-sovereign.conf.sovereign";

/// Shell functions for the sysctl file. `sysctl_keys FILE...` prints the keys the
/// files set (comments, `;` lines and procps' `-` prefix ignored; missing files
/// print nothing). `sysctl_default_key KEY` prints the interface-default key of a
/// per-interface key (`net.ipv4.conf.lan4.proxy_arp` ->
/// `net.ipv4.conf.default.proxy_arp`, also in the `/` form), or nothing.
pub(crate) const SYSCTL_FUNCTIONS: &str = "\
sysctl_keys() { sed -n 's/^[[:space:]]*-\\{0,1\\}\\([^#;=[:space:]][^=[:space:]]*\\)[[:space:]]*=.*/\\1/p' \"$@\" 2>/dev/null || true; }
sysctl_default_key() { echo \"$1\" | sed -n 's#^\\(net[./]ipv[46][./]conf[./]\\)[^/]*\\([./][^./]*\\)$#\\1default\\2#p'; }
";

/// The settings of a sysctl file in order, `(key, value)`, as `sysctl -p` reads it.
pub fn sysctl_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with(['#', ';']))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| {
            let key = key.trim();
            (
                key.strip_prefix('-').unwrap_or(key).to_string(),
                value.trim().to_string(),
            )
        })
        .collect()
}

/// The wiring script, as the router crate renders it (and where it goes in the staging dir).
pub(crate) const WIRE_SCRIPT: &str = "sovereign-wire.sh";

/// The batch without its `commit` lines: staged as deltas, committed by `apply`.
pub fn uncommitted(batch: &str) -> String {
    batch
        .lines()
        .filter(|line| line.split_whitespace().next() != Some("commit"))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The UCI packages a batch touches (`network`, `firewall`, `dhcp`, ...), sorted.
pub fn touched_packages(batch: &str) -> Vec<String> {
    let mut packages = BTreeSet::new();
    for line in batch.lines() {
        let mut words = line.split_whitespace();
        let Some(command) = words.next() else {
            continue;
        };
        if command.starts_with('#') {
            continue;
        }
        if let Some(target) = words.next() {
            let package = target.split(['.', '=']).next().unwrap_or(target);
            if !package.is_empty()
                && package
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                packages.insert(package.to_string());
            }
        }
    }
    packages.into_iter().collect()
}

impl Scripts<'_> {
    fn packages(&self) -> String {
        touched_packages(&self.0.uci_batch).join(" ")
    }

    fn touches(&self, package: &str) -> bool {
        touched_packages(&self.0.uci_batch)
            .iter()
            .any(|p| p == package)
    }

    /// Peers without dropping sessions where netifd can: its current WireGuard
    /// handler applies a renew with `wg syncconf`; older ones only know a restart.
    fn reload_wireguard(&self) -> String {
        let wg = quote(&self.0.wg_interface);
        format!(
            "if grep -qs syncconf /lib/netifd/proto/wireguard*; then\n\
             \tubus call network.interface.{wg} renew 2>/dev/null || ifup {wg} 2>/dev/null || true\n\
             else\n\
             \tifup {wg} 2>/dev/null || true\n\
             fi\n"
        )
    }

    fn reload_services(&self) -> String {
        let mut script = String::from("ubus call network reload\n");
        script.push_str(&self.reload_wireguard());
        script.push_str("fw4 reload\n");
        if self.touches("dhcp") {
            script.push_str("/etc/init.d/dnsmasq reload\n");
        }
        script
    }

    fn restore_script(&self, staging: &str) -> String {
        let s = quote(staging);
        let mut script = format!(
            "#!/bin/sh\n\
             # sovereign: restore the OpenWrt config from before the apply (idempotent)\n\
             status=0\n\
             for c in {packages}; do\n\
             \tuci revert \"$c\" 2>/dev/null\n\
             \tif [ -f {s}/snapshot/\"$c\" ]; then\n\
             \t\tcp -p {s}/snapshot/\"$c\" /etc/config/.\"$c\".sovereign && mv -f /etc/config/.\"$c\".sovereign /etc/config/\"$c\" || status=1\n\
             \telif [ -f {s}/snapshot/\"$c\".absent ]; then\n\
             \t\trm -f /etc/config/\"$c\"\n\
             \tfi\n\
             done\n\
             if [ -f {s}/snapshot/sysctl.conf ]; then\n\
             \tcp -p {s}/snapshot/sysctl.conf {SYSCTL_TEMP} && mv -f {SYSCTL_TEMP} {SYSCTL_FILE} || status=1\n\
             elif [ -f {s}/snapshot/sysctl.conf.absent ]; then\n\
             \trm -f {SYSCTL_FILE} || status=1\n\
             fi\n",
            packages = self.packages()
        );
        script.push_str("ubus call network reload || status=1\n");
        script.push_str(&self.reload_wireguard());
        script.push_str("fw4 reload || status=1\n");
        if self.touches("dhcp") {
            script.push_str("/etc/init.d/dnsmasq reload || status=1\n");
        }
        // After the reload, so the devices exist again; -e: a device the old config
        // did not have may be gone, which is no failure of the restore.
        script.push_str(&format!(
            "[ ! -s {s}/snapshot/sysctl.previous ] || sysctl -e -p {s}/snapshot/sysctl.previous > /dev/null || status=1\n"
        ));
        script.push_str("exit $status\n");
        script
    }
}

impl TargetScripts for Scripts<'_> {
    fn prepare(&self, lock: bool) -> String {
        let packages = self.packages();
        let wg = quote(&self.0.wg_interface);
        let mut script = format!(
            "# sovereign: prepare (openwrt)\n\
             missing=\n\
             for tool in uci fw4 nft wg ubus mktemp; do command -v \"$tool\" >/dev/null 2>&1 || missing=\"$missing $tool\"; done\n\
             if [ -n \"$missing\" ]; then echo \"missing=${{missing# }}\"; exit 0; fi\n\
             pending=\n\
             for c in {packages}; do [ -z \"$(uci changes \"$c\" 2>/dev/null)\" ] || pending=\"$pending $c\"; done\n\
             if [ -n \"$pending\" ]; then echo \"problem=the router has uncommitted UCI changes in:$pending (from LuCI or uci set); commit them (uci commit) or drop them (uci revert CONFIG) first, so sovereign never commits someone else's edits\"; exit 0; fi\n\
             grep -qs syncconf /lib/netifd/proto/wireguard* || echo 'warning=this OpenWrt applies WireGuard peers by restarting {wg}, which drops its sessions for a moment (upgrade OpenWrt for wg syncconf)'\n"
        );
        script.push_str(&lock_and_stage(lock));
        script
    }

    fn missing_tools_hint(&self) -> &'static str {
        "sovereign needs OpenWrt 22.03 or later (fw4, nftables) with WireGuard: \
         opkg update && opkg install wireguard-tools kmod-wireguard"
    }

    fn files(&self, staging: &str) -> Vec<(String, String)> {
        let mut files = vec![
            ("sovereign.uci".into(), uncommitted(&self.0.uci_batch)),
            (WIRE_SCRIPT.into(), self.0.wire_script.clone()),
        ];
        if let Some(sysctl) = &self.0.sysctl_conf {
            files.push(("sysctl.conf".into(), sysctl.clone()));
        }
        files.push(("rollback.sh".into(), self.restore_script(staging)));
        files
    }

    fn validate(&self, staging: &str) -> String {
        let s = quote(staging);
        format!(
            "# sovereign: validate (openwrt)\n\
             discard() {{ for c in {packages}; do uci revert \"$c\" 2>/dev/null; done; }}\n\
             if ! sh {s}/{WIRE_SCRIPT} stage > {s}/wire.log 2>&1; then echo \"the router is not wired the way sovereign expects:\"; cat {s}/wire.log; discard; exit 1; fi\n\
             cat {s}/wire.log\n\
             uci batch < {s}/sovereign.uci > {s}/batch.log 2>&1; rc=$?\n\
             if [ $rc -ne 0 ] || grep -q '^uci: ' {s}/batch.log; then echo 'uci batch rejected sovereign.uci:'; cat {s}/batch.log; discard; exit 1; fi\n\
             if ! fw4 check > {s}/check.log 2>&1; then echo 'fw4 check rejected the firewall:'; cat {s}/check.log; discard; exit 1; fi\n\
             cat {s}/check.log\n",
            packages = self.packages()
        )
    }

    fn snapshot(&self, staging: &str) -> String {
        let s = quote(staging);
        let packages = self.packages();
        format!(
            "# sovereign: snapshot (openwrt)\n\
             set -e\n\
             umask 077\n\
             mkdir -p {s}/snapshot\n\
             for c in {packages}; do\n\
             \tif [ -f /etc/config/\"$c\" ]; then cp -p /etc/config/\"$c\" {s}/snapshot/\"$c\"; else : > {s}/snapshot/\"$c\".absent; fi\n\
             done\n\
             {SYSCTL_FUNCTIONS}\
             if [ -f {SYSCTL_FILE} ]; then cp -p {SYSCTL_FILE} {s}/snapshot/sysctl.conf; else : > {s}/snapshot/sysctl.conf.absent; fi\n\
             : > {s}/snapshot/sysctl.previous\n\
             for k in $(sysctl_keys {SYSCTL_FILE} {s}/sysctl.conf | sort -u); do\n\
             \tv=$(sysctl -n \"$k\" 2>/dev/null) && echo \"$k=$v\" >> {s}/snapshot/sysctl.previous || true\n\
             done\n\
             sysctl_keys {s}/sysctl.conf > {s}/sysctl.keys\n\
             : > {s}/sysctl.stale\n\
             for k in $(sysctl_keys {SYSCTL_FILE}); do\n\
             \tgrep -qxF \"$k\" {s}/sysctl.keys && continue\n\
             \td=$(sysctl_default_key \"$k\")\n\
             \t[ -n \"$d\" ] && v=$(sysctl -n \"$d\" 2>/dev/null) && echo \"$k=$v\" >> {s}/sysctl.stale || true\n\
             done\n\
             echo 'snapshot: /etc/config/{{{list}}}, {SYSCTL_FILE} and the live values of its keys'\n",
            list = packages.replace(' ', ",")
        )
    }

    fn apply(&self, staging: &str) -> String {
        let s = quote(staging);
        let packages = self.packages();
        // Installed before the reload, so hotplug applies it to devices the reload
        // creates; loaded after it for the devices that already exist.
        let (install, load) = match self.0.sysctl_conf {
            Some(_) => (
                format!(
                    "cp {s}/sysctl.conf {SYSCTL_TEMP}\n\
                     chmod 644 {SYSCTL_TEMP}\n\
                     mv -f {SYSCTL_TEMP} {SYSCTL_FILE}\n\
                     note='; installed and loaded {SYSCTL_FILE}'\n"
                ),
                format!("sysctl -p {SYSCTL_FILE} > /dev/null\n"),
            ),
            None => (
                format!(
                    "note=\n\
                     if [ -f {SYSCTL_FILE} ]; then rm -f {SYSCTL_FILE}; note='; removed {SYSCTL_FILE} and reset its keys to the defaults'; fi\n"
                ),
                String::new(),
            ),
        };
        format!(
            "# sovereign: apply (openwrt)\n\
             set -e\n\
             for c in {packages}; do uci commit \"$c\"; done\n\
             {install}\
             {reload}\
             [ ! -s {s}/sysctl.stale ] || sysctl -e -p {s}/sysctl.stale > /dev/null\n\
             {load}\
             if ! sh {s}/{WIRE_SCRIPT} prove > {s}/prove.log 2>&1; then\n\
             \tcat {s}/prove.log\n\
             \t{rollback_now}\
             \texit 1\n\
             fi\n\
             cat {s}/prove.log\n\
             echo applied > {s}/applied\n\
             echo \"applied: committed {packages}; reloaded netifd, {wg} peers and fw4$note\"\n",
            reload = self.reload_services(),
            rollback_now = crate::apply::rollback_now(staging),
            wg = self.0.wg_interface,
        )
    }

    fn discard(&self, _staging: &str) -> String {
        format!(
            "for c in {}; do uci revert \"$c\" 2>/dev/null; done\n",
            self.packages()
        )
    }

    fn preview(&self, staging: &str) -> String {
        let s = quote(staging);
        format!(
            "# sovereign: preview (openwrt)\n\
             mkdir -p {s}/conf {s}/delta {s}/nodelta\n\
             for c in {packages}; do if [ -f /etc/config/\"$c\" ]; then cp /etc/config/\"$c\" {s}/conf/\"$c\"; else : > {s}/conf/\"$c\"; fi; done\n\
             if ! sh {s}/{WIRE_SCRIPT} plan > {s}/wire.uci 2> {s}/wire.log; then echo '### wiring'; cat {s}/wire.log; exit 0; fi\n\
             cat {s}/wire.uci {s}/sovereign.uci | uci -c {s}/conf -t {s}/delta batch > {s}/batch.log 2>&1; rc=$?\n\
             if [ $rc -ne 0 ] || grep -q '^uci: ' {s}/batch.log; then echo '### error'; cat {s}/batch.log; exit 0; fi\n\
             uci -c {s}/conf -t {s}/delta commit\n\
             for c in {packages}; do\n\
             \techo \"### live $c\"; uci -t {s}/nodelta export \"$c\" 2>/dev/null\n\
             \techo \"### staged $c\"; uci -c {s}/conf -t {s}/delta export \"$c\"\n\
             done\n\
             if [ -f {SYSCTL_FILE} ]; then echo '### live sysctl'; cat {SYSCTL_FILE}; else echo '### live sysctl absent'; fi\n",
            packages = self.packages()
        )
    }

    fn diff(&self, preview: &str) -> Result<String, String> {
        let parts = sections(preview);
        if let Some(error) = section(&parts, "wiring") {
            return Err(format!(
                "the router is not wired the way sovereign expects:\n{error}"
            ));
        }
        if let Some(error) = section(&parts, "error") {
            return Err(format!("uci batch rejected sovereign.uci:\n{error}"));
        }
        let mut diff = String::new();
        for package in touched_packages(&self.0.uci_batch) {
            let live = redact_keys(section(&parts, &format!("live {package}")).unwrap_or(""));
            let staged = redact_keys(section(&parts, &format!("staged {package}")).unwrap_or(""));
            diff.push_str(&unified_diff(
                &live,
                &staged,
                &format!("live /etc/config/{package}"),
                &format!("after sovereign.uci: {package}"),
            ));
        }
        diff.push_str(&sysctl_diff(
            section(&parts, "live sysctl"),
            self.0.sysctl_conf.as_deref(),
        ));
        Ok(diff)
    }
}

/// The diff of the router's sysctl file (`None`: absent) -> the rendered one.
fn sysctl_diff(live: Option<&str>, rendered: Option<&str>) -> String {
    let (old_name, new_name) = (
        match live {
            Some(_) => format!("live {SYSCTL_FILE}"),
            None => format!("{SYSCTL_FILE} (absent)"),
        },
        match rendered {
            Some(_) => "rendered etc/sysctl.d/90-sovereign.conf".to_string(),
            None => format!("{SYSCTL_FILE} (removed: shared isolation)"),
        },
    );
    match (live, rendered) {
        (None, None) => String::new(),
        (Some(""), None) => format!("--- {old_name}\n+++ {new_name}\n(empty file removed)\n"),
        _ => unified_diff(
            live.unwrap_or(""),
            rendered.unwrap_or(""),
            &old_name,
            &new_name,
        ),
    }
}

/// Replace key values in `uci export` text with a short, non-reversible tag, so a
/// diff shows that a key changed without showing the key.
pub fn redact_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        let secret = ["option private_key ", "option preshared_key "]
            .iter()
            .find(|prefix| trimmed.starts_with(*prefix));
        match secret {
            Some(prefix) => {
                let value = trimmed[prefix.len()..].trim();
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                value.hash(&mut hasher);
                let indent = &line[..line.len() - trimmed.len()];
                out.push_str(&format!(
                    "{indent}{prefix}'(hidden #{:04x})'",
                    hasher.finish() & 0xffff
                ));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_come_from_every_command_form() {
        let batch = "# comment\nset network.wg0=interface\nadd_list firewall.sovereign_vpn.network='wg0'\n\
                     delete dhcp.sovereign_server\nadd firewall rule\n\n";
        assert_eq!(touched_packages(batch), vec!["dhcp", "firewall", "network"]);
    }

    fn sh(script: &str) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    const SYSCTL_SAMPLE: &str = "# comment = not a key\n; also a comment\n\n\
                                 net.ipv4.conf.lan4.proxy_arp=1\n  net.ipv4.conf.br-lan.proxy_arp = 1\n\
                                 -net/ipv4/conf/eth0.3/proxy_arp=1\n";

    #[test]
    fn the_shell_and_rust_read_the_same_sysctl_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.conf");
        std::fs::write(&file, SYSCTL_SAMPLE).unwrap();
        let keys = sh(&format!(
            "{SYSCTL_FUNCTIONS}sysctl_keys {} /nonexistent/file",
            file.display()
        ));
        let settings = sysctl_settings(SYSCTL_SAMPLE);
        assert_eq!(
            keys.lines().collect::<Vec<_>>(),
            settings.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>()
        );
        assert_eq!(
            settings,
            [
                ("net.ipv4.conf.lan4.proxy_arp".to_string(), "1".to_string()),
                ("net.ipv4.conf.br-lan.proxy_arp".into(), "1".into()),
                ("net/ipv4/conf/eth0.3/proxy_arp".into(), "1".into()),
            ]
        );
    }

    #[test]
    fn dropped_keys_map_to_the_interface_default() {
        let defaults = sh(&format!(
            "{SYSCTL_FUNCTIONS}for k in net.ipv4.conf.lan4.proxy_arp net.ipv4.conf.br-lan.proxy_arp \
             net/ipv4/conf/eth0.3/proxy_arp net.ipv4.conf.eth0.3.proxy_arp net.ipv4.ip_forward; \
             do echo \"$k -> $(sysctl_default_key $k)\"; done"
        ));
        assert_eq!(
            defaults,
            "net.ipv4.conf.lan4.proxy_arp -> net.ipv4.conf.default.proxy_arp\n\
             net.ipv4.conf.br-lan.proxy_arp -> net.ipv4.conf.default.proxy_arp\n\
             net/ipv4/conf/eth0.3/proxy_arp -> net/ipv4/conf/default/proxy_arp\n\
             net.ipv4.conf.eth0.3.proxy_arp -> net.ipv4.conf.default.proxy_arp\n\
             net.ipv4.ip_forward -> \n"
        );
    }

    #[test]
    fn keys_are_hidden_but_changes_stay_visible() {
        let a = redact_keys("config interface 'wg0'\n\toption private_key 'c2VjcmV0'\n");
        let b = redact_keys("config interface 'wg0'\n\toption private_key 'b3RoZXI='\n");
        assert!(!a.contains("c2VjcmV0"));
        assert!(a.contains("\toption private_key '(hidden #"));
        assert_ne!(a, b);
    }
}
