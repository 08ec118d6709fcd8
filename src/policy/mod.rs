//! Policies on what pushes, deletes and lifecycle runs may do, pure: immutable tags
//! (`immutable`) and retention (`retention`: which old tags and untagged manifests go).

pub mod immutable;
pub mod retention;
