//! Comment-preserving edits of `sovereign.toml`, for commands that change the file
//! (`sovereign peer ...`). The user's comments and layout survive every edit.

use crate::config::Peer;
#[cfg(test)]
use crate::config::PeerStatus;

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("the file is not valid TOML: {0}")]
    Parse(#[from] toml_edit::TomlError),
    #[error("`peer` in the file is not an array of tables ([[peer]])")]
    PeerNotArrayOfTables,
}

/// Insert `peer`, or update the `[[peer]]` entry with the same name, and return the new text.
pub fn upsert_peer(text: &str, peer: &Peer) -> Result<String, EditError> {
    let mut document: toml_edit::DocumentMut = text.parse()?;
    let item = document
        .entry("peer")
        .or_insert_with(|| toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()));
    let tables = item
        .as_array_of_tables_mut()
        .ok_or(EditError::PeerNotArrayOfTables)?;
    let existing = tables
        .iter_mut()
        .find(|t| t.get("name").and_then(|v| v.as_str()) == Some(peer.name.as_str()));
    match existing {
        Some(table) => fill(table, peer),
        None => {
            let mut table = toml_edit::Table::new();
            fill(&mut table, peer);
            tables.push(table);
        }
    }
    Ok(document.to_string())
}

fn fill(table: &mut toml_edit::Table, peer: &Peer) {
    table["name"] = toml_edit::value(peer.name.as_str());
    table["address"] = toml_edit::value(peer.address.to_string());
    table["public_key"] = toml_edit::value(peer.public_key.as_str());
    if !peer.created.is_empty() {
        table["created"] = toml_edit::value(peer.created.as_str());
    }
    table["status"] = toml_edit::value(peer.status.as_str());
    table["preshared_key"] = toml_edit::value(peer.preshared_key);
    if peer.changed.is_empty() {
        table.remove("changed");
    } else {
        table["changed"] = toml_edit::value(peer.changed.as_str());
    }
    match &peer.expires {
        Some(expires) => table["expires"] = toml_edit::value(expires.as_str()),
        None => {
            table.remove("expires");
        }
    }
}

/// Give the `[[peer]]` entry named `old` the contents of `peer` (its new name
/// included), in place, so its comments and position survive a rename.
pub fn rename_peer(text: &str, old: &str, peer: &Peer) -> Result<String, EditError> {
    let mut document: toml_edit::DocumentMut = text.parse()?;
    let mut found = false;
    if let Some(item) = document.get_mut("peer") {
        let tables = item
            .as_array_of_tables_mut()
            .ok_or(EditError::PeerNotArrayOfTables)?;
        if let Some(table) = tables
            .iter_mut()
            .find(|t| t.get("name").and_then(|v| v.as_str()) == Some(old))
        {
            fill(table, peer);
            found = true;
        }
    }
    if found {
        Ok(document.to_string())
    } else {
        upsert_peer(text, peer)
    }
}

/// Remove the `[[peer]]` entry named `name` (`peer purge`).
pub fn remove_peer(text: &str, name: &str) -> Result<String, EditError> {
    let mut document: toml_edit::DocumentMut = text.parse()?;
    if let Some(item) = document.get_mut("peer") {
        let tables = item
            .as_array_of_tables_mut()
            .ok_or(EditError::PeerNotArrayOfTables)?;
        tables.retain(|t| t.get("name").and_then(|v| v.as_str()) != Some(name));
    }
    Ok(document.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, last: u8) -> Peer {
        Peer {
            name: name.into(),
            address: std::net::Ipv4Addr::new(10, 10, 10, last),
            public_key: "YNqHbfBQKaGvzefSSuufuJpMWOX+X1ApM6aeN2xoU2s=".into(),
            created: "2026-11-29T00:00:00Z".into(),
            status: PeerStatus::Active,
            preshared_key: true,
            changed: String::new(),
            expires: None,
        }
    }

    #[test]
    fn renames_in_place_and_removes() {
        let text = upsert_peer(
            "[wan]\nendpoint = \"vpn.example.com:51820\"\n",
            &peer("laptop", 2),
        )
        .unwrap();
        // Revoked, so the shared test key does not count as a duplicate.
        let mut phone = peer("phone", 3);
        phone.status = PeerStatus::Revoked;
        let text = upsert_peer(&text, &phone).unwrap();
        let renamed = rename_peer(&text, "laptop", &peer("work-laptop", 2)).unwrap();
        let parsed = crate::parse(&renamed, std::path::Path::new("t.toml")).unwrap();
        let names: Vec<_> = parsed.peers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["work-laptop", "phone"]);
        let removed = remove_peer(&renamed, "phone").unwrap();
        let parsed = crate::parse(&removed, std::path::Path::new("t.toml")).unwrap();
        assert_eq!(parsed.peers.len(), 1);
    }

    #[test]
    fn appends_then_updates_in_place_and_keeps_comments() {
        let text = "# my router\n[wan]\nendpoint = \"vpn.example.com:51820\" # public\n";
        let once = upsert_peer(text, &peer("laptop", 2)).unwrap();
        let twice = upsert_peer(&once, &peer("phone", 3)).unwrap();
        let mut revoked = peer("laptop", 2);
        revoked.status = PeerStatus::Revoked;
        let updated = upsert_peer(&twice, &revoked).unwrap();
        assert!(updated.starts_with("# my router\n"));
        assert!(updated.contains("# public"));
        assert_eq!(updated.matches("[[peer]]").count(), 2);
        assert!(updated.contains("status = \"revoked\""));
        let parsed = crate::parse(&updated, std::path::Path::new("t.toml")).unwrap();
        assert_eq!(parsed.peers.len(), 2);
        assert_eq!(parsed.peers[0].status, PeerStatus::Revoked);
    }
}
