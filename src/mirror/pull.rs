//! A pull of a mirrored repository: what storage has, what the upstream is asked, what is
//! stored from its answer. Generic over the bucket, the fact cache and the upstream's fetch, so
//! every path is tested natively; the worker streams blob bytes itself (`api::mirror`).
//!
//! - A manifest by digest is fetched once, verified against the digest, and stored like a
//!   pushed one (its blobs come later, when pulled).
//! - A manifest by tag is served from storage while fresh, then revalidated with a HEAD;
//!   fetched again only when the upstream names another digest (by that digest, so what is
//!   stored is exactly what was named).
//! - A blob is served from storage when the repository links it. Otherwise the upstream's
//!   answer is handed to the caller to stream to the client (verified as it goes) and into
//!   the bucket; the blob is linked only once the bucket verified its bytes. A blob stored for
//!   another repository is never linked on the upstream's word: an upstream that answers 200 to
//!   every HEAD would otherwise hand any tenant's blob to whoever names its digest.

use super::client::{Client, Fetch, UpstreamResponse};
use super::config::Mirrored;
use super::freshness::{is_fresh, judge, Served, Verdict};
use crate::oci::digest::{Algorithm, Digest};
use crate::oci::error::{Code, RegistryError, Result};
use crate::oci::manifest::MAX_MANIFEST_BYTES;
use crate::oci::name::{Reference, RepoName, Tag};
use crate::storage::blobs::{self, BlobDescriptor};
use crate::storage::facts::FactCache;
use crate::storage::manifests::{self, Fetched};
use crate::storage::{mirror_tags, tags, Bucket};

/// Every manifest type the registry stores, as the `Accept` of upstream manifest requests.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// One pull of one mirrored repository.
pub struct Pull<'a, B: ?Sized, C: ?Sized, F: Fetch> {
    pub bucket: &'a B,
    pub facts: &'a C,
    pub client: &'a Client<'a, F>,
    pub mirrored: &'a Mirrored<'a>,
    pub name: &'a RepoName,
    pub now: u64,
    /// Names a fresh object if a manifest's bytes cannot go to their canonical key.
    pub id: &'a str,
}

/// How a manifest was made available.
#[derive(Debug)]
pub struct ManifestOutcome {
    pub served: Served,
    /// The manifest, when it was fetched just now (else: read it from storage).
    pub fetched: Option<Fetched>,
    /// Why the upstream could not answer, when storage serves a stale copy.
    pub stale: Option<RegistryError>,
}

/// A mirrored repository's tags.
#[derive(Debug)]
pub struct TagsOutcome {
    pub served: Served,
    /// The upstream's tags, lexically ordered; `None`: list what is stored (the upstream could
    /// not answer and never did).
    pub tags: Option<Vec<String>>,
    pub stale: Option<RegistryError>,
}

/// Pages of an upstream tag list followed at most.
const MAX_TAG_PAGES: usize = 20;

/// The target of a `Link: <url>; rel="next"` header.
fn next_link(header: &str) -> Option<&str> {
    header.split(',').find_map(|link| {
        let (target, params) = link.trim().split_once(';')?;
        let is_next = params.split(';').any(|p| matches!(p.trim().replace(' ', "").as_str(), "rel=\"next\"" | "rel=next"));
        is_next.then(|| target.trim().strip_prefix('<')?.strip_suffix('>')).flatten()
    })
}

#[derive(serde::Deserialize)]
struct TagListBody {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// Where a blob's bytes come from.
pub enum BlobSource<Body> {
    /// Storage (linked in the repository now, if it was not).
    Stored(BlobDescriptor),
    /// The upstream's answer: its length if known, and its body (empty for a HEAD).
    Upstream { length: Option<u64>, body: Body },
}

fn manifest_unknown(what: &str) -> RegistryError {
    RegistryError::new(Code::ManifestUnknown, format!("manifest unknown upstream: {what}"))
}

impl<B: Bucket + ?Sized, C: FactCache + ?Sized, F: Fetch> Pull<'_, B, C, F> {
    async fn ask(&self, method: &'static str, what: &str, accept: Option<&str>) -> (Verdict, Option<UpstreamResponse<F::Body>>) {
        let answer = self.client.send(method, &self.mirrored.url(what), accept, &self.mirrored.pull_scope()).await;
        let label = format!("{}/{what}", self.mirrored.remote);
        match answer {
            Ok(resp) => (judge(Ok(resp.status), &label), Some(resp)),
            Err(why) => (judge(Err(&why), &label), None),
        }
    }

