//! One event, in the shape docker/distribution's notifications use, so receivers written for
//! it work unchanged: `{"events": [{id, timestamp, action, target {mediaType, digest, size,
//! length, repository, url, tag}, request {id, addr, host, method, useragent}, actor {name},
//! source {addr}}]}`.

use serde::{Deserialize, Serialize};

/// The media type of a batch body (distribution's).
pub const MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Push,
    Pull,
    Delete,
    /// The mirror stored a manifest fetched from its upstream.
    Mirror,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    /// The same as `size` (distribution sends both).
    pub length: u64,
    pub repository: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestInfo {
    pub id: String,
    pub addr: String,
    pub host: String,
    pub method: String,
    pub useragent: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The authenticated user; absent for anonymous callers and open registries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The registry's host.
    pub addr: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    /// RFC 3339.
    pub timestamp: String,
    pub action: Action,
    pub target: Target,
    pub request: RequestInfo,
    pub actor: Actor,
    pub source: Source,
}

/// The body of one delivery: the events of a batch.
pub fn batch_body(events: &[Event]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "events": events })).expect("serializable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shape_distribution_receivers_read() {
        let e = Event {
            id: "e1".into(),
            timestamp: "2026-11-25T07:00:00.000Z".into(),
            action: Action::Push,
            target: Target {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: "sha256:ab".into(),
                size: 7,
                length: 7,
                repository: "team/app".into(),
                url: "https://r.example/v2/team/app/manifests/sha256:ab".into(),
                tag: Some("v1".into()),
            },
            request: RequestInfo { id: "r1".into(), addr: "192.0.2.1".into(), host: "r.example".into(), method: "PUT".into(), useragent: "skopeo".into() },
            actor: Actor { name: Some("alice".into()) },
            source: Source { addr: "r.example".into() },
        };
        let v: serde_json::Value = serde_json::from_slice(&batch_body(&[e.clone()])).unwrap();
        let got = &v["events"][0];
        assert_eq!(got["action"], "push");
        assert_eq!(got["target"]["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(got["target"]["length"], 7);
        assert_eq!(got["target"]["tag"], "v1");
        assert_eq!(got["request"]["useragent"], "skopeo");
        assert_eq!(got["actor"]["name"], "alice");
        // Round trip (the queue carries events as JSON); no tag, no actor name: left out.
        let bare = Event { target: Target { tag: None, ..e.target.clone() }, actor: Actor::default(), action: Action::Mirror, ..e };
        let json = serde_json::to_value(&bare).unwrap();
        assert!(json["target"].get("tag").is_none() && json["actor"].get("name").is_none());
        assert_eq!(json["action"], "mirror");
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), bare);
    }
}
