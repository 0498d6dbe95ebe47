//! OpenWrt's UCI, enough to check our output without a router: the batch syntax
//! (`uci batch` input), the `/etc/config/*` file syntax, an in-memory config that
//! batches apply to, and an allow-list of the section types and options OpenWrt
//! knows for `network`, `firewall` and `dhcp` (research/anchors.md §B).
//!
//! Applying is strict: where `uci batch` would print an error and carry on (a
//! missing section, say), [`Config::apply`] returns the error, so a batch that
//! passes here runs silently on a router.

mod batch;
mod file;
mod schema;

use std::collections::BTreeMap;
use std::fmt;

pub use batch::{Command, SectionRef, parse_batch};
pub use file::parse_config_file;
pub use schema::{Unknown, unknown_entries};

/// A set of packages (`network`, `firewall`, ...) by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub packages: BTreeMap<String, Package>,
}

/// One `/etc/config/<name>` file: its sections in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Package {
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// `None` for an anonymous section (addressed as `@type[index]`).
    pub name: Option<String>,
    pub kind: String,
    /// Options in the order they were set.
    pub options: Vec<(String, Value)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Single(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct UciError {
    /// 1-based line of the batch or config file.
    pub line: usize,
    pub message: String,
}

impl Section {
    pub fn get(&self, option: &str) -> Option<&Value> {
        self.options
            .iter()
            .find(|(name, _)| name == option)
            .map(|(_, v)| v)
    }

    /// A single option's value (the first entry for a list).
    pub fn get_str(&self, option: &str) -> Option<&str> {
        match self.get(option)? {
            Value::Single(s) => Some(s),
            Value::List(items) => items.first().map(String::as_str),
        }
    }

    /// Every value of an option: one for a single option, all for a list.
    pub fn get_all(&self, option: &str) -> Vec<&str> {
        match self.get(option) {
            Some(Value::Single(s)) => vec![s.as_str()],
            Some(Value::List(items)) => items.iter().map(String::as_str).collect(),
            None => Vec::new(),
        }
    }
}

impl Package {
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| s.name.as_deref() == Some(name))
    }

    pub fn sections_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Section> + 'a {
        self.sections.iter().filter(move |s| s.kind == kind)
    }

    fn resolve(&self, section: &SectionRef) -> Option<usize> {
        match section {
            SectionRef::Named(name) => self
                .sections
                .iter()
                .position(|s| s.name.as_deref() == Some(name)),
            SectionRef::Indexed { kind, index } => {
                let positions: Vec<usize> = self
                    .sections
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.kind == *kind)
                    .map(|(i, _)| i)
                    .collect();
                let i = if *index < 0 {
                    positions.len().checked_sub(index.unsigned_abs() as usize)?
                } else {
                    *index as usize
                };
                positions.get(i).copied()
            }
        }
    }

    /// The `/etc/config` file text of this package (what `uci export` prints).
    pub fn to_config_text(&self) -> String {
        let mut out = String::new();
        for section in &self.sections {
            match &section.name {
                Some(name) => out += &format!("config {} {}\n", section.kind, quote(name)),
                None => out += &format!("config {}\n", section.kind),
            }
            for (name, value) in &section.options {
                match value {
                    Value::Single(v) => out += &format!("\toption {name} {}\n", quote(v)),
                    Value::List(items) => {
                        for v in items {
                            out += &format!("\tlist {name} {}\n", quote(v));
                        }
                    }
                }
            }
            out.push('\n');
        }
        out
    }
}

impl Config {
    /// Apply a parsed batch; the first failing command stops with its line.
    pub fn apply(&mut self, commands: &[(usize, Command)]) -> Result<(), UciError> {
        for (line, command) in commands {
            self.apply_one(command).map_err(|message| UciError {
                line: *line,
                message,
            })?;
        }
        Ok(())
    }

    pub fn package(&self, name: &str) -> Option<&Package> {
        self.packages.get(name)
    }