    /// Makes manifest `reference` available in storage (see the module docs).
    pub async fn manifest(&self, reference: &Reference) -> Result<ManifestOutcome> {
        let outcome = |served, fetched, stale| Ok(ManifestOutcome { served, fetched, stale });
        let tag = match reference {
            Reference::Digest(digest) => {
                // Through the fact cache, as the pull that follows reads it.
                match manifests::stat(self.bucket, self.facts, self.name, reference).await {
                    Ok(_) => return outcome(Served::Hit, None, None),
                    Err(e) if e.code != Code::ManifestUnknown => return Err(e),
                    Err(_) => {}
                }
                let fetched = self.fetch_manifest(digest, None).await?;
                return outcome(Served::Miss, Some(fetched), None);
            }
            Reference::Tag(tag) => tag,
        };
        if let Some((_, checked)) = mirror_tags::get(self.bucket, self.name, tag).await? {
            if is_fresh(checked, self.now, self.mirrored.upstream.tag_ttl_seconds) {
                return outcome(Served::Hit, None, None);
            }
        }
        let local = tags::resolve_tag(self.bucket, self.name, tag).await?;
        self.revalidate(tag, local).await
    }

    /// Fetches `reference` from the upstream whatever storage says: what storage had is gone
    /// (evicted, or collected after), though a record or link said it was there.
    pub async fn manifest_again(&self, reference: &Reference) -> Result<ManifestOutcome> {
        match reference {
            Reference::Digest(digest) => {
                let fetched = self.fetch_manifest(digest, None).await?;
                Ok(ManifestOutcome { served: Served::Miss, fetched: Some(fetched), stale: None })
            }
            Reference::Tag(tag) => self.revalidate(tag, None).await,
        }
    }

    /// Asks the upstream which digest `tag` names (`local`: the one stored, if any).
    async fn revalidate(&self, tag: &Tag, local: Option<Digest>) -> Result<ManifestOutcome> {
        let outcome = |served, fetched, stale| Ok(ManifestOutcome { served, fetched, stale });
        let what = format!("manifests/{tag}");
        let (verdict, head) = self.ask("HEAD", &what, Some(MANIFEST_ACCEPT)).await;
        match verdict {
            Verdict::Found => {}
            Verdict::Missing => return Err(manifest_unknown(&format!("{}:{tag}", self.mirrored.remote))),
            Verdict::Failed(why) if local.is_some() => return outcome(Served::Stale, None, Some(why)),
            Verdict::Failed(why) => return Err(why),
        }
        let named = head.as_ref().and_then(|r| r.header("docker-content-digest")).and_then(|d| Digest::parse(d).ok());
        if let (Some(named), Some(local)) = (&named, &local) {
            if named == local {
                mirror_tags::set(self.bucket, self.name, tag, local, self.now).await?;
                return outcome(Served::Revalidated, None, None);
            }
        }
        let fetched = match &named {
            Some(named) => self.fetch_manifest(named, Some(tag)).await,
            None => self.fetch_tagged(tag).await,
        };
        match fetched {
            Ok(fetched) => {
                mirror_tags::set(self.bucket, self.name, tag, &fetched.digest, self.now).await?;
                outcome(Served::Miss, Some(fetched), None)
            }
            Err(why) if why.code == Code::Unavailable && local.is_some() => outcome(Served::Stale, None, Some(why)),
            Err(e) => Err(e),
        }
    }

    /// Fetches the manifest `digest` and stores it (pointing `tag` at it).
    async fn fetch_manifest(&self, digest: &Digest, tag: Option<&Tag>) -> Result<Fetched> {
        self.fetch_and_store(&digest.to_string(), Some(digest), tag).await
    }

