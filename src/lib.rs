//! An OCI Distribution registry for the edge.
//!
//! Layers, top to bottom: the wasm entry point (`worker_entry`, wasm only) builds an
//! [`app::App`] per isolate and hands each request to [`routes`] → [`api`] handlers → [`storage`]
//! (path mapper, stores, bucket adapters) → [`oci`] (the spec's vocabulary). Everything except
//! the entry, the handlers and the R2 adapter is target-independent and tested natively.

pub mod oci;
pub mod routes;
pub mod storage;
