//! The path mapper: every storage key the registry uses is computed here, and only here.
//!
//! Layout of the bucket (R2, strongly consistent, no copy or rename):
//!
//! ```text
//! blobs/<alg>/<hh>/<hex>/descriptor        BlobDescriptor JSON {size, object, touched, doomed,
//!                                          marked (the last collection that found it in use)}
//! blobs/<alg>/<hh>/<hex>/data              the bytes, when their digest was known before they
//!                                          were written (monolithic push, manifests)
//! objects/<upload-id>/data                 the bytes of a chunked upload: the R2 multipart
//!                                          object, completed in place on commit (no rename)
//! objects/<upload-id>/<offset>             the pending piece at offset 0: upload bytes that did
//!                                          not fill a part yet; written only if absent (its
//!                                          writer owns the upload's first bytes, and the key
//!                                          marks the upload as used); a blob smaller than one
//!                                          part keeps it as its data, and so does a whole blob
//!                                          PUT into a fresh upload
//! objects/<upload-id>/<offset>.<tag>       a pending piece further on, <tag> unique to the
//!                                          request that wrote it: racing writers never share a
//!                                          key, so each deletes only what it wrote
//! uploads/<upload-id>/state                UploadState JSON: name, start time, offset, saved
//!                                          hash state, multipart id, part etags, pending pieces;
//!                                          written by the upload's first write (a fresh upload
//!                                          is its URL's token alone), closed by a cancel
//! repositories/<name>/_layers/<alg>/<hex>/link
//!                                          repository blob link: the repository may serve the
//!                                          blob; holds a copy of the descriptor
//! repositories/<name>/_manifests/revisions/<alg>/<hex>/link
//!                                          manifest revision link; holds {mediaType, size,
//!                                          subject, object (where the bytes are)}
//! repositories/<name>/_manifests/revisions/<alg>/<hex>/tags/<tag>
//!                                          tag index entry: <tag> points at this revision
//!                                          (deleting the revision finds its tags by prefix)
//! repositories/<name>/_manifests/tags/<tag>
//!                                          tag current link; holds the digest
//! repositories/<name>/_referrers/<alg>/<subject-hex>/<alg>/<hex>
//!                                          referrers entry: the descriptor reported by the
//!                                          referrers API for manifest <hex> whose subject is
//!                                          <subject-hex>
//! repositories/<name>/_mirror/tags/<tag>  a mirrored tag's freshness: {digest, checked (ms)},
//!                                          when the upstream last confirmed the tag (`mirror`)
//! repositories/<name>/_mirror/taglist      a mirrored repository's upstream tags: {tags,
//!                                          checked (ms)}
//! repositories/<name>/_mirror/pulled/<alg>/<hex>
//!                                          the day (since the epoch) a mirrored manifest was
//!                                          last pulled, written at most once a day (`eviction`)
//! catalog/<name>                           catalog entry, written with the first manifest
//! gc/state                                 the garbage collector's cursors between runs
//! gc/eviction                              the mirror eviction's cursor between runs
//! gc/retention                             the retention step's cursor between runs
//! gc/recount                               the storage totals' recount: its cursor, and when
//!                                          its last pass finished (`recount`)
//! ```
//!
//! A descriptor also records when the blob was last stored or claimed (`touched`) and whether
//! the collector doomed it; a doomed descriptor stays as a tombstone (see `blobs`, `gc`).
//!
//! Names cannot contain a component starting with '_', so `_layers`, `_manifests`,
//! `_referrers`, `_mirror` never collide with a repository called `a/b`. Every list the API serves
//! (tags, catalog, referrers) is a prefix listing whose cost is proportional to the page.
//!
//! Which binding holds what, and why:
//! - Everything above is authoritative in R2: a following request must see it (R2 is strongly
//!   consistent; KV is eventually consistent, caches negative lookups and allows one write per
//!   second per key). Upload state in particular is updated with conditional puts on its etag.
//! - Caches, keyed by the same bucket keys, hold copies of what pulls read ([`PathSpec::caching`],
//!   `facts`): the edge cache of the data centre first, then KV (namespace `META`), positive
//!   entries only, forgotten on delete. A negative answer is never cached: a blob that is
//!   missing now may be pushed a second later. Tag links are cached only when configured, for
//!   a bounded time. Blob bytes are cached whole in the edge cache, keyed by digest; a
//!   repository serves them only after its own link was found.

