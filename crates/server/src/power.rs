//! The power policy of an always-on Mac: what `pmset` must say, what contradicts it,
//! and what FileVault means for an unattended restart. Pure; the probes live in
//! [`crate::daemon`].

use std::collections::BTreeMap;

use serde::Serialize;

use crate::runner::Command;

/// `pmset` settings of an always-on server, in the order they are applied:
/// never sleep the system, boot again after a power failure, wake for network access.
pub const ALWAYS_ON: [(&str, &str, &str); 3] = [
    ("sleep", "0", "system sleep is off"),
    (
        "autorestart",
        "1",
        "the Mac starts again by itself after a power failure",
    ),
    (
        "womp",
        "1",
        "a network packet wakes it (Wake for network access)",
    ),
];

/// What `pmset -g` and `fdesetup status` report, as far as always-on cares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PowerStatus {
    /// The [`ALWAYS_ON`] keys as `pmset -g` shows them; a key the Mac lacks is absent.
    pub settings: BTreeMap<String, String>,
    /// `None` when `fdesetup status` could not tell.
    pub filevault: Option<bool>,
    /// One line per setting that contradicts always-on.
    pub contradictions: Vec<String>,
}

impl PowerStatus {
    pub fn new(pmset: &BTreeMap<String, String>, filevault: Option<bool>) -> PowerStatus {
        let settings: BTreeMap<String, String> = ALWAYS_ON
            .iter()
            .filter_map(|(key, _, _)| pmset.get(*key).map(|v| (key.to_string(), v.clone())))
            .collect();
        let contradictions = ALWAYS_ON
            .iter()
            .filter_map(|(key, wanted, meaning)| {
                let current = settings.get(*key)?;
                (current != wanted).then(|| {
                    format!(
                        "pmset {key} is {current}, not {wanted} (so not: {meaning}); \
                         `sudo sovereign server install --power` sets it"
                    )
                })
            })
            .collect();
        PowerStatus {
            settings,
            filevault,
            contradictions,
        }
    }

    /// The values to record before `--power` changes them: only those that differ.
    pub fn previous_values(&self) -> Vec<(String, String)> {
        ALWAYS_ON
            .iter()
            .filter_map(|(key, wanted, _)| {
                let current = self.settings.get(*key)?;
                (current != wanted).then(|| (key.to_string(), current.clone()))
            })
            .collect()
    }
}

/// `pmset -a` with the always-on values for `keys` (all of [`ALWAYS_ON`] that differ).
pub fn apply_command(keys: &[(String, String)]) -> Option<Command> {
    let mut args = vec!["-a".to_string()];
    for (key, _) in keys {
        let wanted = ALWAYS_ON.iter().find(|(k, _, _)| k == key)?.1;
        args.push(key.clone());
        args.push(wanted.to_string());
    }
    (args.len() > 1).then(|| Command::new("pmset", args))
}

/// `pmset -a` putting back what install recorded.
pub fn restore_command(previous: &[(String, String)]) -> Option<Command> {
    let mut args = vec!["-a".to_string()];
    for (key, value) in previous {
        args.push(key.clone());
        args.push(value.clone());
    }
    (args.len() > 1).then(|| Command::new("pmset", args))
}

/// The policy as `plan` shows it, one line each. Only the daemon's install (root
/// already) applies it; an agent install runs as the user and leaves pmset alone.
pub fn policy_lines(daemon: bool) -> Vec<String> {
    let mut lines: Vec<String> = ALWAYS_ON
        .iter()
        .map(|(key, value, meaning)| format!("pmset {key} {value}: {meaning}"))
        .collect();
    lines.push(if daemon {
        "applied only on request: `sudo sovereign server install --power` (uninstall restores \
         the previous values)"
            .into()
    } else {
        "not applied by the agent's install (it runs without root): `sudo pmset -a sleep 0 \
         autorestart 1 womp 1`, or use server.service = \"daemon\" with `install --power`"
            .into()
    });
    lines
}

/// What FileVault means for a Mac that has to come back on its own. sovereign never
/// turns FileVault off or stores its password.
pub fn filevault_note(filevault: Option<bool>) -> String {
    let consequence = "after a power cut the Mac waits at the pre-boot unlock screen until \
                       someone types a password there, and nothing (no daemon, no network) \
                       runs before that. For a planned restart, `sudo fdesetup authrestart` \
                       unlocks the next boot once, so the daemon comes back unattended.";
    match filevault {
        Some(true) => format!("FileVault is on: {consequence}"),
        Some(false) => "FileVault is off: the daemon starts at boot with no one at the Mac. \
                        (With FileVault on, a power cut would need someone to unlock it at \
                        pre-boot; planned restarts could use `sudo fdesetup authrestart`.)"
            .into(),
        None => format!("If FileVault is on, {consequence}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pmset(sleep: &str, autorestart: &str, womp: &str) -> BTreeMap<String, String> {
        [
            ("sleep", sleep),
            ("autorestart", autorestart),
            ("womp", womp),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn every_setting_that_contradicts_always_on_is_named() {
        let status = PowerStatus::new(&pmset("1", "0", "0"), Some(true));
        assert_eq!(status.contradictions.len(), 3);
        assert!(status.contradictions[0].starts_with("pmset sleep is 1"));
        assert_eq!(
            apply_command(&status.previous_values())
                .unwrap()
                .to_string(),
            "pmset -a sleep 0 autorestart 1 womp 1"
        );
        assert_eq!(
            restore_command(&status.previous_values())
                .unwrap()
                .to_string(),
            "pmset -a sleep 1 autorestart 0 womp 0"
        );
    }

    #[test]
    fn an_always_on_mac_needs_no_change() {
        let status = PowerStatus::new(&pmset("0", "1", "1"), Some(false));
        assert!(status.contradictions.is_empty());
        assert_eq!(apply_command(&status.previous_values()), None);
        // A Mac without autorestart (no such setting) is not flagged for it.
        let mut partial = pmset("10", "1", "1");
        partial.remove("autorestart");
        let status = PowerStatus::new(&partial, None);
        assert_eq!(status.contradictions.len(), 1);
        assert_eq!(
            status.previous_values(),
            [("sleep".to_string(), "10".to_string())]
        );
    }

    #[test]
    fn the_filevault_note_says_how_to_restart_without_weakening_it() {
        let note = filevault_note(Some(true));
        assert!(note.contains("fdesetup authrestart") && note.contains("pre-boot"));
        assert!(!note.to_lowercase().contains("disable"));
    }
}
