//! The `/etc/config/<package>` syntax: `config type ['name']`, `option key 'value'`,
//! `list key 'value'`, `#` comments and an optional `package name` line.

use super::batch::split_words;
use super::{Package, Section, UciError, Value};

pub fn parse_config_file(text: &str) -> Result<Package, UciError> {
    let mut package = Package::default();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let error = |message: String| UciError {
            line: line_no,
            message,
        };
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let words = split_words(trimmed).map_err(error)?;
        match words.as_slice() {
            [] => {}
            [keyword, _] if keyword == "package" => {}
            [keyword, kind] if keyword == "config" => package.sections.push(Section {
                name: None,
                kind: checked(kind, "section type").map_err(error)?,
                options: Vec::new(),
            }),
            [keyword, kind, name] if keyword == "config" => package.sections.push(Section {
                name: Some(checked(name, "section name").map_err(error)?),
                kind: checked(kind, "section type").map_err(error)?,
                options: Vec::new(),
            }),
            [keyword, name, value] if keyword == "option" || keyword == "list" => {
                let name = checked(name, "option name").map_err(error)?;
                let Some(section) = package.sections.last_mut() else {
                    return Err(error(format!(
                        "`{keyword} {name}` before any `config` line"
                    )));
                };
                let existing = section.options.iter_mut().find(|(n, _)| *n == name);
                match (keyword.as_str(), existing) {
                    ("option", Some((_, v))) => *v = Value::Single(value.clone()),
                    ("option", None) => section.options.push((name, Value::Single(value.clone()))),
                    (_, Some((_, Value::List(items)))) => items.push(value.clone()),
                    (_, Some(_)) => {
                        return Err(error(format!(
                            "`list {name}` after `option {name}` in the same section"
                        )));
                    }
                    (_, None) => section
                        .options
                        .push((name, Value::List(vec![value.clone()]))),
                }
            }
            _ => {
                return Err(error(format!(
                    "expected `config type ['name']`, `option name 'value'` or `list name 'value'`, found `{trimmed}`"
                )));
            }
        }
    }
    Ok(package)
}

fn checked(name: &str, what: &str) -> Result<String, String> {
    let dash = what == "section type";
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || (dash && c == '-'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!("`{name}` is not a valid {what}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_round_trips() {
        let text = "package network\n\n# a comment\nconfig interface 'lan'\n\toption device 'br-lan'\n\tlist dns '1.1.1.1'\n\tlist dns \"9.9.9.9\"\n\nconfig device\n\toption name br-lan\n";
        let p = parse_config_file(text).unwrap();
        assert_eq!(p.sections.len(), 2);
        assert_eq!(
            p.section("lan").unwrap().get_all("dns"),
            vec!["1.1.1.1", "9.9.9.9"]
        );
        assert_eq!(p.sections[1].get_str("name"), Some("br-lan"));
        assert_eq!(parse_config_file(&p.to_config_text()).unwrap(), p);
    }

    #[test]
    fn errors_name_the_line() {
        let err =
            parse_config_file("config zone\n\toption name 'lan'\n\tbogus line here\n").unwrap_err();
        assert_eq!(err.line, 3);
        let err = parse_config_file("option name 'x'\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.message.contains("before any"), "{err}");
        let err = parse_config_file("config rule\n\toption name 'it\n").unwrap_err();
        assert!(err.message.contains("unterminated"), "{err}");
        let p =
            parse_config_file("config zone # the lan\n\toption input ACCEPT # trailing\n").unwrap();
        assert_eq!(p.sections[0].get_str("input"), Some("ACCEPT"));
    }
}
