//! WireGuard for sovereign: keys, the peer lifecycle, the state directory that
//! holds the secrets, and the formats real WireGuard tools and apps read
//! (wg-quick client configs, QR codes, the peer bundle).
//!
//! The renderers and lifecycle decisions are pure ([`render_client_config`],
//! [`plan`]); the filesystem sits behind [`SecretFs`] in [`KeyStore`].

pub mod backup;
mod bundle;
mod client;
mod key;
pub mod ledger;
pub mod plan;
mod qr;
pub mod quick;
mod registry;
mod store;

pub use bundle::{
    BUNDLE_FORMAT, BundleApi, BundleError, BundlePeer, BundleServer, BundleWireGuard, PeerBundle,
};
pub use client::{PRIVATE_KEY_PLACEHOLDER, render_client_config};
pub use key::{Key, KeyError, RouterSecrets};
pub use ledger::{Ledger, LedgerEntry};
pub use plan::PeerError;
pub use qr::{PNG_MODULE_PIXELS, QUIET_ZONE, QrError, qr_png, qr_terminal};
pub use registry::{AddRequest, ClientMaterial, PeerRegistry, RegistryError, Revoked, RouterRekey};
pub use store::{
    Changes, FileKind, KeyStore, OsFs, SecretFs, SharedLock, StateLock, StoreError, StoreFinding,
    set_lock_timeout,
};
