//! The request log: one JSON line per request, for `wrangler tail` and Workers Logs, and the same
//! request as a metrics data point (Workers Analytics Engine). It names
//! the route and repository, never the URL (upload URLs carry signed state) and never a header
//! value but the user agent's absence: no credential or token can reach it.

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequestLog {
    pub method: String,
    /// What the path addressed (`Route::kind`), `ui` for the web UI's files, `none` if nothing.
    pub route: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    pub status: u16,
    /// Request and response body sizes when their lengths were declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    pub duration_ms: u64,
    /// The `Registry-Storage-Ops` summary.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ops: String,
    /// The mirror's answer (`Registry-Upstream`: hit, miss, revalidated, stale).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// The authenticated user, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The spec error code of a failed request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One request as a Workers Analytics Engine data point (binding `METRICS`), in the column
/// order README documents for queries: index1 = route; blob1 = route, blob2 = method, blob3 =
/// status, blob4 = repository, blob5 = error code; double1 = bytes in, double2 = bytes out,
/// double3 = duration (ms).
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub index: String,
    pub blobs: [String; 5],
    pub doubles: [f64; 3],
}

impl RequestLog {
    pub fn line(&self) -> String {
        serde_json::to_string(self).expect("serializable")
    }

    pub fn metric(&self) -> Metric {
        Metric {
            index: self.route.to_string(),
            blobs: [
                self.route.to_string(),
                self.method.clone(),
                self.status.to_string(),
                self.repository.clone().unwrap_or_default(),
                self.error.clone().unwrap_or_default(),
            ],
            doubles: [self.bytes_in.unwrap_or(0) as f64, self.bytes_out.unwrap_or(0) as f64, self.duration_ms as f64],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_json_line_without_empty_fields() {
        let log = RequestLog {
            method: "PUT".into(),
            route: "manifest",
            repository: Some("team/app".into()),
            status: 201,
            bytes_in: Some(512),
            bytes_out: Some(0),
            duration_ms: 12,
            ops: "r2-a=3, r2-b=2".into(),
            upstream: None,
            user: Some("alice".into()),
            error: None,
        };
        let line = log.line();
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["route"], "manifest");
        assert_eq!(v["user"], "alice");
        assert!(v.get("upstream").is_none() && v.get("error").is_none());
        let m = log.metric();
        assert_eq!(m.index, "manifest");
        assert_eq!(m.blobs, ["manifest", "PUT", "201", "team/app", ""].map(String::from));
        assert_eq!(m.doubles, [512.0, 0.0, 12.0]);
        let bare = RequestLog { method: "GET".into(), route: "none", status: 404, ..Default::default() };
        assert_eq!(bare.line(), r#"{"method":"GET","route":"none","status":404,"duration_ms":0}"#);
    }
}
