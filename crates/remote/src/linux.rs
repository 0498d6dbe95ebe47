//! The plain Linux router: `table inet sovereign` via `nft -f`, peers via `wg syncconf`.

use crate::apply::lock_and_stage;
use crate::script::quote;
use crate::target::{LinuxConfig, TargetScripts, section, sections, unified_diff};
use crate::wgconf;

/// The one nftables table sovereign owns on a Linux router.
pub const TABLE: &str = "inet sovereign";

pub(crate) struct Scripts<'a>(pub &'a LinuxConfig);

impl Scripts<'_> {
    fn wg(&self) -> String {
        quote(&self.0.wg_interface)
    }
}

impl TargetScripts for Scripts<'_> {
    fn prepare(&self, lock: bool) -> String {
        let wg = self.wg();
        let mut script = format!(
            "# sovereign: prepare (linux)\n\
             missing=\n\
             for tool in nft wg mktemp; do command -v \"$tool\" >/dev/null 2>&1 || missing=\"$missing $tool\"; done\n\
             if [ -n \"$missing\" ]; then echo \"missing=${{missing# }}\"; exit 0; fi\n\
             if [ \"$(id -u)\" != 0 ]; then echo 'problem=the ssh user is not root on the router; nft and wg need root (use --ssh root@HOST)'; exit 0; fi\n\
             if ! wg show {wg} >/dev/null 2>&1; then echo 'problem=the WireGuard interface {wg} does not exist on the router; run the rendered setup.sh there once (it creates the link), then apply'; exit 0; fi\n\
             command -v setsid >/dev/null 2>&1 || echo 'warning=setsid is missing on the router; the rollback timer runs under nohup'\n"
        );
        script.push_str(&lock_and_stage(lock));
        script
    }

    fn missing_tools_hint(&self) -> &'static str {
        "Install them on the router (Debian: apt-get install nftables wireguard-tools)."
    }

    fn files(&self, staging: &str) -> Vec<(String, String)> {
        vec![
            ("nftables.nft".into(), self.0.nft_ruleset.clone()),
            ("wg.conf".into(), self.0.wg_config.clone()),
            ("rollback.sh".into(), self.restore_script(staging)),
        ]
    }

    fn validate(&self, staging: &str) -> String {
        let s = quote(staging);
        format!(
            "# sovereign: validate (linux)\n\
             nft -c -f {s}/nftables.nft 2>&1 || exit 1\n\
             echo 'nft -c: the staged ruleset passes nftables check mode'\n"
        )
    }

    fn snapshot(&self, staging: &str) -> String {
        let (s, wg) = (quote(staging), self.wg());
        format!(
            "# sovereign: snapshot (linux)\n\
             set -e\n\
             umask 077\n\
             if nft list table {TABLE} > {s}/snapshot.nft 2>/dev/null; then what='table {TABLE}'; else : > {s}/snapshot.nft; what='no table yet'; fi\n\
             wg showconf {wg} > {s}/snapshot.wg\n\
             echo \"snapshot: $what, {wg} with $(grep -c '^\\[Peer\\]' {s}/snapshot.wg || true) peers\"\n"
        )
    }

    fn apply(&self, staging: &str) -> String {
        let (s, wg) = (quote(staging), self.wg());
        format!(
            "# sovereign: apply (linux)\n\
             set -e\n\
             nft -f {s}/nftables.nft\n\
             wg syncconf {wg} {s}/wg.conf\n\
             echo applied > {s}/applied\n\
             echo 'applied: table {TABLE} replaced in one transaction, {wg} peers synced (sessions kept)'\n"
        )
    }

    fn discard(&self, _staging: &str) -> String {
        String::new()
    }

    fn preview(&self, staging: &str) -> String {
        let (s, wg) = (quote(staging), self.wg());
        format!(
            "# sovereign: preview (linux)\n\
             echo '### check'\n\
             nft -c -f {s}/nftables.nft 2>&1 && echo ok\n\
             echo '### live-nft'\n\
             nft list table {TABLE} 2>/dev/null\n\
             if command -v unshare >/dev/null 2>&1 && unshare --net sh -c 'nft -f \"$1\" && nft list table {TABLE}' sh {s}/nftables.nft > {s}/canonical.nft 2>/dev/null; then\n\
             \techo '### staged-nft'\n\
             \tcat {s}/canonical.nft\n\
             fi\n\
             echo '### live-wg'\n\
             wg showconf {wg} 2>/dev/null | sed -e 's/^PrivateKey = .*/PrivateKey = (hidden)/' -e 's/^PresharedKey = .*/PresharedKey = (hidden)/'\n"
        )
    }

    fn diff(&self, preview: &str) -> Result<String, String> {
        let parts = sections(preview);
        let check = section(&parts, "check").unwrap_or("");
        if check.trim_end().lines().last() != Some("ok") {
            return Err(format!("nft -c rejected the staged ruleset:\n{check}"));
        }
        let live_nft = without_counter_values(section(&parts, "live-nft").unwrap_or(""));
        // Without `unshare` on the router there is no canonical listing of the staged
        // table, so the diff compares against the rendered text as written.
        let (staged_nft, staged_name) = match section(&parts, "staged-nft") {
            Some(canonical) => (
                without_counter_values(canonical),
                "rendered (as nft lists it)",
            ),
            None => (
                self.0.nft_ruleset.clone(),
                "rendered nftables.nft (not canonical)",
            ),
        };
        let mut diff = unified_diff(
            &live_nft,
            &staged_nft,
            &format!("live table {TABLE}"),
            staged_name,
        );
        let live_wg = wgconf::summary(section(&parts, "live-wg").unwrap_or(""))
            .map_err(|e| format!("cannot read the router's live WireGuard config: {e}"))?;
        let staged_wg = wgconf::summary(&self.0.wg_config)
            .map_err(|e| format!("the rendered WireGuard config is malformed: {e}"))?;
        let live_wg = wgconf::without_learned_endpoints(live_wg, &staged_wg);
        diff.push_str(&unified_diff(
            &lines(&live_wg),
            &lines(&staged_wg),
            &format!("live {}", self.0.wg_interface),
            "rendered wg.conf",
        ));
        Ok(diff)
    }
}

