//! Repository names and manifest references, validated with the spec's grammar.
//!
//! name      = component ("/" component)*, component = [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
//! tag       = [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
//! reference = tag | digest

use super::digest::Digest;
use super::error::{Code, RegistryError, Result};
use std::fmt;

/// Longest name we accept; the spec recommends registries accept at least 255 characters.
const MAX_NAME_LEN: usize = 255;

/// A validated repository name such as `library/alpine`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    pub fn parse(s: &str) -> Result<Self> {
        if !s.is_empty() && s.len() <= MAX_NAME_LEN && s.split('/').all(valid_component) {
            Ok(RepoName(s.to_string()))
        } else {
            Err(RegistryError::new(Code::NameInvalid, format!("invalid repository name: {s:?}")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn valid_component(c: &str) -> bool {
    // Alphanumeric runs joined by exactly one of: ".", "_", "__", or one or more "-".
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A validated tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn parse(s: &str) -> Result<Self> {
        let b = s.as_bytes();
        let first_ok = b.first().is_some_and(|&x| x.is_ascii_alphanumeric() || x == b'_');
        let rest_ok = b.iter().all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'));
        if first_ok && rest_ok && b.len() <= 128 {
            Ok(Tag(s.to_string()))
        } else {
            Err(RegistryError::new(Code::TagInvalid, format!("invalid tag: {s:?}")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The most `?tag=` parameters one manifest PUT may carry. The spec asks registries to take at
/// least 10; each tag costs a few bucket writes, and a request may make at most 1,000
/// subrequests, so an unbounded list would let one request buy thousands of writes.
pub const MAX_TAGS_PER_PUT: usize = 50;

/// The `?tag=` parameters of a manifest PUT, every one valid and at most [`MAX_TAGS_PER_PUT`]
/// of them (TAG_INVALID past the cap, before anything is read or written).
pub fn tags_param<'a>(values: impl Iterator<Item = &'a str>) -> Result<Vec<Tag>> {
    let mut tags = Vec::new();
    for v in values {
        if tags.len() == MAX_TAGS_PER_PUT {
            return Err(RegistryError::new(Code::TagInvalid, format!("at most {MAX_TAGS_PER_PUT} tag parameters per manifest PUT")));
        }
        tags.push(Tag::parse(v)?);
    }
    Ok(tags)
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `<reference>` of a manifest URL: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl Reference {
    /// Anything with a ':' must be a digest (tags cannot contain one).
    pub fn parse(s: &str) -> Result<Self> {
        if s.contains(':') {
            Digest::parse(s).map(Reference::Digest)
        } else {
            Tag::parse(s).map(Reference::Tag)
        }
    }

    /// The tag, when the reference is one.
    pub fn as_tag(&self) -> Option<&Tag> {
        match self {
            Reference::Tag(t) => Some(t),
            Reference::Digest(_) => None,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_parameters_are_capped() {
        let many: Vec<String> = (0..=MAX_TAGS_PER_PUT).map(|i| format!("t{i}")).collect();
        assert_eq!(tags_param(many[..MAX_TAGS_PER_PUT].iter().map(String::as_str)).unwrap().len(), MAX_TAGS_PER_PUT);
        let e = tags_param(many.iter().map(String::as_str)).unwrap_err();
        assert_eq!((e.code, e.status()), (Code::TagInvalid, 400));
        assert!(e.detail.contains("at most 50"));
        assert_eq!(tags_param(["ok", "-bad"].into_iter()).unwrap_err().code, Code::TagInvalid);
        assert!(tags_param(std::iter::empty()).unwrap().is_empty());
    }

    #[test]
    fn names() {
        for ok in ["a", "library/alpine", "a/b/c/d/e", "my-app", "my--app", "a.b", "a_b", "a__b", "0x1/y2"] {
            assert!(RepoName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "a/", "/a", "a//b", "-a", "a-", "a...b", "a___b", "a_.b", "a b", "a/_manifests", "é"] {
            assert_eq!(RepoName::parse(bad).unwrap_err().code, Code::NameInvalid, "{bad}");
        }
        assert!(RepoName::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn tags() {
        for ok in ["latest", "v1.0", "_x", "A-b_c.d", &"t".repeat(128)] {
            assert!(Tag::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", &"t".repeat(129)] {
            assert!(Tag::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn references() {
        assert!(matches!(Reference::parse("latest").unwrap(), Reference::Tag(_)));
        assert_eq!(Reference::parse("latest").unwrap().as_tag().map(Tag::as_str), Some("latest"));
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(matches!(Reference::parse(d).unwrap(), Reference::Digest(_)));
        assert_eq!(Reference::parse("sha256:zz").unwrap_err().code, Code::DigestInvalid);
        assert_eq!(Reference::parse(".INVALID_MANIFEST_NAME").unwrap_err().code, Code::TagInvalid);
        // References and tags print as they were written.
        assert_eq!(Reference::parse("latest").unwrap().to_string(), "latest");
        assert_eq!(Reference::parse(d).unwrap().to_string(), d);
        assert_eq!(Tag::parse("v1.2").unwrap().as_str(), "v1.2");
    }
}
