//! Manifest parsing: which media types we accept and what a manifest references.
//!
//! The registry stores manifests byte-exact and only needs their references: the blobs
//! (config, layers, artifact blobs) and child manifests that must already exist in the
//! repository, and the optional `subject` that makes the manifest a referrer.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::digest::Digest;
use super::error::{Code, RegistryError, Result};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_ARTIFACT: &str = "application/vnd.oci.artifact.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Manifests bigger than this are refused with 413, as the spec recommends (4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Most descriptors (config, layers, blobs, child manifests, subject) one manifest may name.
/// Each one the registry must check costs storage reads on the PUT, and one request may make
/// at most 1000 subrequests on the platform; real images stay far below (a container runtime
/// stacks at most ~128 layers, a multi-platform index names a few dozen manifests).
pub const MAX_DESCRIPTORS: usize = 400;

/// Layer media types whose blobs a registry need not hold: clients fetch them from the
/// descriptor's `urls` (OCI "non-distributable" layers, Docker's foreign layers).
const NON_DISTRIBUTABLE: [&str; 4] = [
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

const ACCEPTED: [&str; 5] = [OCI_MANIFEST, OCI_INDEX, OCI_ARTIFACT, DOCKER_MANIFEST, DOCKER_LIST];

/// A content descriptor as it appears in a manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    size: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    #[serde(default)]
    layers: Vec<RawDescriptor>,
    #[serde(default)]
    blobs: Vec<RawDescriptor>,
    #[serde(default)]
    manifests: Vec<RawDescriptor>,
    subject: Option<RawDescriptor>,
    annotations: Option<Map<String, Value>>,
}

/// What the registry needs to know of a manifest it stores.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedManifest {
    pub media_type: String,
    /// Blobs that must be linked in the repository (config, layers, artifact blobs).
    pub blobs: Vec<Digest>,
    /// Non-distributable layers: named, but need not be stored (kept if they are).
    pub foreign: Vec<Digest>,
    /// Child manifests of an index. They need not be in the repository (a sparse index, as a
    /// partial mirror of a multi-platform image has); those that are, are kept with it.
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
    /// `artifactType`, or for an image manifest without one, its config media type
    /// (what the referrers API reports).
    pub artifact_type: Option<String>,
    pub annotations: Option<Map<String, Value>>,
}

/// Parses a manifest PUT body. `content_type` is the request's Content-Type (may be absent).
/// A manifest naming more than [`MAX_DESCRIPTORS`] descriptors is refused.
pub fn parse_pushed(bytes: &[u8], content_type: Option<&str>) -> Result<ParsedManifest> {
    parse_with_limit(bytes, content_type, Some(MAX_DESCRIPTORS))
}

/// Parses a stored manifest (accepted when it was pushed, whatever limits apply today).
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<ParsedManifest> {
    parse_with_limit(bytes, content_type, None)
}

fn parse_with_limit(bytes: &[u8], content_type: Option<&str>, max_descriptors: Option<usize>) -> Result<ParsedManifest> {
    let invalid = |d: String| RegistryError::new(Code::ManifestInvalid, d);
    let raw: RawManifest =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("manifest is not valid JSON: {e}")))?;
    let header = content_type.map(|c| c.split(';').next().unwrap_or("").trim()).filter(|c| !c.is_empty());
    let media_type = match (header, raw.media_type.as_deref()) {
        (Some(h), Some(f)) if h != f => {
            return Err(invalid(format!("Content-Type {h} does not match mediaType {f}")));
        }
        (Some(h), _) => h.to_string(),
        (None, Some(f)) => f.to_string(),
        (None, None) => return Err(invalid("manifest media type unknown: no Content-Type, no mediaType".into())),
    };
    if !ACCEPTED.contains(&media_type.as_str()) {
        return Err(invalid(format!("unsupported manifest media type {media_type}")));
    }
    if media_type != OCI_ARTIFACT && raw.schema_version != Some(2) {
        return Err(invalid("schemaVersion must be 2".into()));
    }
    let digest_of = |d: &RawDescriptor| -> Result<Digest> {
        if d.size < 0 {
            return Err(invalid(format!("negative size for {}", d.digest)));
        }
        Digest::parse(&d.digest).map_err(|_| invalid(format!("invalid descriptor digest {:?}", d.digest)))
    };
    let named = raw.config.iter().count() + raw.layers.len() + raw.blobs.len() + raw.manifests.len() + raw.subject.iter().count();
    if let Some(max) = max_descriptors.filter(|max| named > *max) {
        return Err(invalid(format!("manifest names {named} descriptors; this registry accepts at most {max}")));
    }
    let is_index = media_type == OCI_INDEX || media_type == DOCKER_LIST;
    let mut blobs = Vec::new();
    let mut foreign = Vec::new();
    let mut manifests = Vec::new();
    if is_index {
        if raw.config.is_some() || !raw.layers.is_empty() {
            return Err(invalid("an index has no config or layers".into()));
        }
        for m in &raw.manifests {
            manifests.push(digest_of(m)?);
        }
    } else if media_type == OCI_ARTIFACT {
        for b in &raw.blobs {
            blobs.push(digest_of(b)?);
        }
    } else {
        let config = raw.config.as_ref().ok_or_else(|| invalid("image manifest without config".into()))?;
        blobs.push(digest_of(config)?);
        for l in &raw.layers {
            if l.media_type.as_deref().is_some_and(|t| NON_DISTRIBUTABLE.contains(&t)) {
                foreign.push(digest_of(l)?);
            } else {
                blobs.push(digest_of(l)?);
            }
        }
    }
    let subject = raw.subject.as_ref().map(digest_of).transpose()?;
    let artifact_type = raw
        .artifact_type
        .clone()
        .or_else(|| if media_type == OCI_MANIFEST { raw.config.as_ref().and_then(|c| c.media_type.clone()) } else { None });
    Ok(ParsedManifest { media_type, blobs, foreign, manifests, subject, artifact_type, annotations: raw.annotations })
}

