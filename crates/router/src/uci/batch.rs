//! `uci batch` input: one command per line, arguments quoted like a shell.

use super::UciError;

/// How a command names its section: `wg0` or `@device[0]` / `@zone[-1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionRef {
    Named(String),
    Indexed { kind: String, index: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `set package.section=type`
    SetSection {
        package: String,
        section: SectionRef,
        kind: String,
    },
    /// `set package.section.option=value`
    SetOption {
        package: String,
        section: SectionRef,
        option: String,
        value: String,
    },
    /// `add package type` (an anonymous section)
    Add {
        package: String,
        kind: String,
    },
    AddList {
        package: String,
        section: SectionRef,
        option: String,
        value: String,
    },
    DelList {
        package: String,
        section: SectionRef,
        option: String,
        value: String,
    },
    /// `delete package.section[.option]`
    Delete {
        package: String,
        section: SectionRef,
        option: Option<String>,
    },
    /// `rename package.section[.option]=name`
    Rename {
        package: String,
        section: SectionRef,
        option: Option<String>,
        new_name: String,
    },
    /// `reorder package.section=index`
    Reorder {
        package: String,
        section: SectionRef,
        index: usize,
    },
    Commit {
        package: Option<String>,
    },
}

/// Parse a whole batch; every command keeps its 1-based line number.
pub fn parse_batch(text: &str) -> Result<Vec<(usize, Command)>, UciError> {
    let mut commands = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let error = |message: String| UciError {
            line: line_no,
            message,
        };
        let words = split_words(line).map_err(error)?;
        if words.is_empty() {
            continue;
        }
        let command = parse_command(&words).map_err(error)?;
        commands.push((line_no, command));
    }
    Ok(commands)
}

fn parse_command(words: &[String]) -> Result<Command, String> {
    let verb = words[0].as_str();
    let args = &words[1..];
    let one_arg = || -> Result<&str, String> {
        match args {
            [arg] => Ok(arg.as_str()),
            _ => Err(format!(
                "`{verb}` takes exactly one argument, got {}",
                args.len()
            )),
        }
    };
    match verb {
        "commit" => match args {
            [] => Ok(Command::Commit { package: None }),
            [package] => Ok(Command::Commit {
                package: Some(package.clone()),
            }),
            _ => Err("`commit` takes at most one package".into()),
        },
        "add" => match args {
            [package, kind] => {
                check_name(package, "package")?;
                check_name(kind, "section type")?;
                Ok(Command::Add {
                    package: package.clone(),
                    kind: kind.clone(),
                })
            }
            _ => Err("`add` takes a package and a section type".into()),
        },
        "set" => {
            let (ptr, value) = split_value(one_arg()?)?;
            let value = value.ok_or("`set` needs `=value`")?;
            match ptr {
                Ptr {
                    package,
                    section,
                    option: None,
                } => {
                    check_name(&value, "section type")?;
                    Ok(Command::SetSection {
                        package,
                        section,
                        kind: value,
                    })
                }
                Ptr {
                    package,
                    section,
                    option: Some(option),
                } => Ok(Command::SetOption {
                    package,
                    section,
                    option,
                    value,
                }),
            }
        }
        "add_list" | "del_list" => {
            let (ptr, value) = split_value(one_arg()?)?;
            let value = value.ok_or_else(|| format!("`{verb}` needs `=value`"))?;
            let option = ptr
                .option
                .ok_or_else(|| format!("`{verb}` needs package.section.option"))?;
            let (package, section) = (ptr.package, ptr.section);
            Ok(if verb == "add_list" {
                Command::AddList {
                    package,
                    section,
                    option,
                    value,
                }
            } else {
                Command::DelList {
                    package,
                    section,
                    option,
                    value,
                }
            })
        }
        "delete" | "del" => {
            let (ptr, value) = split_value(one_arg()?)?;
            if value.is_some() {
                return Err("`delete` takes no `=value` (use del_list for list entries)".into());
            }
            Ok(Command::Delete {
                package: ptr.package,
                section: ptr.section,
                option: ptr.option,
            })
        }
        "rename" | "ren" => {
            let (ptr, value) = split_value(one_arg()?)?;
            let new_name = value.ok_or("`rename` needs `=new_name`")?;
            check_name(&new_name, "name")?;
            Ok(Command::Rename {
                package: ptr.package,
                section: ptr.section,
                option: ptr.option,
                new_name,
            })
        }
        "reorder" => {
            let (ptr, value) = split_value(one_arg()?)?;
            if ptr.option.is_some() {
                return Err("`reorder` moves sections, not options".into());
            }
            let index = value
                .and_then(|v| v.parse().ok())
                .ok_or("`reorder` needs `=index` (a number)")?;
            Ok(Command::Reorder {
                package: ptr.package,
                section: ptr.section,
                index,
            })
        }
        other => Err(format!(
            "unknown command `{other}` (expected set, add, add_list, del_list, delete, rename, reorder or commit)"
        )),
    }
}