    /// Fetches the manifest `tag` names (an upstream HEAD that named no digest) and stores it.
    async fn fetch_tagged(&self, tag: &Tag) -> Result<Fetched> {
        self.fetch_and_store(tag.as_str(), None, Some(tag)).await
    }

    async fn fetch_and_store(&self, reference: &str, expected: Option<&Digest>, tag: Option<&Tag>) -> Result<Fetched> {
        let what = format!("manifests/{reference}");
        let (verdict, resp) = self.ask("GET", &what, Some(MANIFEST_ACCEPT)).await;
        match verdict {
            Verdict::Found => {}
            Verdict::Missing => return Err(manifest_unknown(&format!("{}@{reference}", self.mirrored.remote))),
            Verdict::Failed(why) => return Err(why),
        }
        let resp = resp.expect("an answer was judged");
        let content_type = resp.header("content-type").map(str::to_string);
        let named = resp.header("docker-content-digest").and_then(|d| Digest::parse(d).ok());
        let unavailable = |detail: String| RegistryError::new(Code::Unavailable, detail);
        let bytes = self.client.fetch.read(resp.body, MAX_MANIFEST_BYTES).await.map_err(|e| unavailable(format!("upstream manifest {reference}: {e}")))?;
        let digest = match expected.or(named.as_ref()) {
            Some(want) => {
                let got = Digest::of(want.algorithm(), &bytes);
                if &got != want {
                    return Err(unavailable(format!("upstream sent a manifest whose digest is {got}, not {want}; nothing stored")));
                }
                got
            }
            None => Digest::of(Algorithm::Sha256, &bytes),
        };
        let stored = manifests::put_mirrored(self.bucket, self.facts, self.name, &digest, tag, bytes.clone(), content_type.as_deref(), self.now, self.id).await?;
        Ok(Fetched { digest, media_type: stored.media_type, bytes })
    }

    /// The tags of the repository: the upstream's, fetched again once `tag_ttl_seconds` old
    /// (every page of them, following `Link`), stale when the upstream cannot answer.
    pub async fn tags(&self) -> Result<TagsOutcome> {
        let stored = mirror_tags::get_list(self.bucket, self.name).await?;
        if let Some((tags, checked)) = &stored {
            if is_fresh(*checked, self.now, self.mirrored.upstream.tag_ttl_seconds) {
                return Ok(TagsOutcome { served: Served::Hit, tags: Some(tags.clone()), stale: None });
            }
        }
        match self.fetch_tags().await {
            Ok(tags) => {
                mirror_tags::set_list(self.bucket, self.name, &tags, self.now).await?;
                Ok(TagsOutcome { served: Served::Miss, tags: Some(tags), stale: None })
            }
            Err(e) if e.code == Code::NameUnknown => Err(e),
            Err(why) => Ok(TagsOutcome { served: Served::Stale, tags: stored.map(|(t, _)| t), stale: Some(why) }),
        }
    }