use crate::oci::digest::Digest;
use crate::oci::name::{RepoName, Tag};

/// A typed storage location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSpec<'a> {
    BlobDescriptor { digest: &'a Digest },
    BlobData { digest: &'a Digest },
    UploadObject { id: &'a str },
    /// A pending piece; `tag` names the request that wrote it (none for the piece at offset 0).
    UploadPending { id: &'a str, offset: u64, tag: Option<&'a str> },
    UploadState { id: &'a str },
    LayerLink { name: &'a RepoName, digest: &'a Digest },
    /// Prefix of every layer link of a repository.
    LayerLinks { name: &'a RepoName },
    ManifestRevision { name: &'a RepoName, digest: &'a Digest },
    TagIndexEntry { name: &'a RepoName, digest: &'a Digest, tag: &'a Tag },
    /// Prefix of the tag index entries of one revision.
    TagIndex { name: &'a RepoName, digest: &'a Digest },
    /// Prefix of every revision link (and tag index) of a repository.
    Revisions { name: &'a RepoName },
    TagCurrent { name: &'a RepoName, tag: &'a Tag },
    /// Prefix of every tag current link of a repository.
    Tags { name: &'a RepoName },
    ReferrerEntry { name: &'a RepoName, subject: &'a Digest, digest: &'a Digest },
    /// Prefix of the referrers entries of one subject.
    Referrers { name: &'a RepoName, subject: &'a Digest },
    /// When the upstream last confirmed a mirrored tag.
    MirrorTag { name: &'a RepoName, tag: &'a Tag },
    /// The upstream's tags of a mirrored repository, as last fetched.
    MirrorTagList { name: &'a RepoName },
    /// The day a mirrored manifest was last pulled.
    MirrorPulled { name: &'a RepoName, digest: &'a Digest },
    CatalogEntry { name: &'a RepoName },
    /// Prefix of the catalog.
    Catalog,
    /// A stored object named by a descriptor or revision link (`BlobData` or `UploadObject`).
    Object { key: &'a str },
    /// Prefix of every blob (descriptors and canonical data).
    Blobs,
    /// Prefix of every upload state.
    Uploads,
    /// The collector's progress between runs.
    GcState,
    /// The mirror eviction's progress between runs.
    EvictionCursor,
    /// The retention step's progress between runs.
    RetentionCursor,
    /// The storage totals' recount: its progress, and when its last pass finished.
    RecountCursor,
}

impl PathSpec<'_> {
    /// The bucket key.
    pub fn key(&self) -> String {
        fn blob(d: &Digest) -> String {
            format!("blobs/{}/{}/{}", d.algorithm().as_str(), &d.hex()[..2], d.hex())
        }
        fn rev(name: &RepoName, d: &Digest) -> String {
            format!("repositories/{name}/_manifests/revisions/{}/{}", d.algorithm().as_str(), d.hex())
        }
        match self {
            PathSpec::BlobDescriptor { digest } => format!("{}/descriptor", blob(digest)),
            PathSpec::BlobData { digest } => format!("{}/data", blob(digest)),
            PathSpec::UploadObject { id } => format!("objects/{id}/data"),
            PathSpec::UploadPending { id, offset, tag: None } => format!("objects/{id}/{offset:020}"),
            PathSpec::UploadPending { id, offset, tag: Some(tag) } => format!("objects/{id}/{offset:020}.{tag}"),
            PathSpec::UploadState { id } => format!("uploads/{id}/state"),
            PathSpec::LayerLink { name, digest } => {
                format!("repositories/{name}/_layers/{}/{}/link", digest.algorithm().as_str(), digest.hex())
            }
            PathSpec::LayerLinks { name } => format!("repositories/{name}/_layers/"),
            PathSpec::ManifestRevision { name, digest } => format!("{}/link", rev(name, digest)),
            PathSpec::TagIndexEntry { name, digest, tag } => format!("{}/tags/{tag}", rev(name, digest)),
            PathSpec::TagIndex { name, digest } => format!("{}/tags/", rev(name, digest)),
            PathSpec::Revisions { name } => format!("repositories/{name}/_manifests/revisions/"),
            PathSpec::TagCurrent { name, tag } => format!("repositories/{name}/_manifests/tags/{tag}"),
            PathSpec::Tags { name } => format!("repositories/{name}/_manifests/tags/"),
            PathSpec::ReferrerEntry { name, subject, digest } => format!(
                "repositories/{name}/_referrers/{}/{}/{}/{}",
                subject.algorithm().as_str(),
                subject.hex(),
                digest.algorithm().as_str(),
                digest.hex()
            ),
            PathSpec::Referrers { name, subject } => {
                format!("repositories/{name}/_referrers/{}/{}/", subject.algorithm().as_str(), subject.hex())
            }
            PathSpec::MirrorTag { name, tag } => format!("repositories/{name}/_mirror/tags/{tag}"),
            PathSpec::MirrorTagList { name } => format!("repositories/{name}/_mirror/taglist"),
            PathSpec::MirrorPulled { name, digest } => {
                format!("repositories/{name}/_mirror/pulled/{}/{}", digest.algorithm().as_str(), digest.hex())
            }
            PathSpec::CatalogEntry { name } => format!("catalog/{name}"),
            PathSpec::Catalog => "catalog/".to_string(),
            PathSpec::Object { key } => key.to_string(),
            PathSpec::Blobs => "blobs/".to_string(),
            PathSpec::Uploads => "uploads/".to_string(),
            PathSpec::GcState => "gc/state".to_string(),
            PathSpec::EvictionCursor => "gc/eviction".to_string(),
            PathSpec::RetentionCursor => "gc/retention".to_string(),
            PathSpec::RecountCursor => "gc/recount".to_string(),
        }
    }

    /// The digest of a key listed under `Revisions { name }` if it is a revision link (the
    /// inverse of `ManifestRevision`; tag index entries below a revision are `None`).
    pub fn digest_of_revision_key(revisions_prefix: &str, key: &str) -> Option<Digest> {
        let rest = key.strip_prefix(revisions_prefix)?;
        let (alg_hex, link) = rest.rsplit_once('/')?;
        let (alg, hex) = alg_hex.split_once('/')?;
        (link == "link").then(|| Digest::parse(&format!("{alg}:{hex}")).ok()).flatten()
    }

    /// The digest of a key listed under `Blobs` if it is a descriptor (the inverse of
    /// `BlobDescriptor`; data keys are `None`).
    pub fn digest_of_descriptor_key(key: &str) -> Option<Digest> {
        let rest = key.strip_prefix("blobs/")?.strip_suffix("/descriptor")?;
        let mut parts = rest.split('/');
        let (alg, _, hex) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        Digest::parse(&format!("{alg}:{hex}")).ok()
    }

    /// The revision and tag of a key listed under `Revisions { name }` if it is a tag index entry
    /// (the inverse of `TagIndexEntry`; revision links are `None`).
    pub fn tag_entry_of_revisions_key(revisions_prefix: &str, key: &str) -> Option<(Digest, Tag)> {
        let rest = key.strip_prefix(revisions_prefix)?;
        let mut parts = rest.splitn(4, '/');
        let (alg, hex, tags, tag) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if tags != "tags" {
            return None;
        }
        Some((Digest::parse(&format!("{alg}:{hex}")).ok()?, Tag::parse(tag).ok()?))
    }

    /// The tag of a key listed under a tag index prefix (`TagIndex`): the inverse of
    /// `TagIndexEntry`.
    pub fn tag_of_index_key(index_prefix: &str, key: &str) -> Option<Tag> {
        Tag::parse(key.strip_prefix(index_prefix)?).ok()
    }

    /// What a key counts towards in the storage totals (`stats`), parsed back from the key: a
    /// repository's layer link, revision link or tag current link (its repository and item), or
    /// a blob's descriptor (the registry's own stored blobs, repository `""`). Every other key
    /// counts towards nothing.
    pub fn tallied_of_key(key: &str) -> Option<(Tallied, String, String)> {
        fn digest(alg_hex_link: &str) -> Option<String> {
            let (alg, hex) = alg_hex_link.strip_suffix("/link")?.split_once('/')?;
            Some(Digest::parse(&format!("{alg}:{hex}")).ok()?.to_string())
        }
        if let Some(d) = Self::digest_of_descriptor_key(key) {
            return Some((Tallied::Stored, String::new(), d.to_string()));
        }
        // Names have no component starting with '_': the first "/_" ends the name.
        let (name, rest) = key.strip_prefix("repositories/")?.split_once("/_")?;
        let (what, item) = if let Some(rest) = rest.strip_prefix("layers/") {
            (Tallied::Blob, digest(rest)?)
        } else if let Some(rest) = rest.strip_prefix("manifests/revisions/") {
            (Tallied::Manifest, digest(rest)?)
        } else {
            (Tallied::Tag, Tag::parse(rest.strip_prefix("manifests/tags/")?).ok()?.as_str().to_string())
        };
        Some((what, RepoName::parse(name).ok()?.to_string(), item))
    }

    /// Whether the value at this path may be served from the fact cache (`facts`).
    pub fn caching(&self) -> Caching {
        match self {
            PathSpec::LayerLink { .. } | PathSpec::ManifestRevision { .. } => Caching::Immutable,
            // Read through the fact cache only for manifests (at most 4 MiB); blob bytes are
            // served as streams and cached whole in the edge cache. Objects never change: a
            // collected one is never written again (see `blobs`).
            PathSpec::BlobData { .. } | PathSpec::Object { .. } => Caching::Immutable,
            PathSpec::TagCurrent { .. } => Caching::Mutable,
            _ => Caching::Never,
        }
    }
}

/// What a key counts towards in the storage totals ([`PathSpec::tallied_of_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tallied {
    /// A repository's layer link (`LayerLink`): a blob it may serve, and its size.
    Blob,
    /// A repository's revision link (`ManifestRevision`): a manifest, and its size.
    Manifest,
    /// A repository's tag (`TagCurrent`).
    Tag,
    /// A stored blob (`BlobDescriptor`, not doomed): the registry's own bytes, each blob once.
    Stored,
}

impl Tallied {
    pub fn as_str(self) -> &'static str {
        match self {
            Tallied::Blob => "blob",
            Tallied::Manifest => "manifest",
            Tallied::Tag => "tag",
            Tallied::Stored => "stored",
        }
    }
}

/// See [`PathSpec::caching`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// True until deleted: cacheable, forgotten on delete.
    Immutable,
    /// Changes in place (a tag): cacheable only for a configured bound, 0 by default.
    Mutable,
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::digest::Algorithm;

    #[test]
    fn layout() {
        let d = Digest::of(Algorithm::Sha256, b"");
        let h = d.hex();
        let n = RepoName::parse("a/b").unwrap();
        let t = Tag::parse("v1").unwrap();
        let cases = [
            (PathSpec::BlobDescriptor { digest: &d }, format!("blobs/sha256/e3/{h}/descriptor")),
            (PathSpec::BlobData { digest: &d }, format!("blobs/sha256/e3/{h}/data")),
            (PathSpec::UploadObject { id: "u" }, "objects/u/data".into()),
            (PathSpec::UploadPending { id: "u", offset: 0, tag: None }, "objects/u/00000000000000000000".into()),
            (PathSpec::UploadPending { id: "u", offset: 42, tag: Some("t1") }, "objects/u/00000000000000000042.t1".into()),
            (PathSpec::UploadState { id: "u" }, "uploads/u/state".into()),
            (PathSpec::LayerLink { name: &n, digest: &d }, format!("repositories/a/b/_layers/sha256/{h}/link")),
            (PathSpec::ManifestRevision { name: &n, digest: &d }, format!("repositories/a/b/_manifests/revisions/sha256/{h}/link")),
            (PathSpec::TagIndexEntry { name: &n, digest: &d, tag: &t }, format!("repositories/a/b/_manifests/revisions/sha256/{h}/tags/v1")),
            (PathSpec::TagCurrent { name: &n, tag: &t }, "repositories/a/b/_manifests/tags/v1".into()),
            (PathSpec::Tags { name: &n }, "repositories/a/b/_manifests/tags/".into()),
            (PathSpec::ReferrerEntry { name: &n, subject: &d, digest: &d }, format!("repositories/a/b/_referrers/sha256/{h}/sha256/{h}")),
            (PathSpec::MirrorTag { name: &n, tag: &t }, "repositories/a/b/_mirror/tags/v1".into()),
            (PathSpec::MirrorTagList { name: &n }, "repositories/a/b/_mirror/taglist".into()),
            (PathSpec::MirrorPulled { name: &n, digest: &d }, format!("repositories/a/b/_mirror/pulled/sha256/{h}")),
            (PathSpec::EvictionCursor, "gc/eviction".into()),
            (PathSpec::RetentionCursor, "gc/retention".into()),
            (PathSpec::RecountCursor, "gc/recount".into()),
            (PathSpec::CatalogEntry { name: &n }, "catalog/a/b".into()),
        ];
        for (spec, key) in cases {
            assert_eq!(spec.key(), key);
        }
    }

    #[test]
    fn keys_parse_back() {
        let n = RepoName::parse("a/b").unwrap();
        let t = Tag::parse("v1").unwrap();
        for d in [Digest::of(Algorithm::Sha256, b"x"), Digest::of(Algorithm::Sha512, b"x")] {
            let revisions = PathSpec::Revisions { name: &n }.key();
            let rev = PathSpec::ManifestRevision { name: &n, digest: &d }.key();
            assert_eq!(PathSpec::digest_of_revision_key(&revisions, &rev), Some(d.clone()));
            let tag_entry = PathSpec::TagIndexEntry { name: &n, digest: &d, tag: &t }.key();
            assert!(tag_entry.starts_with(&revisions));
            assert_eq!(PathSpec::digest_of_revision_key(&revisions, &tag_entry), None);
            assert_eq!(PathSpec::tag_entry_of_revisions_key(&revisions, &tag_entry), Some((d.clone(), t.clone())));
            assert_eq!(PathSpec::tag_entry_of_revisions_key(&revisions, &rev), None);
            let index = PathSpec::TagIndex { name: &n, digest: &d }.key();
            assert_eq!(PathSpec::tag_of_index_key(&index, &tag_entry), Some(t.clone()));
            let desc = PathSpec::BlobDescriptor { digest: &d }.key();
            assert!(desc.starts_with(&PathSpec::Blobs.key()));
            assert_eq!(PathSpec::digest_of_descriptor_key(&desc), Some(d.clone()));
            assert_eq!(PathSpec::digest_of_descriptor_key(&PathSpec::BlobData { digest: &d }.key()), None);
        }
        assert_eq!(PathSpec::digest_of_descriptor_key("blobs/sha256/zz/nothex/descriptor"), None);
    }

    #[test]
    fn tallied_keys_parse_back() {
        let n = RepoName::parse("a/b.c/d").unwrap();
        let t = Tag::parse("v1.0").unwrap();
        for d in [Digest::of(Algorithm::Sha256, b"x"), Digest::of(Algorithm::Sha512, b"x")] {
            let ds = d.to_string();
            let repo = |what| Some((what, "a/b.c/d".to_string(), ds.clone()));
            assert_eq!(PathSpec::tallied_of_key(&PathSpec::LayerLink { name: &n, digest: &d }.key()), repo(Tallied::Blob));
            assert_eq!(PathSpec::tallied_of_key(&PathSpec::ManifestRevision { name: &n, digest: &d }.key()), repo(Tallied::Manifest));
            assert_eq!(PathSpec::tallied_of_key(&PathSpec::BlobDescriptor { digest: &d }.key()), Some((Tallied::Stored, String::new(), ds.clone())));
            for other in [
                PathSpec::TagIndexEntry { name: &n, digest: &d, tag: &t }.key(),
                PathSpec::ReferrerEntry { name: &n, subject: &d, digest: &d }.key(),
                PathSpec::MirrorPulled { name: &n, digest: &d }.key(),
                PathSpec::BlobData { digest: &d }.key(),
            ] {
                assert_eq!(PathSpec::tallied_of_key(&other), None, "{other}");
            }
        }
        let tag = PathSpec::TagCurrent { name: &n, tag: &t }.key();
        assert_eq!(PathSpec::tallied_of_key(&tag), Some((Tallied::Tag, "a/b.c/d".into(), "v1.0".into())));
        for other in [
            PathSpec::MirrorTag { name: &n, tag: &t }.key(),
            PathSpec::MirrorTagList { name: &n }.key(),
            PathSpec::CatalogEntry { name: &n }.key(),
            PathSpec::UploadState { id: "u" }.key(),
            PathSpec::GcState.key(),
            "repositories/a/_layers/sha256/nothex/link".into(),
            "repositories/a/_manifests/tags/bad:tag".into(),
            "repositories/A/_manifests/tags/v1".into(),
        ] {
            assert_eq!(PathSpec::tallied_of_key(&other), None, "{other}");
        }
    }

    #[test]
    fn prefixes_contain_their_entries() {
        let d = Digest::of(Algorithm::Sha256, b"x");
        let n = RepoName::parse("r").unwrap();
        let t = Tag::parse("t").unwrap();
        assert!(PathSpec::TagCurrent { name: &n, tag: &t }.key().starts_with(&PathSpec::Tags { name: &n }.key()));
        assert!(PathSpec::TagIndexEntry { name: &n, digest: &d, tag: &t }
            .key()
            .starts_with(&PathSpec::TagIndex { name: &n, digest: &d }.key()));
        assert!(PathSpec::ReferrerEntry { name: &n, subject: &d, digest: &d }
            .key()
            .starts_with(&PathSpec::Referrers { name: &n, subject: &d }.key()));
        assert!(PathSpec::CatalogEntry { name: &n }.key().starts_with(&PathSpec::Catalog.key()));
        assert!(PathSpec::LayerLink { name: &n, digest: &d }.key().starts_with(&PathSpec::LayerLinks { name: &n }.key()));
        // Pending pieces sort by offset.
        let piece = |offset, tag| PathSpec::UploadPending { id: "u", offset, tag }.key();
        assert!(piece(9, Some("zz")) < piece(10, Some("aa")));
        assert!(piece(0, None) < piece(1, Some("aa")));
    }

    #[test]
    fn only_immutable_facts_are_cached_until_forgotten() {
        let d = Digest::of(Algorithm::Sha256, b"x");
        let n = RepoName::parse("r").unwrap();
        let t = Tag::parse("t").unwrap();
        assert_eq!(PathSpec::LayerLink { name: &n, digest: &d }.caching(), Caching::Immutable);
        assert_eq!(PathSpec::ManifestRevision { name: &n, digest: &d }.caching(), Caching::Immutable);
        assert_eq!(PathSpec::TagCurrent { name: &n, tag: &t }.caching(), Caching::Mutable);
        assert_eq!(PathSpec::UploadState { id: "u" }.caching(), Caching::Never);
        assert_eq!(PathSpec::CatalogEntry { name: &n }.caching(), Caching::Never);
    }
}
