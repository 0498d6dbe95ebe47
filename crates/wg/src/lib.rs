//! WireGuard for sovereign: keys, the router's and peers' secrets, and the
//! formats real WireGuard tools read.

mod key;

pub use key::{Key, KeyError, RouterSecrets};