    async fn fetch_tags(&self) -> Result<Vec<String>> {
        let mut url = self.mirrored.url("tags/list");
        let label = format!("{}/tags/list", self.mirrored.remote);
        let mut tags = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let answer = self.client.send("GET", &url, Some("application/json"), &self.mirrored.pull_scope()).await;
            let resp = match (judge(answer.as_ref().map(|r| r.status).map_err(String::as_str), &label), answer) {
                (Verdict::Found, Ok(resp)) => resp,
                (Verdict::Missing, _) => return Err(RegistryError::new(Code::NameUnknown, format!("repository unknown upstream: {}", self.mirrored.remote))),
                (Verdict::Failed(why), _) => return Err(why),
                (Verdict::Found, Err(_)) => unreachable!("a verdict of Found has an answer"),
            };
            let next = resp.header("link").and_then(next_link).map(str::to_string);
            let bytes = self.client.fetch.read(resp.body, 4 * 1024 * 1024).await.map_err(|e| RegistryError::new(Code::Unavailable, format!("upstream {label}: {e}")))?;
            let body: TagListBody = serde_json::from_slice(&bytes).map_err(|e| RegistryError::new(Code::Unavailable, format!("upstream {label}: {e}")))?;
            tags.extend(body.tags.unwrap_or_default().into_iter().filter(|t| Tag::parse(t).is_ok()));
            // Pages are followed on the upstream's own origin only: a Link elsewhere ends the list.
            match next.and_then(|n| url::Url::parse(&url).ok()?.join(&n).ok()).filter(|n| self.client.is_home(n)) {
                Some(n) => url = n.to_string(),
                None => break,
            }
        }
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// Where the bytes of blob `digest` come from (see the module docs); `with_body` false
    /// asks the upstream only for the blob's length (a HEAD).
    pub async fn blob(&self, digest: &Digest, with_body: bool) -> Result<(Served, BlobSource<F::Body>)> {
        // As for any repository, a HEAD answers only for a blob that is there (`blobs::present`).
        let stored = match with_body {
            true => blobs::linked_for_pull(self.bucket, self.facts, self.name, digest).await?,
            false => blobs::present(self.bucket, self.facts, self.name, digest, self.now).await?,
        };
        if let Some(desc) = stored {
            return Ok((Served::Hit, BlobSource::Stored(desc)));
        }
        self.blob_upstream(digest, with_body).await
    }

    /// The blob from the upstream whatever storage says: the link was there, the bytes were
    /// not (collected after an eviction).
    pub async fn blob_again(&self, digest: &Digest) -> Result<(Served, BlobSource<F::Body>)> {
        self.blob_upstream(digest, true).await
    }

