//! Typed wire formats. Responses are parsed into these structs so that a missing or
//! mistyped field is a decode failure rather than a silent pass. Unknown fields are
//! ignored on purpose: Ollama adds fields between releases.

pub mod anthropic;
pub mod native;
pub mod openai;
