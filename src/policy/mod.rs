//! Policies on what pushes and deletes may do, pure: immutable tags (`immutable`).

pub mod immutable;