    /// The upstream's answer for the blob. Never a link to bytes stored for someone else: an
    /// upstream's 200 proves nothing (one that answers 200 to every HEAD would hand out every
    /// tenant's blobs), so the bytes come from the upstream, and the caller links the blob only
    /// once they are verified (a blob stored before keeps its one copy: the fill's commit drops
    /// the new one).
    async fn blob_upstream(&self, digest: &Digest, with_body: bool) -> Result<(Served, BlobSource<F::Body>)> {
        let method = if with_body { "GET" } else { "HEAD" };
        let (verdict, resp) = self.ask(method, &format!("blobs/{digest}"), None).await;
        match verdict {
            Verdict::Found => {}
            Verdict::Missing => return Err(RegistryError::new(Code::BlobUnknown, format!("blob unknown upstream: {digest}"))),
            Verdict::Failed(why) => return Err(why),
        }
        let resp = resp.expect("an answer was judged");
        let length = resp.header("content-length").and_then(|l| l.trim().parse().ok());
        Ok((Served::Miss, BlobSource::Upstream { length, body: resp.body }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::challenge::TokenCache;
    use crate::mirror::client::double::{answer, Answer, FakeUpstream};
    use crate::mirror::client::UpstreamRequest;
    use crate::mirror::config::Upstreams;
    use crate::storage::memory::{MemoryBucket, MemoryFacts};
    use futures_executor::block_on;
    use std::cell::RefCell;

    const LAYER: &[u8] = b"layer bytes";

    fn manifest_with(layer: &[u8]) -> Vec<u8> {
        let config = Digest::of(Algorithm::Sha256, b"{}");
        let layer = Digest::of(Algorithm::Sha256, layer);
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{}}}]}}"#,
            LAYER.len()
        )
        .into_bytes()
    }

    /// An upstream serving `library/app` with one tag; its state can change between pulls.
    struct Upstream {
        tag_points_at: RefCell<Vec<u8>>,
        /// Answer every request with this status instead (None: answer normally).
        failing: RefCell<Option<u16>>,
        /// Serve these bytes for any manifest, whatever was asked (a lying upstream).
        lie: RefCell<Option<Vec<u8>>>,
    }

    impl Upstream {
        fn new() -> Self {
            Upstream { tag_points_at: RefCell::new(manifest_with(LAYER)), failing: RefCell::new(None), lie: RefCell::new(None) }
        }

        fn answer(&self, req: &UpstreamRequest) -> Answer {
            if let Some(status) = *self.failing.borrow() {
                return if status == 0 { Err("connection refused".into()) } else { answer(status, &[], b"") };
            }
            let current = self.tag_points_at.borrow().clone();
            let digest = Digest::of(Algorithm::Sha256, &current).to_string();
            let path = req.url.strip_prefix("http://up/v2/library/app/").expect("only library/app is asked for");
            let manifest_headers = [("Docker-Content-Digest", digest.as_str()), ("Content-Type", "application/vnd.oci.image.manifest.v1+json")];
            let body = |b: &[u8]| if req.method == "HEAD" { Vec::new() } else { b.to_vec() };
            match path {
                p if p == "manifests/v1" || p == format!("manifests/{digest}") => {
                    let served = self.lie.borrow().clone().unwrap_or(current);
                    answer(200, &manifest_headers, &body(&served))
                }
                p if p == format!("blobs/{}", Digest::of(Algorithm::Sha256, LAYER)) => {
                    answer(200, &[("Content-Length", &LAYER.len().to_string())], &body(LAYER))
                }
                _ => answer(404, &[], b""),
            }
        }
    }

    struct Setup {
        bucket: MemoryBucket,
        facts: MemoryFacts,
        upstreams: Upstreams,
        tokens: TokenCache,
        name: RepoName,
    }

    fn setup() -> Setup {
        Setup {
            bucket: MemoryBucket::default(),
            facts: MemoryFacts::new(0),
            upstreams: Upstreams::parse(r#"[{"prefix": "hub/", "url": "http://up", "library": true, "tag_ttl_seconds": 60}]"#).unwrap(),
            tokens: TokenCache::default(),
            name: RepoName::parse("hub/app").unwrap(),
        }
    }

    /// Runs `f` with a pull at `now` against `upstream`; returns its result and the requests sent.
    fn pull_at<T>(s: &Setup, upstream: &Upstream, now: u64, f: impl AsyncFnOnce(&Pull<'_, MemoryBucket, MemoryFacts, FakeUpstream<&dyn Fn(&UpstreamRequest) -> Answer>>) -> T) -> (T, Vec<String>) {
        let handler: &dyn Fn(&UpstreamRequest) -> Answer = &|r| upstream.answer(r);
        let fake = FakeUpstream::new(handler);
        let mirrored = s.upstreams.resolve(&s.name).unwrap();
        let client = Client::new(&fake, &s.tokens, &mirrored.upstream.url, None, now);
        let pull = Pull { bucket: &s.bucket, facts: &s.facts, client: &client, mirrored: &mirrored, name: &s.name, now, id: "id" };
        let out = block_on(f(&pull));
        (out, fake.urls())
    }

    fn tag() -> Reference {
        Reference::Tag(Tag::parse("v1").unwrap())
    }

    #[test]
    fn tag_fetched_then_fresh_then_revalidated_then_refetched_when_moved() {
        let s = setup();
        let up = Upstream::new();
        let first = Digest::of(Algorithm::Sha256, &up.tag_points_at.borrow());
        let (out, asked) = pull_at(&s, &up, 1_000, async |p| p.manifest(&tag()).await.unwrap());
        assert_eq!(out.served, Served::Miss);
        let fetched = out.fetched.unwrap();
        assert_eq!((&fetched.digest, fetched.media_type.as_str()), (&first, "application/vnd.oci.image.manifest.v1+json"));
        assert_eq!(asked, ["HEAD http://up/v2/library/app/manifests/v1".to_string(), format!("GET http://up/v2/library/app/manifests/{first}")]);
        // Stored like a push: the tag and the revision, without the layers.
        let stored = block_on(manifests::get(&s.bucket, &s.facts, &s.name, &tag())).unwrap();
        assert_eq!((stored.digest, stored.bytes), (first.clone(), manifest_with(LAYER)));

        // Fresh for 60 s: not asked.
        let (out, asked) = pull_at(&s, &up, 60_999, async |p| p.manifest(&tag()).await.unwrap());
        assert_eq!((out.served, out.fetched.is_none(), asked.len()), (Served::Hit, true, 0));
        // Then revalidated with one HEAD, and fresh again from then on.
        let (out, asked) = pull_at(&s, &up, 61_000, async |p| p.manifest(&tag()).await.unwrap());
        assert_eq!((out.served, asked), (Served::Revalidated, vec!["HEAD http://up/v2/library/app/manifests/v1".to_string()]));
        let (out, _) = pull_at(&s, &up, 121_000 - 1, async |p| p.manifest(&tag()).await.unwrap());
        assert_eq!(out.served, Served::Hit);

        // The upstream tag moves: fetched again, by the new digest, and the tag follows.
        *up.tag_points_at.borrow_mut() = manifest_with(b"other layer");
        let second = Digest::of(Algorithm::Sha256, &up.tag_points_at.borrow());
        let (out, asked) = pull_at(&s, &up, 200_000, async |p| p.manifest(&tag()).await.unwrap());
        assert_eq!((out.served, out.fetched.unwrap().digest), (Served::Miss, second.clone()));
        assert_eq!(asked[1], format!("GET http://up/v2/library/app/manifests/{second}"));
        assert_eq!(block_on(tags::resolve_tag(&s.bucket, &s.name, &Tag::parse("v1").unwrap())).unwrap(), Some(second.clone()));
        // Evicted meanwhile (the record still says fresh): asked again on demand.
        block_on(manifests::delete(&s.bucket, &s.facts, &s.name, &Reference::Digest(second.clone()))).unwrap();
        let (out, _) = pull_at(&s, &up, 200_002, async |p| p.manifest(&tag()).await.unwrap());
        assert_eq!(out.served, Served::Hit);
        let (out, asked) = pull_at(&s, &up, 200_002, async |p| p.manifest_again(&tag()).await.unwrap());
        assert_eq!((out.served, out.fetched.unwrap().digest, asked.len()), (Served::Miss, second.clone(), 2));
        let (out, asked) = pull_at(&s, &up, 200_003, async |p| p.manifest_again(&Reference::Digest(second.clone())).await.unwrap());
        assert_eq!((out.served, asked), (Served::Miss, vec![format!("GET http://up/v2/library/app/manifests/{second}")]));
        // The old revision stays (by digest, immutable).
        let (out, asked) = pull_at(&s, &up, 200_001, async |p| p.manifest(&Reference::Digest(first.clone())).await.unwrap());
        assert_eq!((out.served, asked.len()), (Served::Hit, 0));
    }

    #[test]
    fn upstream_failures_serve_stale_or_fail() {
        let s = setup();
        let up = Upstream::new();
        for status in [0u16, 429, 500, 503, 401] {
            *up.failing.borrow_mut() = Some(status);
            let (e, _) = pull_at(&s, &up, 0, async |p| p.manifest(&tag()).await.unwrap_err());
            let want = if status == 429 { Code::TooManyRequests } else { Code::Unavailable };
            assert_eq!(e.code, want, "{status}");
            assert!(s.bucket.keys().is_empty(), "nothing stored after {status}");
        }
        *up.failing.borrow_mut() = None;
        pull_at(&s, &up, 0, async |p| p.manifest(&tag()).await.unwrap());
        for status in [0u16, 429, 502] {
            *up.failing.borrow_mut() = Some(status);
            let (out, asked) = pull_at(&s, &up, 3_600_000, async |p| p.manifest(&tag()).await.unwrap());
            assert_eq!((out.served, asked.len()), (Served::Stale, 1));
            assert!(out.stale.unwrap().detail.contains("library/app/manifests/v1"));
        }
        // 404 upstream: the tag is gone there; not served.
        *up.failing.borrow_mut() = Some(404);
        let (e, _) = pull_at(&s, &up, 3_600_000, async |p| p.manifest(&tag()).await.unwrap_err());
        assert_eq!(e.code, Code::ManifestUnknown);
    }

    #[test]
    fn a_lying_upstream_stores_nothing() {
        let s = setup();
        let up = Upstream::new();
        *up.lie.borrow_mut() = Some(manifest_with(b"something else"));
        let (e, _) = pull_at(&s, &up, 0, async |p| p.manifest(&tag()).await.unwrap_err());
        assert_eq!(e.code, Code::Unavailable);
        assert!(e.detail.contains("nothing stored"), "{}", e.detail);
        let d = Digest::of(Algorithm::Sha256, &manifest_with(LAYER));
        let (e, _) = pull_at(&s, &up, 0, async |p| p.manifest(&Reference::Digest(d.clone())).await.unwrap_err());
        assert_eq!(e.code, Code::Unavailable);
        assert!(s.bucket.keys().is_empty());
        // Unknown digest upstream: 404.
        let unknown = Digest::of(Algorithm::Sha256, b"nope");
        let (e, _) = pull_at(&s, &up, 0, async |p| p.manifest(&Reference::Digest(unknown.clone())).await.unwrap_err());
        assert_eq!(e.code, Code::ManifestUnknown);
    }

    #[test]
    fn link_headers() {
        assert_eq!(next_link(r#"</v2/a/tags/list?last=x&n=2>; rel="next""#), Some("/v2/a/tags/list?last=x&n=2"));
        assert_eq!(next_link(r#"<https://h/p1>; rel="prev", <https://h/p3>; rel=next"#), Some("https://h/p3"));
        assert_eq!(next_link(r#"<https://h/p1>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn tags_from_the_upstream_every_page_then_fresh_then_stale() {
        let s = setup();
        let fail = RefCell::new(None::<u16>);
        let handler = |req: &UpstreamRequest| -> Answer {
            if let Some(status) = *fail.borrow() {
                return answer(status, &[], b"");
            }
            match req.url.as_str() {
                "http://up/v2/library/app/tags/list" => answer(200, &[("Link", r#"</v2/library/app/tags/list?last=b&n=2>; rel="next""#)], br#"{"name":"library/app","tags":["b","a"]}"#),
                "http://up/v2/library/app/tags/list?last=b&n=2" => answer(200, &[], br#"{"name":"library/app","tags":["c","b","not a tag!"]}"#),
                other => panic!("unexpected {other}"),
            }
        };
        let fake = FakeUpstream::new(&handler);
        let mirrored = s.upstreams.resolve(&s.name).unwrap();
        let run = |now: u64| {
            let client = Client::new(&fake, &s.tokens, &mirrored.upstream.url, None, now);
            let pull = Pull { bucket: &s.bucket, facts: &s.facts, client: &client, mirrored: &mirrored, name: &s.name, now, id: "id" };
            block_on(pull.tags())
        };
        let out = run(0).unwrap();
        assert_eq!((out.served, out.tags.unwrap()), (Served::Miss, vec!["a".to_string(), "b".into(), "c".into()]));
        assert_eq!(fake.urls().len(), 2);
        let out = run(59_999).unwrap();
        assert_eq!((out.served, out.tags.unwrap().len(), fake.urls().len()), (Served::Hit, 3, 2));
        *fail.borrow_mut() = Some(502);
        let out = run(60_000).unwrap();
        assert_eq!((out.served, out.tags.unwrap().len()), (Served::Stale, 3));
        assert!(out.stale.unwrap().detail.contains("502"));
        *fail.borrow_mut() = Some(404);
        assert_eq!(run(60_000).unwrap_err().code, Code::NameUnknown);
        // Never fetched, upstream down: nothing to list from here (the caller lists storage).
        let other = Setup { name: RepoName::parse("hub/other").unwrap(), ..setup() };
        let mirrored = other.upstreams.resolve(&other.name).unwrap();
        *fail.borrow_mut() = Some(503);
        let client = Client::new(&fake, &other.tokens, &mirrored.upstream.url, None, 0);
        let pull = Pull { bucket: &other.bucket, facts: &other.facts, client: &client, mirrored: &mirrored, name: &other.name, now: 0, id: "id" };
        let out = block_on(pull.tags()).unwrap();
        assert_eq!((out.served, out.tags), (Served::Stale, None));
    }

    #[test]
    fn blobs_from_upstream_never_linked_on_the_upstreams_word() {
        let s = setup();
        let up = Upstream::new();
        let layer = Digest::of(Algorithm::Sha256, LAYER);
        let (out, asked) = pull_at(&s, &up, 0, async |p| p.blob(&layer, true).await.unwrap());
        let (served, BlobSource::Upstream { length, body }) = out else { panic!("not from upstream") };
        assert_eq!((served, length, body.as_slice()), (Served::Miss, Some(LAYER.len() as u64), LAYER));
        assert_eq!(asked, [format!("GET http://up/v2/library/app/blobs/{layer}")]);
        // A HEAD asks for the length only.
        let (out, asked) = pull_at(&s, &up, 0, async |p| p.blob(&layer, false).await.unwrap());
        assert!(matches!(out, (Served::Miss, BlobSource::Upstream { length: Some(11), .. })));
        assert_eq!(asked, [format!("HEAD http://up/v2/library/app/blobs/{layer}")]);

        // Stored for another repository: never linked on the upstream's word (a HEAD that says
        // 200 to anything); the bytes come from the upstream, to be verified and filled.
        let other = RepoName::parse("mine/app").unwrap();
        block_on(s.bucket.put("objects/x/data", LAYER.to_vec(), None, crate::storage::PutIf::Always)).unwrap();
        block_on(blobs::commit(&s.bucket, &other, &layer, LAYER.len() as u64, "objects/x/data".into(), 0)).unwrap();
        let (out, asked) = pull_at(&s, &up, 0, async |p| p.blob(&layer, true).await.unwrap());
        assert!(matches!(out, (Served::Miss, BlobSource::Upstream { length: Some(11), .. })));
        assert_eq!(asked, [format!("GET http://up/v2/library/app/blobs/{layer}")]);
        let (out, asked) = pull_at(&s, &up, 0, async |p| p.blob(&layer, false).await.unwrap());
        assert!(matches!(out, (Served::Miss, BlobSource::Upstream { length: Some(11), .. })));
        assert_eq!(asked, [format!("HEAD http://up/v2/library/app/blobs/{layer}")]);
        assert!(block_on(blobs::linked(&s.bucket, &s.name, &layer)).unwrap().is_none(), "nothing linked before the bytes are verified");
        // Once linked (by a verified fill), served from storage.
        block_on(blobs::commit(&s.bucket, &s.name, &layer, LAYER.len() as u64, "objects/x/data".into(), 0)).unwrap();
        let (out, asked) = pull_at(&s, &up, 0, async |p| p.blob(&layer, true).await.unwrap());
        assert!(matches!(out, (Served::Hit, BlobSource::Stored(_))));
        assert!(asked.is_empty());
        // Linked, but the bytes are gone: asked again, for the bytes.
        let (out, asked) = pull_at(&s, &up, 0, async |p| p.blob_again(&layer).await.unwrap());
        assert!(matches!(out, (Served::Miss, BlobSource::Upstream { length: Some(11), .. })));
        assert_eq!(asked, [format!("GET http://up/v2/library/app/blobs/{layer}")]);

        // One the upstream does not have is not linked, even when stored for someone else.
        let private = Digest::of(Algorithm::Sha256, b"private");
        block_on(s.bucket.put("objects/p/data", b"private".to_vec(), None, crate::storage::PutIf::Always)).unwrap();
        block_on(blobs::commit(&s.bucket, &other, &private, 7, "objects/p/data".into(), 0)).unwrap();
        let (e, _) = pull_at(&s, &up, 0, async |p| p.blob(&private, true).await.err().unwrap());
        assert_eq!(e.code, Code::BlobUnknown);
        assert!(block_on(blobs::linked(&s.bucket, &s.name, &private)).unwrap().is_none());
        *up.failing.borrow_mut() = Some(503);
        let (e, _) = pull_at(&s, &up, 0, async |p| p.blob(&private, true).await.err().unwrap());
        assert_eq!(e.code, Code::Unavailable);
    }
}
