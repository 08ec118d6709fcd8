//! What the web UI shows of a manifest and its config without reading any layer: an image's
//! config digest, layer count and compressed size; an index's platforms; an artifact's type;
//! and when a config says the image was created.
//!
//! Manifests here were validated when pushed; a field that is missing or of the wrong type is
//! shown as unknown, never an error.

use serde::Serialize;
use serde_json::Value;

use super::digest::Digest;

/// One entry of an index: a platform's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    pub digest: String,
    pub media_type: String,
    /// `os/architecture[/variant]`, or `unknown` when the entry names no platform.
    pub platform: String,
    pub size: u64,
}

/// The shape of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// An image (or artifact) manifest: its config and the compressed size of its layers.
    Image { config: Option<Digest>, layers: usize, layers_size: u64 },
    /// An index or manifest list.
    Index { platforms: Vec<Platform> },
}

/// The media type a manifest declares, its artifact type, and its shape; `None` if the bytes
/// are no JSON object.
pub fn shape(bytes: &[u8]) -> Option<(Option<String>, Option<String>, Shape)> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let object = v.as_object()?;
    let media_type = object.get("mediaType").and_then(Value::as_str).map(str::to_string);
    let config = object.get("config");
    let artifact_type = object
        .get("artifactType")
        .and_then(Value::as_str)
        .or_else(|| config.and_then(|c| c.get("mediaType")).and_then(Value::as_str).filter(|t| !is_image_config(t)))
        .map(str::to_string);
    if let Some(children) = object.get("manifests").and_then(Value::as_array) {
        let platforms = children.iter().map(platform_of).collect();
        return Some((media_type, artifact_type, Shape::Index { platforms }));
    }
    let layers = object.get("layers").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let layers_size = layers.iter().map(|l| l.get("size").and_then(Value::as_u64).unwrap_or(0)).sum();
    let config = config.and_then(|c| c.get("digest")).and_then(Value::as_str).and_then(|d| Digest::parse(d).ok());
    Some((media_type, artifact_type, Shape::Image { config, layers: layers.len(), layers_size }))
}

/// Config media types of runnable images (anything else makes the manifest an artifact).
fn is_image_config(media_type: &str) -> bool {
    media_type == "application/vnd.oci.image.config.v1+json" || media_type == "application/vnd.docker.container.image.v1+json"
}

fn platform_of(entry: &Value) -> Platform {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let p = entry.get("platform");
    let field = |name: &str| text(p.and_then(|p| p.get(name)));
    let (os, arch, variant) = (field("os"), field("architecture"), field("variant"));
    let platform = match (os.is_empty() || arch.is_empty(), variant.is_empty()) {
        (true, _) => "unknown".to_string(),
        (false, true) => format!("{os}/{arch}"),
        (false, false) => format!("{os}/{arch}/{variant}"),
    };
    Platform {
        digest: text(entry.get("digest")),
        media_type: text(entry.get("mediaType")),
        platform,
        size: entry.get("size").and_then(Value::as_u64).unwrap_or(0),
    }
}

/// The `created` time an image config records (RFC 3339, as written), if any.
pub fn created(config: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(config).ok()?;
    v.get("created").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG_DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn an_image_sums_its_layers() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{CONFIG_DIGEST}","size":7}},
            "layers":[{{"digest":"{CONFIG_DIGEST}","size":100}},{{"digest":"{CONFIG_DIGEST}","size":23}}]}}"#
        );
        let (media_type, artifact_type, shape) = shape(m.as_bytes()).unwrap();
        assert_eq!(media_type.as_deref(), Some("application/vnd.oci.image.manifest.v1+json"));
        assert_eq!(artifact_type, None);
        assert_eq!(shape, Shape::Image { config: Some(Digest::parse(CONFIG_DIGEST).unwrap()), layers: 2, layers_size: 123 });
    }

    #[test]
    fn an_artifact_is_typed_by_artifact_type_or_its_config() {
        let by_field = r#"{"artifactType":"application/vnd.dev.sigstore.bundle","config":{"mediaType":"application/vnd.oci.empty.v1+json"},"layers":[]}"#;
        assert_eq!(shape(by_field.as_bytes()).unwrap().1.as_deref(), Some("application/vnd.dev.sigstore.bundle"));
        let by_config = r#"{"config":{"mediaType":"application/vnd.example.sbom"},"layers":[]}"#;
        assert_eq!(shape(by_config.as_bytes()).unwrap().1.as_deref(), Some("application/vnd.example.sbom"));
        let docker = r#"{"config":{"mediaType":"application/vnd.docker.container.image.v1+json"}}"#;
        assert_eq!(shape(docker.as_bytes()).unwrap().1, None);
    }

    #[test]
    fn an_index_lists_its_platforms() {
        let m = r#"{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"mediaType":"m","digest":"sha256:1","size":5,"platform":{"os":"linux","architecture":"amd64"}},
            {"mediaType":"m","digest":"sha256:2","size":6,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
            {"mediaType":"m","digest":"sha256:3","size":7,"platform":{"os":"unknown"}},
            {"digest":"sha256:4"}]}"#;
        let Some((_, _, Shape::Index { platforms })) = shape(m.as_bytes()) else { panic!("an index") };
        let names: Vec<&str> = platforms.iter().map(|p| p.platform.as_str()).collect();
        assert_eq!(names, ["linux/amd64", "linux/arm64/v8", "unknown", "unknown"]);
        assert_eq!(platforms[1], Platform { digest: "sha256:2".into(), media_type: "m".into(), platform: "linux/arm64/v8".into(), size: 6 });
        assert_eq!(platforms[3].size, 0);
    }

    #[test]
    fn unknown_fields_are_unknown_not_errors() {
        assert_eq!(shape(b"[1]"), None);
        assert_eq!(shape(b"not json"), None);
        let odd = r#"{"config":{"digest":"nope"},"layers":[{"size":"big"},{"size":4}]}"#;
        assert_eq!(shape(odd.as_bytes()).unwrap().2, Shape::Image { config: None, layers: 2, layers_size: 4 });
    }

    #[test]
    fn created_comes_from_the_config() {
        assert_eq!(created(br#"{"created":"2026-11-25T06:00:00Z","architecture":"amd64"}"#).as_deref(), Some("2026-11-25T06:00:00Z"));
        assert_eq!(created(br#"{"created":""}"#), None);
        assert_eq!(created(br#"{"architecture":"amd64"}"#), None);
        assert_eq!(created(b"{}x"), None);
    }
}
