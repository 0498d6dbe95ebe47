//! Reading `sovereign.toml`: parse, validate, and point every error at a file, line and field.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::Deployment;
use crate::validate::{self, Finding};

/// One problem in a deployment file, located as precisely as the file allows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; `None` when the offending value is a default that the file never spells out.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted path of the field, e.g. `server.address` or `peer[1].name`.
    pub field: Option<String>,
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            if self.line.is_none() {
                write!(f, "{field} (default value): ")?;
            } else {
                write!(f, "{field}: ")?;
            }
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in one file. Validation collects them all, so one run shows
/// the user everything to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}", read_error_message(path, source))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(#[from] ConfigErrors),
}

/// Why the deployment file at `path` cannot be read, saying what to do. One
/// wording for every command that reads it.
pub fn read_error_message(path: &Path, source: &std::io::Error) -> String {
    let reason = match source.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_string(),
        std::io::ErrorKind::InvalidData => {
            "is not a text file (not valid UTF-8); sovereign.toml is TOML text".to_string()
        }
        std::io::ErrorKind::IsADirectory => "is a directory, not a file".to_string(),
        std::io::ErrorKind::PermissionDenied => {
            "cannot be read: permission denied (check its owner and mode)".to_string()
        }
        _ => format!("cannot be read: {source}"),
    };
    format!(
        "{} {reason}; run `sovereign init` to write one, or pass --config PATH",
        path.display()
    )
}

/// Whether the user fixes a read failure in their files or flags (exit 2), rather
/// than it being a failure of the machine.
pub fn read_error_is_usage(source: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        source.kind(),
        NotFound | InvalidData | IsADirectory | PermissionDenied | NotADirectory
    )
}

/// Read and validate a deployment file.
pub fn load(path: &Path) -> Result<Deployment, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse(&text, path)?)
}

