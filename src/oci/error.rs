//! The registry's single error type. Every failure a handler can meet is one of the spec's codes
//! with its HTTP status; only the entry point turns it into the JSON body
//! `{"errors":[{"code","message","detail"}]}`.

use serde_json::json;

/// An error code from the distribution spec (plus `UNKNOWN` for storage faults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    TagInvalid,
    PaginationNumberInvalid,
    TooManyRequests,
    /// A mirrored upstream could not answer (down, slow, rate limited) and nothing is stored.
    Unavailable,
    Unsupported,
    RangeInvalid,
    TooLarge,
    Unauthorized,
    Denied,
    Unknown,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            // Not in the OCI spec's table; distribution's code for a tag that is not valid.
            Code::TagInvalid => "TAG_INVALID",
            // Distribution's code for an `n` that is not a number.
            Code::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::Unavailable => "UNAVAILABLE",
            Code::Unsupported => "UNSUPPORTED",
            Code::RangeInvalid => "RANGE_INVALID",
            // The spec has no code of its own for an oversized body; SIZE_INVALID is the
            // closest, the status (413) says the rest.
            Code::TooLarge => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unknown => "UNKNOWN",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown => 404,
            Code::RangeInvalid => 416,
            Code::Unauthorized => 401,
            Code::Denied => 403,
            Code::TooLarge => 413,
            Code::TooManyRequests => 429,
            Code::Unavailable => 503,
            Code::Unsupported => 405,
            Code::Unknown => 500,
            _ => 400,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Code::BlobUnknown => "blob unknown to registry",
            Code::BlobUploadInvalid => "blob upload invalid",
            Code::BlobUploadUnknown => "blob upload unknown to registry",
            Code::DigestInvalid => "provided digest did not match uploaded content",
            Code::ManifestBlobUnknown => "manifest references a manifest or blob unknown to registry",
            Code::ManifestInvalid => "manifest invalid",
            Code::ManifestUnknown => "manifest unknown to registry",
            Code::NameInvalid => "invalid repository name",
            Code::NameUnknown => "repository name not known to registry",
            Code::SizeInvalid => "provided length did not match content length",
            Code::TagInvalid => "invalid tag",
            Code::PaginationNumberInvalid => "invalid number of results requested",
            Code::TooManyRequests => "too many requests",
            Code::Unavailable => "service unavailable",
            Code::Unsupported => "the operation is unsupported",
            Code::RangeInvalid => "invalid content range",
            Code::TooLarge => "request body too large; push the blob in chunks (PATCH with Content-Range)",
            Code::Unauthorized => "authentication required",
            Code::Denied => "requested access to the resource is denied",
            Code::Unknown => "unknown error",
        }
    }
}

/// A spec error with a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    pub code: Code,
    pub detail: String,
    /// For upload errors: the upload's current offset, reported as `Range`.
    pub upload_offset: Option<u64>,
    /// For UNAUTHORIZED: the `WWW-Authenticate` challenge.
    pub challenge: Option<String>,
    /// For TOOMANYREQUESTS: seconds after which a retry may succeed (`Retry-After`).
    pub retry_after: Option<u64>,
    /// A 500 whose detail is shown: the registry's configuration is refused (it names settings,
    /// never their values), so the operator learns why from the answer, not only the log.
    pub misconfigured: bool,
}

impl RegistryError {
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        RegistryError { code, detail: detail.into(), upload_offset: None, challenge: None, retry_after: None, misconfigured: false }
    }

    /// The configuration is refused: every request fails (closed, not open) with 500 UNKNOWN
    /// and this reason in the answer. `reason` names settings, never a secret's value.
    pub fn misconfigured(reason: impl std::fmt::Display) -> Self {
        RegistryError { misconfigured: true, ..RegistryError::new(Code::Unknown, format!("registry misconfigured: {reason}")) }
    }

    /// A storage or platform fault: 500 UNKNOWN. The cause is logged by the entry point, the
    /// client sees only that something failed on our side.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        RegistryError::new(Code::Unknown, cause.to_string())
    }

    /// Attaches the upload's current offset (sent as `Range` with the error).
    pub fn with_range(mut self, offset: u64) -> Self {
        self.upload_offset = Some(offset);
        self
    }

    /// Tells the client when to retry (`Retry-After`, seconds).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// UNAUTHORIZED with the challenge a client answers by authenticating.
    pub fn unauthorized(detail: impl Into<String>, challenge: String) -> Self {
        RegistryError { challenge: Some(challenge), ..RegistryError::new(Code::Unauthorized, detail) }
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The spec's JSON error body.
    pub fn body(&self) -> String {
        let detail = if self.code == Code::Unknown && !self.misconfigured { "internal error".to_string() } else { self.detail.clone() };
        json!({"errors": [{"code": self.code.as_str(), "message": self.code.message(), "detail": detail}]})
            .to_string()
    }
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl std::error::Error for RegistryError {}

pub type Result<T> = std::result::Result<T, RegistryError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_spec_json() {
        let e = RegistryError::new(Code::BlobUnknown, "sha256:abc");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["errors"][0]["code"], "BLOB_UNKNOWN");
        assert_eq!(v["errors"][0]["detail"], "sha256:abc");
        assert_eq!(e.status(), 404);
    }

    #[test]
    fn statuses() {
        assert_eq!(Code::RangeInvalid.status(), 416);
        assert_eq!(Code::TooLarge.status(), 413);
        assert_eq!(Code::DigestInvalid.status(), 400);
        assert_eq!(Code::Unsupported.status(), 405);
        assert_eq!(Code::Unavailable.status(), 503);
        assert_eq!(Code::Unauthorized.status(), 401);
        assert_eq!(Code::Denied.status(), 403);
        assert_eq!(Code::TooManyRequests.status(), 429);
        assert_eq!(Code::TagInvalid.status(), 400);
        assert_eq!(Code::Unavailable.as_str(), "UNAVAILABLE");
    }

    #[test]
    fn messages_and_display() {
        let e = RegistryError::new(Code::DigestInvalid, "sha256:abc");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["errors"][0]["message"], "provided digest did not match uploaded content");
        assert_eq!(e.to_string(), "DIGEST_INVALID: sha256:abc");
    }

    #[test]
    fn internal_detail_is_not_leaked() {
        let e = RegistryError::internal("r2 said: secret key xyz");
        assert!(!e.body().contains("xyz"));
        assert_eq!(e.status(), 500);
        let m = RegistryError::misconfigured("TOKEN_SECRET is not set");
        assert_eq!((m.code, m.status()), (Code::Unknown, 500));
        assert!(m.body().contains("registry misconfigured: TOKEN_SECRET is not set"), "{}", m.body());
    }
}
