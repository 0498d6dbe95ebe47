//! Building POSIX shell text safely.

/// Quote `text` as one POSIX shell word.
pub fn quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@+%".contains(&b))
    {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `key=value` lines printed by our scripts, in order. Lines without `=` are ignored.
pub fn fields(stdout: &str) -> Vec<(&str, &str)> {
    stdout
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect()
}

/// The value of the first `key=value` line with this key.
pub fn field<'a>(stdout: &'a str, key: &str) -> Option<&'a str> {
    fields(stdout)
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(quote("/tmp/a.b"), "/tmp/a.b");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    proptest! {
        #[test]
        fn sh_reads_back_exactly_what_was_quoted(text in "[ -~\n]{0,40}") {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(&text)))
                .output()
                .unwrap();
            prop_assert_eq!(String::from_utf8(out.stdout).unwrap(), text);
        }
    }
}