/// Parse and validate deployment text; `origin` names the file in errors.
pub fn parse(text: &str, origin: &Path) -> Result<Deployment, ConfigErrors> {
    let locator = Locator::new(text, origin);
    if text.trim().is_empty() {
        return Err(ConfigErrors(vec![ConfigError {
            file: origin.to_path_buf(),
            line: None,
            column: None,
            field: None,
            message: "the file is empty".into(),
            hint: Some(
                "run `sovereign init` to write a commented sovereign.toml, or add at least \
                 [wan] endpoint = \"vpn.example.com:51820\""
                    .into(),
            ),
        }]));
    }
    let deployment: Deployment =
        toml::from_str(text).map_err(|e| ConfigErrors(vec![locator.syntax_error(&e)]))?;
    let errors: Vec<ConfigError> = validate::check(&deployment)
        .into_iter()
        .map(|finding| locator.locate(finding))
        .collect();
    if errors.is_empty() {
        Ok(deployment)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Maps byte offsets and field paths back to lines of the original text.
struct Locator<'a> {
    text: &'a str,
    origin: &'a Path,
    document: Option<toml_edit::Document<&'a str>>,
}

impl<'a> Locator<'a> {
    fn new(text: &'a str, origin: &'a Path) -> Self {
        Self {
            text,
            origin,
            document: toml_edit::Document::parse(text).ok(),
        }
    }

    fn line_column(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before
            .rfind('\n')
            .map_or(before.len(), |nl| before.len() - nl - 1)
            + 1;
        (line, column)
    }

    fn syntax_error(&self, error: &toml::de::Error) -> ConfigError {
        let (line, column) = match error.span() {
            Some(span) => {
                let (l, c) = self.line_column(span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        let message = humanize(error.message().trim());
        let field = line.and_then(|l| self.field_at_line(l));
        ConfigError {
            file: self.origin.to_path_buf(),
            line,
            column,
            hint: Some(syntax_hint(&message, field.as_deref())),
            message,
            field,
        }
    }

    /// Best effort: the dotted path of the key defined on `line`, for messages
    /// from the TOML parser that only carry a span.
    fn field_at_line(&self, line: usize) -> Option<String> {
        let document = self.document.as_ref()?;
        let mut found = None;
        walk(document.as_item(), String::new(), &mut |path, item| {
            if let Some(span) = item.span() {
                let (l, _) = self.line_column(span.start);
                if l == line && found.is_none() && !path.is_empty() {
                    found = Some(path.to_string());
                }
            }
        });
        found
    }

    fn locate(&self, finding: Finding) -> ConfigError {
        let span = self
            .document
            .as_ref()
            .and_then(|doc| span_of(doc, &finding.field));
        let (line, column) = match span {
            Some(offset) => {
                let (l, c) = self.line_column(offset);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ConfigError {
            file: self.origin.to_path_buf(),
            line,
            column,
            field: Some(finding.field),
            message: finding.message,
            hint: finding.hint,
        }
    }
}

/// Serde speaks of Rust types; users think in ports and counts.
fn humanize(message: &str) -> String {
    let ranges = [
        ("u16", "0 to 65535"),
        ("u32", "0 to 4294967295"),
        ("u8", "0 to 255"),
    ];
    for (type_name, range) in ranges {
        if let Some(rest) = message.strip_prefix("invalid value: integer ")
            && let Some(value) = rest.strip_suffix(&format!(", expected {type_name}"))
        {
            return format!("{value} is out of range: expected a whole number from {range}");
        }
    }
    message.to_string()
}

/// What a number out of its type's range should be, by field.
fn range_hint(field: Option<&str>) -> String {
    let key = field.and_then(|f| f.rsplit('.').next()).unwrap_or("");
    match key {
        "mtu" => "WireGuard's MTU is 1280-1500; 1420 fits a 1500-byte underlay".into(),
        "persistent_keepalive" => {
            "seconds between keepalives, 0-65535 (0 turns them off; 25 keeps NAT mappings open)"
                .into()
        }
        "listen_port" | "api_port" | "ssh_port" | "port" => "ports are 1-65535".into(),
        "context_length" => "a context length in tokens, e.g. 65536".into(),
        _ => "see the comments in `sovereign init --yes` output for each field's range".into(),
    }
}

fn syntax_hint(message: &str, field: Option<&str>) -> String {
    if message.contains("out of range") {
        range_hint(field)
    } else if message.starts_with("unknown field") {
        "check the spelling; `sovereign config show` prints every key with its default".into()
    } else if message.contains("missing field `endpoint`")
        || message.contains("missing field `wan`")
    {
        "add [wan] endpoint = \"HOST:PORT\": the public address peers dial, e.g. vpn.example.com:51820".into()
    } else if message.contains("is not a MAC address") {
        "write the server's Ethernet address as six hex pairs, e.g. 3c:22:fb:12:34:56".into()
    } else if message.contains("invalid IP") {
        "write an IPv4 address like 192.168.250.20, or a subnet like 192.168.250.0/24".into()
    } else {
        "fix the TOML at this position; `sovereign init --yes` writes a valid example".into()
    }
}

/// The byte offset where the value (or, failing that, the nearest enclosing table)
/// of a dotted path like `peer[2].address` starts.
fn span_of(document: &toml_edit::Document<&str>, field: &str) -> Option<usize> {
    let mut node = Node::Item(document.as_item());
    let mut best = None;
    for segment in field.split('.') {
        let (key, index) = match segment.split_once('[') {
            Some((key, rest)) => (key, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        node = node.child(key)?;
        best = node.span().or(best);
        if let Some(i) = index {
            node = node.element(i)?;
            best = node.span().or(best);
        }
    }
    best
}

/// A position in a parsed document: an array of tables hands out `Table`s and an
/// inline array hands out `Value`s, so a walk has to carry all three kinds.
#[derive(Clone, Copy)]
enum Node<'d> {
    Item(&'d toml_edit::Item),
    Table(&'d toml_edit::Table),
    Value(&'d toml_edit::Value),
}

impl<'d> Node<'d> {
    fn child(self, key: &str) -> Option<Node<'d>> {
        match self {
            Node::Item(item) => item.get(key).map(Node::Item),
            Node::Table(table) => table.get(key).map(Node::Item),
            Node::Value(toml_edit::Value::InlineTable(table)) => table.get(key).map(Node::Value),
            Node::Value(_) => None,
        }
    }

    fn element(self, index: usize) -> Option<Node<'d>> {
        match self {
            Node::Item(toml_edit::Item::ArrayOfTables(tables)) => {
                tables.get(index).map(Node::Table)
            }
            Node::Item(toml_edit::Item::Value(toml_edit::Value::Array(array)))
            | Node::Value(toml_edit::Value::Array(array)) => array.get(index).map(Node::Value),
            _ => None,
        }
    }

    fn span(self) -> Option<usize> {
        match self {
            Node::Item(toml_edit::Item::Value(value)) | Node::Value(value) => {
                value.span().map(|s| s.start)
            }
            Node::Item(toml_edit::Item::Table(table)) | Node::Table(table) => {
                table.span().map(|s| s.start)
            }
            Node::Item(item) => item.span().map(|s| s.start),
        }
    }
}

fn walk(item: &toml_edit::Item, path: String, visit: &mut dyn FnMut(&str, &toml_edit::Item)) {
    visit(&path, item);
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match item {
        toml_edit::Item::Table(table) => {
            for (key, child) in table.iter() {
                walk(child, join(key), visit);
            }
        }
        toml_edit::Item::ArrayOfTables(tables) => {
            for (i, table) in tables.iter().enumerate() {
                for (key, child) in table.iter() {
                    walk(child, format!("{path}[{i}].{key}"), visit);
                }
            }
        }
        _ => {}
    }
}
