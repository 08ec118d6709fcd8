//! Presigned GET URLs for R2's S3-compatible API (AWS Signature Version 4 in the query string):
//! the optional offload of huge blob downloads. With R2 S3 credentials configured, a blob GET
//! past a size threshold answers 307 to such a URL, after the repository link and access checks
//! (`api::blobs`), so the bytes flow from R2 to the client without the worker (no CPU, no edge
//! cache). The URL names one object, one method and a short lifetime; nothing else can be done
//! with it.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest as _, Sha256};

/// Signs GETs of one bucket's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Signer {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// `https://<account>.r2.cloudflarestorage.com` (path-style: the bucket is the first segment).
    pub endpoint: String,
    pub bucket: String,
    /// R2's region is `auto`.
    pub region: String,
}

impl S3Signer {
    /// A URL that GETs object `key` for `expires_s` seconds from `now_ms`.
    pub fn presign_get(&self, key: &str, now_ms: u64, expires_s: u32) -> String {
        let host = self.endpoint.split("://").nth(1).unwrap_or(&self.endpoint).trim_end_matches('/');
        let path = format!("/{}/{}", self.bucket, key);
        let scheme = self.endpoint.split("://").next().filter(|s| *s != self.endpoint).unwrap_or("https");
        let query = presigned_query("GET", host, &path, &self.region, "s3", &self.access_key_id, &self.secret_access_key, &amz_date(now_ms), expires_s);
        format!("{scheme}://{host}{}?{query}", uri_encode(&path, false))
    }
}

/// `YYYYMMDDTHHMMSSZ` of a time in ms since the epoch.
pub fn amz_date(now_ms: u64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(now_ms as i64).unwrap_or_default();
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// SigV4's URI encoding: every byte but the unreserved ones, '/' kept in paths.
fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The query string (parameters and signature) presigning `method` on `host` + `path`, signed
/// at `amz_date` (`YYYYMMDDTHHMMSSZ`) for `expires_s` seconds, with only `host` signed and an
/// unsigned payload.
#[allow(clippy::too_many_arguments)]
pub fn presigned_query(method: &str, host: &str, path: &str, region: &str, service: &str, access_key_id: &str, secret: &str, amz_date: &str, expires_s: u32) -> String {
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    // Sorted by name, as the canonical query string must be.
    let params = [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_string()),
        ("X-Amz-Credential", format!("{access_key_id}/{scope}")),
        ("X-Amz-Date", amz_date.to_string()),
        ("X-Amz-Expires", expires_s.to_string()),
        ("X-Amz-SignedHeaders", "host".to_string()),
    ];
    let query = params.iter().map(|(k, v)| format!("{}={}", uri_encode(k, true), uri_encode(v, true))).collect::<Vec<_>>().join("&");
    let canonical = format!("{method}\n{}\n{query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD", uri_encode(path, false));
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical.as_bytes())));
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date);
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part);
    }
    let signature = hex::encode(hmac(&key, &to_sign));
    format!("{query}&X-Amz-Signature={signature}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_of_the_s3_documentation() {
        // "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)": GET
        // test.txt of examplebucket, 24 May 2013, for a day.
        let q = presigned_query(
            "GET",
            "examplebucket.s3.amazonaws.com",
            "/test.txt",
            "us-east-1",
            "s3",
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "20130524T000000Z",
            86400,
        );
        assert_eq!(
            q,
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    #[test]
    fn r2_urls_are_path_style_and_short_lived() {
        let s = S3Signer {
            access_key_id: "AKID".into(),
            secret_access_key: "secret".into(),
            endpoint: "https://acct.r2.cloudflarestorage.com".into(),
            bucket: "blobs".into(),
            region: "auto".into(),
        };
        // 2026-11-25T07:00:00Z
        let url = s.presign_get("objects/0b5f/data", 1_795_590_000_000, 300);
        assert!(url.starts_with("https://acct.r2.cloudflarestorage.com/blobs/objects/0b5f/data?X-Amz-Algorithm=AWS4-HMAC-SHA256&"), "{url}");
        assert!(url.contains("X-Amz-Credential=AKID%2F20261125%2Fauto%2Fs3%2Faws4_request"), "{url}");
        assert!(url.contains("&X-Amz-Date=20261125T070000Z&X-Amz-Expires=300&"), "{url}");
        assert_eq!(url.rsplit_once("X-Amz-Signature=").unwrap().1.len(), 64);
        // Another key or time: another signature.
        assert_ne!(url, s.presign_get("objects/0b5f/datb", 1_795_590_000_000, 300));
        assert_ne!(url, s.presign_get("objects/0b5f/data", 1_795_590_001_000, 300));
        // A plain-http endpoint (a local S3 stand-in) keeps its scheme.
        let local = S3Signer { endpoint: "http://127.0.0.1:9000".into(), ..s };
        assert!(local.presign_get("k", 0, 60).starts_with("http://127.0.0.1:9000/blobs/k?"));
    }

    #[test]
    fn uri_encoding_keeps_only_unreserved_bytes() {
        assert_eq!(uri_encode("a-b_c.d~e/f g+h", false), "a-b_c.d~e/f%20g%2Bh");
        assert_eq!(uri_encode("a/b", true), "a%2Fb");
        assert_eq!(amz_date(0), "19700101T000000Z");
    }
}