    fn apply_one(&mut self, command: &Command) -> Result<(), String> {
        let not_found =
            |package: &str, section: &SectionRef| format!("{package}.{section}: entry not found");
        match command {
            Command::Commit { .. } => Ok(()),
            Command::Add { package, kind } => {
                self.packages
                    .entry(package.clone())
                    .or_default()
                    .sections
                    .push(Section {
                        name: None,
                        kind: kind.clone(),
                        options: Vec::new(),
                    });
                Ok(())
            }
            Command::SetSection {
                package,
                section,
                kind,
            } => {
                let p = self.packages.entry(package.clone()).or_default();
                match p.resolve(section) {
                    Some(i) => p.sections[i].kind = kind.clone(),
                    None => {
                        let SectionRef::Named(name) = section else {
                            return Err(not_found(package, section));
                        };
                        p.sections.push(Section {
                            name: Some(name.clone()),
                            kind: kind.clone(),
                            options: Vec::new(),
                        });
                    }
                }
                Ok(())
            }
            Command::SetOption {
                package,
                section,
                option,
                value,
            } => {
                let s = self
                    .section_mut(package, section)
                    .ok_or_else(|| not_found(package, section))?;
                match s.options.iter_mut().find(|(name, _)| name == option) {
                    Some((_, v)) => *v = Value::Single(value.clone()),
                    None => s
                        .options
                        .push((option.clone(), Value::Single(value.clone()))),
                }
                Ok(())
            }
            Command::AddList {
                package,
                section,
                option,
                value,
            } => {
                let s = self
                    .section_mut(package, section)
                    .ok_or_else(|| not_found(package, section))?;
                match s.options.iter_mut().find(|(name, _)| name == option) {
                    Some((_, v)) => {
                        let mut items = match v {
                            Value::Single(old) => vec![old.clone()],
                            Value::List(items) => items.clone(),
                        };
                        items.push(value.clone());
                        *v = Value::List(items);
                    }
                    None => s
                        .options
                        .push((option.clone(), Value::List(vec![value.clone()]))),
                }
                Ok(())
            }
            Command::DelList {
                package,
                section,
                option,
                value,
            } => {
                let s = self
                    .section_mut(package, section)
                    .ok_or_else(|| not_found(package, section))?;
                if let Some((_, Value::List(items))) =
                    s.options.iter_mut().find(|(name, _)| name == option)
                {
                    items.retain(|item| item != value);
                }
                s.options
                    .retain(|(_, v)| !matches!(v, Value::List(items) if items.is_empty()));
                Ok(())
            }
            Command::Delete {
                package,
                section,
                option,
            } => {
                let p = self
                    .packages
                    .get_mut(package)
                    .ok_or_else(|| not_found(package, section))?;
                let i = p
                    .resolve(section)
                    .ok_or_else(|| not_found(package, section))?;
                match option {
                    None => {
                        p.sections.remove(i);
                    }
                    Some(option) => {
                        let options = &mut p.sections[i].options;
                        let before = options.len();
                        options.retain(|(name, _)| name != option);
                        if options.len() == before {
                            return Err(format!("{package}.{section}.{option}: entry not found"));
                        }
                    }
                }
                Ok(())
            }
            Command::Rename {
                package,
                section,
                option,
                new_name,
            } => {
                let s = self
                    .section_mut(package, section)
                    .ok_or_else(|| not_found(package, section))?;
                match option {
                    None => s.name = Some(new_name.clone()),
                    Some(option) => {
                        let (name, _) = s
                            .options
                            .iter_mut()
                            .find(|(name, _)| name == option)
                            .ok_or_else(|| {
                                format!("{package}.{section}.{option}: entry not found")
                            })?;
                        *name = new_name.clone();
                    }
                }
                Ok(())
            }
            Command::Reorder {
                package,
                section,
                index,
            } => {
                let p = self
                    .packages
                    .get_mut(package)
                    .ok_or_else(|| not_found(package, section))?;
                let i = p
                    .resolve(section)
                    .ok_or_else(|| not_found(package, section))?;
                let moved = p.sections.remove(i);
                let to = (*index).min(p.sections.len());
                p.sections.insert(to, moved);
                Ok(())
            }
        }
    }

    fn section_mut(&mut self, package: &str, section: &SectionRef) -> Option<&mut Section> {
        let p = self.packages.get_mut(package)?;
        let i = p.resolve(section)?;
        p.sections.get_mut(i)
    }
}

impl fmt::Display for SectionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SectionRef::Named(name) => f.write_str(name),
            SectionRef::Indexed { kind, index } => write!(f, "@{kind}[{index}]"),
        }
    }
}

/// Single-quote a value the way `uci export` does (`'` becomes `'\''`).
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}
