//! The pull-through mirror: repositories whose names map onto an upstream registry (Docker Hub,
//! ghcr, quay, any distribution registry) are filled from it on first pull and then served like
//! any stored content, from R2 and the edge cache.
//!
//! - `config`: `UPSTREAMS`, and a local name → upstream and upstream name.
//! - `challenge`: the upstream's `WWW-Authenticate`, token requests and the token cache.
//! - `client`: one upstream request, authenticated and with redirects followed, over a fetch
//!   trait (`web`: the runtime's fetch, wasm only).
//! - `freshness`: when to ask the upstream, and what its answer means (stale-if-error).
//! - `pull`: what a pull of a mirrored name reads, asks and stores.
//!
//! Everything but `web` is target-independent and tested natively.

pub mod challenge;
pub mod client;
pub mod config;
pub mod freshness;
pub mod pull;
#[cfg(target_arch = "wasm32")]
pub mod web;

use crate::oci::error::{Code, RegistryError};
use crate::oci::name::RepoName;

/// Mirrored repositories are read-only: a write of any kind (push, delete, upload) is refused.
pub fn refuse_write(name: &RepoName, upstream: &str) -> RegistryError {
    RegistryError::new(Code::Unsupported, format!("{name} mirrors {upstream} and is read-only"))
}
