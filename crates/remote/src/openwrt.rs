//! OpenWrt: a `uci batch`, checked by `fw4 check` while still uncommitted, then
//! committed and applied by netifd (WireGuard peers via `wg syncconf` on current
//! releases) and `fw4 reload`.
//!
//! fw4 renders from the default UCI cursor, which includes uncommitted changes
//! (the deltas in /tmp/.uci). So validation stages the batch as deltas, runs
//! `fw4 check`, and reverts them if anything fails; nothing is committed or
//! reloaded until every check has passed. Because a commit takes every pending
//! delta, sovereign refuses to start when someone else left uncommitted changes.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

use crate::apply::lock_and_stage;
use crate::script::quote;
use crate::target::{OpenwrtConfig, TargetScripts, section, sections, unified_diff};

pub(crate) struct Scripts<'a>(pub &'a OpenwrtConfig);

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
             done\n",
            packages = self.packages()
        );
        script.push_str("ubus call network reload || status=1\n");
        script.push_str(&self.reload_wireguard());
        script.push_str("fw4 reload || status=1\n");
        if self.touches("dhcp") {
            script.push_str("/etc/init.d/dnsmasq reload || status=1\n");
        }
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
        vec![
            ("sovereign.uci".into(), self.0.uci_batch.clone()),
            ("rollback.sh".into(), self.restore_script(staging)),
        ]
    }

    fn validate(&self, staging: &str) -> String {
        let s = quote(staging);
        format!(
            "# sovereign: validate (openwrt)\n\
             discard() {{ for c in {packages}; do uci revert \"$c\" 2>/dev/null; done; }}\n\
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
             echo 'snapshot: /etc/config/{{{list}}}'\n",
            list = packages.replace(' ', ",")
        )
    }

    fn apply(&self, staging: &str) -> String {
        let s = quote(staging);
        let packages = self.packages();
        format!(
            "# sovereign: apply (openwrt)\n\
             set -e\n\
             for c in {packages}; do uci commit \"$c\"; done\n\
             {reload}\
             echo applied > {s}/applied\n\
             echo 'applied: committed {packages}; reloaded netifd, {wg} peers and fw4'\n",
            reload = self.reload_services(),
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
             uci -c {s}/conf -t {s}/delta batch < {s}/sovereign.uci > {s}/batch.log 2>&1; rc=$?\n\
             if [ $rc -ne 0 ] || grep -q '^uci: ' {s}/batch.log; then echo '### error'; cat {s}/batch.log; exit 0; fi\n\
             uci -c {s}/conf -t {s}/delta commit\n\
             for c in {packages}; do\n\
             \techo \"### live $c\"; uci -t {s}/nodelta export \"$c\" 2>/dev/null\n\
             \techo \"### staged $c\"; uci -c {s}/conf -t {s}/delta export \"$c\"\n\
             done\n",
            packages = self.packages()
        )
    }

    fn diff(&self, preview: &str) -> Result<String, String> {
        let parts = sections(preview);
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
        Ok(diff)
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

    #[test]
    fn keys_are_hidden_but_changes_stay_visible() {
        let a = redact_keys("config interface 'wg0'\n\toption private_key 'c2VjcmV0'\n");
        let b = redact_keys("config interface 'wg0'\n\toption private_key 'b3RoZXI='\n");
        assert!(!a.contains("c2VjcmV0"));
        assert!(a.contains("\toption private_key '(hidden #"));
        assert_ne!(a, b);
    }
}
