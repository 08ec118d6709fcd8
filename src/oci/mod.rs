//! The OCI distribution-spec vocabulary, pure and target-independent: digests and their
//! incremental hashers, repository names and references, media types, manifest parsing and the
//! spec's error codes, and the summary of a manifest the web UI shows. Nothing here touches
//! storage or HTTP.

pub mod digest;
pub mod error;
pub mod manifest;
pub mod name;
pub mod summary;
