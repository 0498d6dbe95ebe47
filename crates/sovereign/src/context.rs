//! What every command shares: where the deployment file is, how to load it, and
//! how outcomes map to exit codes.

use std::path::{Path, PathBuf};

use sovereign_model::{Deployment, LoadError};

/// What a command reports when it ran to completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: the command worked, and what it checked does not hold.
    CheckFailed,
}

impl Outcome {
    pub fn from_passed(passed: bool) -> Self {
        if passed {
            Outcome::Success
        } else {
            Outcome::CheckFailed
        }
    }
}

/// A mistake in what the user asked for: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// Where the deployment came from, so output can say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    /// No file exists; the built-in reference deployment stands in.
    Reference,
}

pub struct Context {
    config_path: PathBuf,
}

impl Context {
    pub fn new(config_path: PathBuf) -> Self {
        Self { config_path }
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The state directory (keys) that belongs to the deployment file.
    pub fn state_dir(&self) -> PathBuf {
        sovereign_model::state_dir_for(&self.config_path)
    }

    /// Load the deployment file; a missing or invalid file is a usage error.
    pub fn load(&self) -> anyhow::Result<Deployment> {
        match sovereign_model::load(&self.config_path) {
            Ok(deployment) => Ok(deployment),
            Err(error @ LoadError::Read { .. }) => match &error {
                LoadError::Read { source, .. } if sovereign_model::read_error_is_usage(source) => {
                    Err(usage(error.to_string()))
                }
                _ => Err(error.into()),
            },
            Err(LoadError::Invalid(errors)) => Err(errors.into()),
        }
    }

    /// Load the file when it exists, else fall back to the reference deployment.
    pub fn load_or_reference(&self) -> anyhow::Result<(Deployment, ConfigSource)> {
        if !self.config_path.exists() {
            return Ok((Deployment::reference(), ConfigSource::Reference));
        }
        Ok((self.load()?, ConfigSource::File(self.config_path.clone())))
    }
}