impl ParsedManifest {
    /// Every digest the manifest names (what a garbage collection keeps with it).
    pub fn references(&self) -> impl Iterator<Item = &Digest> {
        self.blobs.iter().chain(&self.foreign).chain(&self.manifests).chain(&self.subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::digest::Algorithm;

    fn d(s: &str) -> String {
        Digest::of(Algorithm::Sha256, s.as_bytes()).to_string()
    }

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":3}}]{extra}}}"#,
            d("c"),
            d("l")
        )
    }

    #[test]
    fn image_manifest_references() {
        let m = parse(image("").as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(m.blobs.len(), 2);
        assert_eq!(m.blobs[0].to_string(), d("c"));
        assert_eq!(m.artifact_type.as_deref(), Some("application/vnd.oci.image.config.v1+json"));
        assert!(m.subject.is_none());
    }

    #[test]
    fn subject_and_annotations() {
        let extra = format!(r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":9}},"artifactType":"application/x.sig","annotations":{{"k":"v"}}"#, d("s"));
        let m = parse(image(&extra).as_bytes(), None).unwrap();
        assert_eq!(m.subject.unwrap().to_string(), d("s"));
        assert_eq!(m.artifact_type.as_deref(), Some("application/x.sig"));
        assert_eq!(m.annotations.unwrap()["k"], "v");
    }

    #[test]
    fn index_children() {
        let body = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":5}}]}}"#, d("m"));
        let m = parse(body.as_bytes(), Some(OCI_INDEX)).unwrap();
        assert_eq!(m.manifests.len(), 1);
        assert!(m.blobs.is_empty());
    }

    #[test]
    fn docker_schema2_without_media_type_field_uses_header() {
        let body = format!(r#"{{"schemaVersion":2,"config":{{"digest":"{}","size":1}},"layers":[]}}"#, d("c"));
        let m = parse(body.as_bytes(), Some(DOCKER_MANIFEST)).unwrap();
        assert_eq!(m.media_type, DOCKER_MANIFEST);
    }

    #[test]
    fn non_distributable_layers_are_named_but_not_required() {
        let layers: Vec<String> = NON_DISTRIBUTABLE
            .iter()
            .enumerate()
            .map(|(i, t)| format!(r#"{{"mediaType":"{t}","digest":"{}","size":1,"urls":["https://example.com/{i}"]}}"#, d(&i.to_string())))
            .collect();
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{}","size":1}},"layers":[{},{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":1}}]}}"#,
            d("c"),
            layers.join(","),
            d("l")
        );
        let m = parse(body.as_bytes(), None).unwrap();
        assert_eq!(m.blobs.iter().map(Digest::to_string).collect::<Vec<_>>(), vec![d("c"), d("l")]);
        assert_eq!(m.foreign.len(), 4);
        assert_eq!(m.references().count(), 6);
    }

    #[test]
    fn descriptor_count_is_bounded() {
        let layer = |i: usize| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":1}}"#, d(&i.to_string()));
        let with = |n: usize| {
            let layers: Vec<String> = (0..n).map(layer).collect();
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{}","size":1}},"layers":[{}]}}"#, d("c"), layers.join(","))
        };
        assert_eq!(parse_pushed(with(MAX_DESCRIPTORS - 1).as_bytes(), None).unwrap().blobs.len(), MAX_DESCRIPTORS);
        let err = parse_pushed(with(MAX_DESCRIPTORS).as_bytes(), None).unwrap_err();
        assert_eq!(err.code, Code::ManifestInvalid);
        assert!(err.detail.contains("at most 400"), "{}", err.detail);
        // A stored manifest is read whole whatever the limit (the collector must see it all).
        assert_eq!(parse(with(MAX_DESCRIPTORS).as_bytes(), None).unwrap().blobs.len(), MAX_DESCRIPTORS + 1);
    }

    #[test]
    fn every_kind_of_descriptor_counts_towards_the_bound() {
        let layer = |i: usize| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":1}}"#, d(&i.to_string()));
        let with = |n: usize| {
            let layers: Vec<String> = (0..n).map(layer).collect();
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{}","size":1}},"layers":[{}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1}}}}"#,
                d("c"),
                layers.join(","),
                d("s")
            )
        };
        // Config, layers and subject: 400 in all is the most.
        assert!(parse_pushed(with(MAX_DESCRIPTORS - 2).as_bytes(), None).is_ok());
        assert_eq!(parse_pushed(with(MAX_DESCRIPTORS - 1).as_bytes(), None).unwrap_err().code, Code::ManifestInvalid);
        assert_eq!(MAX_MANIFEST_BYTES, 4_194_304);
        // Blobs named beside the layers count too.
        let blob = format!(r#"{{"mediaType":"application/octet-stream","digest":"{}","size":1}}"#, d("b"));
        let with_blobs = with(MAX_DESCRIPTORS - 3).replacen(r#","subject""#, &format!(r#","blobs":[{blob},{blob}],"subject""#), 1);
        assert_eq!(parse_pushed(with_blobs.as_bytes(), None).unwrap_err().code, Code::ManifestInvalid);
        // And an index's children.
        let index = |n: usize| {
            let children: Vec<String> = (0..n).map(|i| format!(r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1}}"#, d(&i.to_string()))).collect();
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#, children.join(","))
        };
        assert!(parse_pushed(index(MAX_DESCRIPTORS).as_bytes(), None).is_ok());
        assert_eq!(parse_pushed(index(MAX_DESCRIPTORS + 1).as_bytes(), None).unwrap_err().code, Code::ManifestInvalid);
    }

    #[test]
    fn an_index_has_neither_config_nor_layers() {
        let config = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","config":{{"digest":"{}","size":1}},"manifests":[]}}"#, d("c"));
        let layers = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","layers":[{{"digest":"{}","size":1}}],"manifests":[]}}"#, d("l"));
        for body in [config, layers] {
            assert_eq!(parse(body.as_bytes(), None).unwrap_err().code, Code::ManifestInvalid, "{body}");
        }
    }

    #[test]
    fn docker_manifest_lists_and_header_mismatch() {
        let list = |t: &str| format!(r#"{{"schemaVersion":2,"mediaType":"{t}","manifests":[{{"mediaType":"{DOCKER_MANIFEST}","digest":"{}","size":0}}]}}"#, d("m"));
        let m = parse(list(DOCKER_LIST).as_bytes(), Some(DOCKER_LIST)).unwrap();
        assert_eq!((m.media_type.as_str(), m.manifests.len()), (DOCKER_LIST, 1));
        // Both valid, but not the same: the header and the body must agree.
        let e = parse(list(OCI_INDEX).as_bytes(), Some(DOCKER_LIST)).unwrap_err();
        assert_eq!(e.code, Code::ManifestInvalid);
        assert!(e.detail.contains("does not match"), "{}", e.detail);
        // A header with parameters names the same type.
        assert!(parse(list(OCI_INDEX).as_bytes(), Some("application/vnd.oci.image.index.v1+json; charset=utf-8")).is_ok());
    }

    #[test]
    fn hostile_json_is_invalid_not_a_crash() {
        let nested = "[".repeat(100_000);
        let dup = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{}","size":1}},"layers":[],"layers":[]}}"#, d("c"));
        for body in [nested.as_str(), dup.as_str(), "", "null", "[]", "\u{0}"] {
            assert_eq!(parse(body.as_bytes(), Some(OCI_MANIFEST)).unwrap_err().code, Code::ManifestInvalid, "{}", &body[..body.len().min(20)]);
        }
    }

    #[test]
    fn invalid_manifests() {
        let cases: Vec<(String, Option<&str>)> = vec![
            ("not json".into(), Some(OCI_MANIFEST)),
            (image(""), Some(OCI_INDEX)),
            (image(""), Some("application/json-ish")),
            (r#"{"schemaVersion":2,"layers":[]}"#.into(), None),
            (format!(r#"{{"schemaVersion":1,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{}","size":1}}}}"#, d("c")), None),
            (format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"sha256:nope","size":1}}}}"#), None),
            (format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"digest":"{}","size":-1}}}}"#, d("c")), None),
            (format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}"}}"#), None),
        ];
        for (body, ct) in cases {
            assert_eq!(parse(body.as_bytes(), ct).unwrap_err().code, Code::ManifestInvalid, "{body}");
        }
    }
}
