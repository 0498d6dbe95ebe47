//! A minimal UCI (`/etc/config/*`) parser: `config TYPE ['NAME']`, `option KEY VALUE`,
//! `list KEY VALUE`, `#` comments, single/double quotes. Errors name the line.
//! (The router crate may grow a fuller one; this is what the verifier needs.)

use crate::VerifyError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: String,
    pub name: Option<String>,
    pub line: usize,
    /// Options and lists in file order; a list contributes one entry per value.
    pub options: Vec<(String, String)>,
}

impl Section {
    /// The last value of an option.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of an option or list, each also split on whitespace (UCI lists are
    /// often written as one space-separated option).
    pub fn values(&self, key: &str) -> Vec<String> {
        self.options
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .collect()
    }
}

pub fn parse(file: &str, text: &str) -> Result<Vec<Section>, VerifyError> {
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |message: String| VerifyError::Uci {
            file: file.to_string(),
            line,
            message,
        };
        let words = split_words(raw).map_err(err)?;
        let Some(keyword) = words.first() else {
            continue;
        };
        match keyword.as_str() {
            "config" => {
                let kind = words
                    .get(1)
                    .ok_or_else(|| err("`config` needs a section type".into()))?;
                if words.len() > 3 {
                    return Err(err(format!(
                        "unexpected `{}` after the section name",
                        words[3]
                    )));
                }
                sections.push(Section {
                    kind: kind.clone(),
                    name: words.get(2).cloned(),
                    line,
                    options: Vec::new(),
                });
            }
            "option" | "list" => {
                let section = sections
                    .last_mut()
                    .ok_or_else(|| err(format!("`{keyword}` before any `config` section")))?;
                let (Some(key), Some(value)) = (words.get(1), words.get(2)) else {
                    return Err(err(format!("`{keyword}` needs a name and a value")));
                };
                if words.len() > 3 {
                    return Err(err(format!(
                        "unexpected `{}` after the value (quote values with spaces)",
                        words[3]
                    )));
                }
                section.options.push((key.clone(), value.clone()));
            }
            "package" => {}
            other => {
                return Err(err(format!(
                    "unknown keyword `{other}` (expected config, option or list)"
                )));
            }
        }
    }
    Ok(sections)
}

fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        if c == '#' {
            break;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '\'' | '"' => loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => word.extend(chars.next()),
                        Some(ch) => word.push(ch),
                        None => return Err(format!("unterminated {c} quote")),
                    }
                },
                '\\' => word.extend(chars.next()),
                _ => word.push(c),
            }
        }
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_options_and_lists() {
        let text = "# comment\nconfig zone 'vpn'\n\toption name vpn\n\tlist network 'wg0'\n\toption input \"REJECT\" # trailing\n\nconfig rule\n\toption dest_port '80 443'\n";
        let s = parse("firewall", text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name.as_deref(), Some("vpn"));
        assert_eq!(s[0].get("input"), Some("REJECT"));
        assert_eq!(s[0].values("network"), vec!["wg0"]);
        assert_eq!(s[1].values("dest_port"), vec!["80", "443"]);
        assert_eq!(s[1].line, 7);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("firewall", "config zone\n\toption name 'vpn\n").unwrap_err();
        assert!(matches!(e, VerifyError::Uci { line: 2, .. }), "{e}");
        let e = parse("network", "option a b\n").unwrap_err();
        assert!(matches!(e, VerifyError::Uci { line: 1, .. }));
        let e = parse("network", "config x\nfoo bar\n").unwrap_err();
        assert!(e.to_string().contains("unknown keyword"));
    }
}