impl Scripts<'_> {
    fn restore_script(&self, staging: &str) -> String {
        let (s, wg) = (quote(staging), self.wg());
        format!(
            "#!/bin/sh\n\
             # sovereign: restore the Linux router's config from before the apply (idempotent)\n\
             status=0\n\
             {{ echo 'table {TABLE}'; echo 'delete table {TABLE}'; cat {s}/snapshot.nft; }} > {s}/restore.nft\n\
             nft -f {s}/restore.nft || status=1\n\
             wg syncconf {wg} {s}/snapshot.wg || status=1\n\
             exit $status\n"
        )
    }
}

fn lines(items: &[String]) -> String {
    items.iter().map(|l| format!("{l}\n")).collect()
}

/// `counter packets 12 bytes 3456` -> `counter`, so traffic does not show as drift.
pub fn without_counter_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut words: Vec<&str> = Vec::new();
        let mut iter = line.split(' ').peekable();
        while let Some(word) = iter.next() {
            words.push(word);
            if word == "counter" && iter.peek() == Some(&"packets") {
                // Skip `packets N bytes M`.
                for _ in 0..4 {
                    iter.next();
                }
            }
        }
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_values_are_dropped_and_nothing_else() {
        let text = "\t\tudp dport 51820 counter packets 3 bytes 180 accept comment \"x\"\n\t\tcounter drop\n";
        assert_eq!(
            without_counter_values(text),
            "\t\tudp dport 51820 counter accept comment \"x\"\n\t\tcounter drop\n"
        );
    }
}
