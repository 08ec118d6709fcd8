//! Pure parsing and formatting of the HTTP headers the registry interprets: `Range` on blob
//! GETs, `Content-Range` on upload chunks, and the `Range` an upload reports.

/// What a blob GET with a `Range` header should return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No range, a multi-range, or a syntax we ignore: the whole blob (200).
    Whole,
    /// Bytes `start..=end` (206).
    Part { start: u64, end: u64 },
    /// Cannot be satisfied for this size (416).
    Unsatisfiable,
}

/// Interprets a `Range` header for a representation of `size` bytes (RFC 9110 §14).
pub fn blob_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return RangeRequest::Whole };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return RangeRequest::Whole };
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    match (a.is_empty(), b.is_empty()) {
        (true, true) => RangeRequest::Whole,
        (true, false) => match parse(b) {
            // Suffix: the last n bytes.
            Some(0) => RangeRequest::Unsatisfiable,
            Some(n) if size > 0 => RangeRequest::Part { start: size.saturating_sub(n), end: size - 1 },
            Some(_) => RangeRequest::Unsatisfiable,
            None => RangeRequest::Whole,
        },
        (false, _) => {
            let Some(start) = parse(a) else { return RangeRequest::Whole };
            let end = if b.is_empty() { Some(u64::MAX) } else { parse(b) };
            match end {
                None => RangeRequest::Whole,
                Some(end) if end < start => RangeRequest::Whole,
                Some(_) if start >= size => RangeRequest::Unsatisfiable,
                Some(end) => RangeRequest::Part { start, end: end.min(size - 1) },
            }
        }
    }
}

/// The start offset of an upload chunk's `Content-Range` (`<start>-<end>`, optionally with a
/// `bytes ` prefix), checked against the body length when both are known.
pub fn chunk_start(header: &str, body_len: Option<u64>) -> Option<u64> {
    let h = header.trim();
    let h = h.strip_prefix("bytes").map(|r| r.trim_start_matches([' ', '='])).unwrap_or(h);
    let (h, total) = match h.split_once('/') {
        Some((range, total)) => (range, Some(total.trim())),
        None => (h, None),
    };
    // The complete length, when given, is `*` or a number past the range's end.
    let total: Option<u64> = match total {
        None | Some("*") => None,
        Some(t) => Some(t.parse().ok()?),
    };
    let (a, b) = h.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let end: u64 = b.trim().parse().ok()?;
    if end < start || total.is_some_and(|t| t <= end) {
        return None;
    }
    if body_len.is_some_and(|len| len != end - start + 1) {
        return None;
    }
    Some(start)
}

/// The `Range` header value for an upload at `offset` (inclusive end, "0-0" when empty as
/// clients expect).
pub fn upload_range(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeRequest::*;
        assert_eq!(blob_range(None, 10), Whole);
        assert_eq!(blob_range(Some("bytes=0-4"), 10), Part { start: 0, end: 4 });
        assert_eq!(blob_range(Some("bytes=5-"), 10), Part { start: 5, end: 9 });
        assert_eq!(blob_range(Some("bytes=-3"), 10), Part { start: 7, end: 9 });
        assert_eq!(blob_range(Some("bytes=-30"), 10), Part { start: 0, end: 9 });
        assert_eq!(blob_range(Some("bytes=8-100"), 10), Part { start: 8, end: 9 });
        assert_eq!(blob_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(blob_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(blob_range(Some("bytes=0-1,3-4"), 10), Whole);
        assert_eq!(blob_range(Some("bytes=5-2"), 10), Whole);
        assert_eq!(blob_range(Some("items=0-1"), 10), Whole);
        assert_eq!(blob_range(Some("bytes=0-0"), 0), Unsatisfiable);
        assert_eq!(blob_range(Some("bytes=-3"), 0), Unsatisfiable);
        assert_eq!(blob_range(Some("bytes=-1"), 1), Part { start: 0, end: 0 });
    }

    #[test]
    fn content_ranges() {
        assert_eq!(chunk_start("0-21", Some(22)), Some(0));
        assert_eq!(chunk_start("22-41", Some(20)), Some(22));
        assert_eq!(chunk_start("bytes 22-41/*", None), Some(22));
        assert_eq!(chunk_start("22-41", Some(19)), None);
        assert_eq!(chunk_start("5-1", None), None);
        assert_eq!(chunk_start("x", None), None);
        assert_eq!(chunk_start("bytes 0-2/3", Some(3)), Some(0));
        assert_eq!(chunk_start("0-2/xyz", Some(3)), None);
        assert_eq!(chunk_start("0-2/2", Some(3)), None);
        assert_eq!(chunk_start("0-2/", Some(3)), None);
        assert_eq!(chunk_start("-2", None), None);
        assert_eq!(chunk_start("5-5", Some(1)), Some(5));
        assert_eq!(chunk_start("0-", None), None);
    }

    #[test]
    fn upload_ranges() {
        assert_eq!(upload_range(0), "0-0");
        assert_eq!(upload_range(1), "0-0");
        assert_eq!(upload_range(42), "0-41");
    }
}
