use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{program}` is not installed or not on PATH")]
    ProgramMissing { program: String },

    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },

    #[error("`{command}` failed with exit code {status}: {stderr}")]
    CommandFailed {
        command: String,
        status: i32,
        stderr: String,
    },

    /// A test runner was asked something its script has no answer for.
    #[error("no recorded output for `{command}`")]
    Unscripted { command: String },

    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "no ollama binary found (looked in {}); install Ollama (e.g. `brew install ollama` \
         on macOS, https://ollama.com/download on Linux) or pass --ollama PATH",
        looked_in.join(", ")
    )]
    OllamaNotFound { looked_in: Vec<String> },

    #[error("cannot understand the output of `{command}`: {reason}")]
    Parse { command: String, reason: String },

    #[error("the install manifest {} is invalid: {reason}; delete it and remove the service by hand", path.display())]
    Manifest { path: PathBuf, reason: String },

    #[error("{0}")]
    Plist(String),

    #[error("cannot set up the service account: {reason}")]
    ServiceAccount { reason: String },
}