struct Ptr {
    package: String,
    section: SectionRef,
    option: Option<String>,
}

fn split_value(arg: &str) -> Result<(Ptr, Option<String>), String> {
    let (path, value) = match arg.split_once('=') {
        Some((path, value)) => (path, Some(value.to_string())),
        None => (arg, None),
    };
    let parts: Vec<&str> = path.split('.').collect();
    let (package, section, option) = match parts.as_slice() {
        [package, section] => (*package, *section, None),
        [package, section, option] => (*package, *section, Some(option.to_string())),
        _ => {
            return Err(format!(
                "`{path}` is not package.section or package.section.option"
            ));
        }
    };
    check_name(package, "package")?;
    if let Some(option) = &option {
        check_name(option, "option")?;
    }
    Ok((
        Ptr {
            package: package.to_string(),
            section: parse_section(section)?,
            option,
        },
        value,
    ))
}

fn parse_section(text: &str) -> Result<SectionRef, String> {
    let Some(rest) = text.strip_prefix('@') else {
        check_name(text, "section")?;
        return Ok(SectionRef::Named(text.to_string()));
    };
    let (kind, index) = rest
        .strip_suffix(']')
        .and_then(|r| r.split_once('['))
        .ok_or_else(|| format!("`{text}` is not @type[index]"))?;
    check_name(kind, "section type")?;
    let index = index
        .parse()
        .map_err(|_| format!("`{index}` is not an index in `{text}`"))?;
    Ok(SectionRef::Indexed {
        kind: kind.to_string(),
        index,
    })
}

/// UCI identifiers: letters, digits and '_' (types and packages also allow '-').
fn check_name(name: &str, what: &str) -> Result<(), String> {
    let dash = matches!(what, "section type" | "package");
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || (dash && c == '-'));
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` is not a valid UCI {what} name"))
    }
}

/// Shell-like words: '…' is literal, "…" allows \" and \\, and a backslash
/// outside quotes escapes the next character. Adjacent pieces join. An unquoted
/// `#` ends the line, even inside a word, as in libuci's `parse_str`.
pub(super) fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if let Some(word) = current.take() {
                    words.push(word);
                }
            }
            '\'' => {
                let word = current.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                let word = current.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => word.push(c),
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => current.get_or_insert_with(String::new).push(c),
                None => return Err("a trailing backslash".into()),
            },
            '#' => break,
            c => current.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(word) = current {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_join_quoted_pieces() {
        assert_eq!(
            split_words(r#"set a.b.c='it'\''s' "x""#).unwrap(),
            vec!["set", "a.b.c=it's", "x"]
        );
        assert!(split_words("set a.b.c='open").is_err());
        assert_eq!(
            split_words("option input 'RE#JECT' # a comment").unwrap(),
            vec!["option", "input", "RE#JECT"]
        );
        assert_eq!(
            split_words("option name lan#x").unwrap(),
            vec!["option", "name", "lan"]
        );
    }

    #[test]
    fn commands_parse_with_line_numbers() {
        let text = "set network.wg0=interface\n\nset network.wg0.proto='wireguard'\ndel_list network.@device[0].ports='lan4'\ncommit network\n";
        let commands = parse_batch(text).unwrap();
        assert_eq!(commands.len(), 4);
        assert_eq!(commands[1].0, 3);
        assert_eq!(
            commands[2].1,
            Command::DelList {
                package: "network".into(),
                section: SectionRef::Indexed {
                    kind: "device".into(),
                    index: 0
                },
                option: "ports".into(),
                value: "lan4".into()
            }
        );
        let err = parse_batch("set network.wg0=interface\nfrobnicate x\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("unknown command"), "{err}");
        assert!(parse_batch("set network.wg-0.proto=x").is_err());
    }
}
