// The pull-through mirror, over real HTTP: a second registry on the emulator with access
// control on is the upstream (a real Docker token flow), and a fake upstream this file
// controls plays the upstream that is down, slow or lying.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { registry, sha256, errorCode, imageManifest, HTPASSWD, basicAuth, OCI_MANIFEST, storageOps } from "./helpers.mjs";
import { fakeUpstream } from "./fakeupstream.mjs";

const ACCEPT = { accept: `${OCI_MANIFEST}, application/vnd.oci.image.index.v1+json` };
let upstream, fake, cdn, mirror;

before(async () => {
  upstream = await registry({
    AUTH_HTPASSWD: HTPASSWD,
    AUTH_RULES: JSON.stringify([
      { user: "alice", repos: ["*"], actions: ["pull", "push", "delete"] },
      { user: "anonymous", repos: ["library/*"], actions: ["pull"] },
    ]),
    TOKEN_SECRET: "upstream-token-secret",
  });
  fake = await fakeUpstream();
  cdn = await fakeUpstream();
  mirror = await registry({
    UPSTREAMS: JSON.stringify([
      { prefix: "hub/", url: upstream.url, library: true, tag_ttl_seconds: 3600 },
      { prefix: "rv/", url: upstream.url, library: true, tag_ttl_seconds: 0 },
      { prefix: "priv/", url: upstream.url, credentials: "PRIV_CREDENTIALS" },
      { prefix: "anon/", url: upstream.url },
      { prefix: "fake/", url: fake.url, tag_ttl_seconds: 0 },
      { prefix: "fakeauth/", url: fake.url, credentials: "FAKE_CREDENTIALS", redirect_origins: [cdn.url] },
      { prefix: "", url: upstream.url, library: true },
    ]),
    PRIV_CREDENTIALS: "alice:alice-pw",
    FAKE_CREDENTIALS: "mirror:fake-pw",
    UPSTREAM_TIMEOUT_SECONDS: "2",
  });
});

after(async () => {
  await mirror?.close();
  await upstream?.close();
  await fake?.close();
  await cdn?.close();
});

const alice = { authorization: basicAuth("alice") };

// Pushes an image (a config and `layers`) to the upstream registry as alice.
async function pushUpstream(name, tag, layers = [randomBytes(1000)]) {
  const blobs = [Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", name })), ...layers];
  for (const b of blobs) {
    const res = await upstream.fetch(`/v2/${name}/blobs/uploads/?digest=${sha256(b)}`, { method: "POST", body: b, headers: alice });
    assert.equal(res.status, 201, `push blob: ${await res.text()}`);
  }
  const [config, ...rest] = blobs;
  const manifest = imageManifest(
    { digest: sha256(config), size: config.length },
    rest.map((l) => ({ digest: sha256(l), size: l.length })),
  );
  const res = await upstream.fetch(`/v2/${name}/manifests/${tag}`, { method: "PUT", body: manifest, headers: { ...alice, "content-type": OCI_MANIFEST } });
  assert.equal(res.status, 201, `push manifest: ${await res.text()}`);
  return { manifest, digest: sha256(manifest), layers: rest, config };
}

const ops = storageOps;

// Waits until `check` holds: the mirror records a fill after its response went out.
async function eventually(check, what) {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`never happened: ${what}`);
}

const linked = (name, digest) => async () => (await mirror.keys(`repositories/${name}/_layers/sha256/${digest.slice(7)}/`)).length === 1;

test("a cold pull fills storage from the upstream once; later pulls never ask it", async () => {
  const image = await pushUpstream("library/cold", "v1");
  const res = await mirror.fetch("/v2/hub/cold/manifests/v1", { headers: ACCEPT });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("registry-upstream"), "miss");
  assert.equal(res.headers.get("docker-content-digest"), image.digest);
  assert.equal(res.headers.get("content-type"), OCI_MANIFEST);
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), image.manifest);
  // Anonymous pulls of library/* need no token there: a HEAD, then a GET by digest.
  assert.equal(ops(res).upstream, 2);

  const layer = image.layers[0];
  const digest = sha256(layer);
  const blob = await mirror.fetch(`/v2/hub/cold/blobs/${digest}`);
  assert.equal(blob.status, 200);
  assert.equal(blob.headers.get("registry-upstream"), "miss");
  assert.equal(blob.headers.get("docker-content-digest"), digest);
  assert.deepEqual(Buffer.from(await blob.arrayBuffer()), layer);
  assert.equal(ops(blob).upstream, 1);
  await eventually(linked("hub/cold", digest), "the layer is recorded and linked");

  for (const path of ["/v2/hub/cold/manifests/v1", `/v2/hub/cold/manifests/${image.digest}`, `/v2/hub/cold/blobs/${digest}`]) {
    const again = await mirror.fetch(path, { headers: ACCEPT });
    assert.equal(again.status, 200, path);
    assert.equal(again.headers.get("registry-upstream"), "hit", path);
    assert.equal(ops(again).upstream, 0, path);
    await again.arrayBuffer();
  }
  const warm = await mirror.fetch(`/v2/hub/cold/blobs/${digest}`);
  assert.deepEqual(Buffer.from(await warm.arrayBuffer()), layer);
  // Stored like a push: the catalog lists it, the tag is listed, Range works.
  const tags = await (await mirror.fetch("/v2/hub/cold/tags/list")).json();
  assert.deepEqual(tags, { name: "hub/cold", tags: ["v1"] });
  const catalog = await (await mirror.fetch("/v2/_catalog")).json();
  assert.ok(catalog.repositories.includes("hub/cold"), JSON.stringify(catalog));
  const part = await mirror.fetch(`/v2/hub/cold/blobs/${digest}`, { headers: { range: "bytes=10-19" } });
  assert.equal(part.status, 206);
  assert.deepEqual(Buffer.from(await part.arrayBuffer()), layer.subarray(10, 20));
  // The storage totals count what the pulls stored: the manifest, its tag, the one layer pulled.
  const cold = async () => (await (await mirror.fetch("/admin/stats")).json()).repositories.find((r) => r.name === "hub/cold");
  await eventually(async () => (await cold())?.blobs === 1, "the fill is counted");
  assert.deepEqual(await cold(), { name: "hub/cold", blobs: 1, blob_bytes: layer.length, manifests: 1, manifest_bytes: image.manifest.length, tags: 1 });
});

test("a HEAD of a blob not stored asks the upstream for its length and stores nothing", async () => {
  const image = await pushUpstream("library/headonly", "v1");
  const digest = sha256(image.layers[0]);
  const res = await mirror.fetch(`/v2/hub/headonly/blobs/${digest}`, { method: "HEAD" });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-length"), String(image.layers[0].length));
  assert.equal(res.headers.get("registry-upstream"), "miss");
  assert.deepEqual(await mirror.keys(`repositories/hub/headonly/_layers/`), []);
  const missing = await mirror.fetch(`/v2/hub/headonly/blobs/${sha256(Buffer.from("nope"))}`);
  assert.equal(missing.status, 404);
  assert.equal(await errorCode(missing), "BLOB_UNKNOWN");
});

test("credentials reach private upstream repositories; without them the upstream refuses", async () => {
  const image = await pushUpstream("team/private", "v1");
  const res = await mirror.fetch("/v2/priv/team/private/manifests/v1", { headers: ACCEPT });
  assert.equal(res.status, 200, await res.clone().text());
  assert.equal(res.headers.get("docker-content-digest"), image.digest);
  // The token flow with alice's credentials: HEAD (401), token, HEAD, GET by digest.
  assert.equal(ops(res).upstream, 4);
  const layer = await mirror.fetch(`/v2/priv/team/private/blobs/${sha256(image.layers[0])}`);
  assert.deepEqual(Buffer.from(await layer.arrayBuffer()), image.layers[0]);
  assert.equal(ops(layer).upstream, 1, "the token is reused");
  // The same upstream and scope without credentials never gets alice's token.
  const refused = await mirror.fetch("/v2/anon/team/private/manifests/v1", { headers: ACCEPT });
  assert.equal(refused.status, 503);
  const body = await refused.json();
  assert.equal(body.errors[0].code, "UNAVAILABLE");
  assert.match(body.errors[0].detail, /upstream answered 401/);
  assert.deepEqual(await mirror.keys("repositories/anon/"), []);
});

test("the empty prefix mirrors every other name, with Docker Hub's library/ mapping", async () => {
  const image = await pushUpstream("library/plain", "v1");
  for (const name of ["plain", "library/plain"]) {
    const res = await mirror.fetch(`/v2/${name}/manifests/v1`, { headers: ACCEPT });
    assert.equal(res.status, 200, name);
    assert.equal(res.headers.get("docker-content-digest"), image.digest, name);
  }
});

test("a tag past its freshness is revalidated with a HEAD, and fetched again when it moved upstream", async () => {
  const first = await pushUpstream("library/moving", "v1");
  const a = await mirror.fetch("/v2/rv/moving/manifests/v1", { headers: ACCEPT });
  assert.equal(a.headers.get("registry-upstream"), "miss");
  const b = await mirror.fetch("/v2/rv/moving/manifests/v1", { headers: ACCEPT });
  assert.equal(b.headers.get("registry-upstream"), "revalidated");
  assert.equal(b.headers.get("docker-content-digest"), first.digest);
  assert.equal(ops(b).upstream, 1, "one HEAD with the cached token");
  const second = await pushUpstream("library/moving", "v1");
  const c = await mirror.fetch("/v2/rv/moving/manifests/v1", { headers: ACCEPT });
  assert.equal(c.headers.get("registry-upstream"), "miss");
  assert.equal(c.headers.get("docker-content-digest"), second.digest);
  assert.deepEqual(Buffer.from(await c.arrayBuffer()), second.manifest);
  // The first revision stays available by digest, without asking.
  const old = await mirror.fetch(`/v2/rv/moving/manifests/${first.digest}`, { headers: ACCEPT });
  assert.equal(old.headers.get("registry-upstream"), "hit");
});

test("mirrored repositories are read-only", async () => {
  await pushUpstream("library/ro", "v1");
  const m = imageManifest({ digest: sha256(Buffer.from("{}")), size: 2 }, []);
  const attempts = [
    ["PUT", "/v2/hub/ro/manifests/v2", m],
    ["DELETE", "/v2/hub/ro/manifests/v1"],
    ["POST", "/v2/hub/ro/blobs/uploads/"],
    ["POST", `/v2/hub/ro/blobs/uploads/?digest=${sha256(Buffer.from("x"))}`, Buffer.from("x")],
    ["DELETE", `/v2/hub/ro/blobs/${sha256(Buffer.from("x"))}`],
    ["PATCH", "/v2/hub/ro/blobs/uploads/0b5f7f43-7c8e-4f43-9a57-3f1b0e2a4c11"],
  ];
  for (const [method, path, body] of attempts) {
    const res = await mirror.fetch(path, { method, body, headers: { "content-type": OCI_MANIFEST } });
    assert.equal(res.status, 405, `${method} ${path}`);
    assert.equal(await errorCode(res), "UNSUPPORTED");
  }
  assert.deepEqual(await mirror.keys("repositories/hub/ro/"), []);
});

test("an upstream that is down, failing or silent: what is stored is served stale, else the spec's error", async () => {
  const layer = randomBytes(2000);
  const config = Buffer.from("{}");
  const manifest = imageManifest({ digest: fake.blob(config), size: 2 }, [{ digest: fake.blob(layer), size: layer.length }]);
  const digest = fake.manifest("shaky", "v1", manifest);
  const ok = await mirror.fetch("/v2/fake/shaky/manifests/v1", { headers: ACCEPT });
  assert.equal(ok.headers.get("registry-upstream"), "miss");
  try {
    for (const [mode, status] of [["status", 503], ["status", 500], ["status", 429], ["hang"]]) {
      fake.set(mode, status);
      const res = await mirror.fetch("/v2/fake/shaky/manifests/v1", { headers: ACCEPT });
      assert.equal(res.status, 200, `${mode} ${status}`);
      assert.equal(res.headers.get("registry-upstream"), "stale");
      assert.equal(res.headers.get("docker-content-digest"), digest);
      assert.match(res.headers.get("warning"), /^110 - "Response is Stale: /);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), manifest);
      // Nothing stored for these: the spec's error, with the upstream's status.
      const want = status === 429 ? 429 : 503;
      const detail = mode === "hang" ? /no answer within 2000 ms/ : new RegExp(`answered ${status}`);
      for (const path of ["/v2/fake/shaky/manifests/v2", `/v2/fake/shaky/blobs/${sha256(layer)}`]) {
        const cold = await mirror.fetch(path, { headers: ACCEPT });
        assert.equal(cold.status, want, `${mode} ${status} ${path}`);
        const body = await cold.json();
        assert.equal(body.errors[0].code, status === 429 ? "TOOMANYREQUESTS" : "UNAVAILABLE");
        assert.match(body.errors[0].detail, detail);
      }
    }
  } finally {
    fake.set("normal");
  }
  const down = await registry({ UPSTREAMS: JSON.stringify([{ prefix: "x/", url: "http://127.0.0.1:9" }]) });
  try {
    const res = await down.fetch("/v2/x/y/manifests/v1", { headers: ACCEPT });
    assert.equal(res.status, 503);
    assert.match((await res.json()).errors[0].detail, /upstream unreachable/);
  } finally {
    await down.close();
  }
});

test("a lying upstream: a manifest or blob that does not match its digest is never stored", async () => {
  const honest = randomBytes(3000);
  const layer = randomBytes(3000);
  const manifest = imageManifest({ digest: fake.blob(Buffer.from("{}")), size: 2 }, [{ digest: fake.blob(layer), size: layer.length }]);
  fake.manifest("liar", "v1", manifest);
  const other = imageManifest({ digest: sha256(Buffer.from("{}")), size: 2 }, []);
  fake.lie("liar:v1", other);
  fake.lie(`liar:${sha256(manifest)}`, other);
  const res = await mirror.fetch("/v2/fake/liar/manifests/v1", { headers: ACCEPT });
  assert.equal(res.status, 503);
  assert.match((await res.json()).errors[0].detail, /nothing stored/);
  assert.deepEqual(await mirror.keys("repositories/fake/liar/"), []);

  // A blob: the client's answer is cut short before its last piece (never a whole body of
  // other bytes), the bucket refuses them, and nothing is recorded.
  fake.lie(sha256(layer), randomBytes(3000));
  const blob = await mirror.fetch(`/v2/fake/liar/blobs/${sha256(layer)}`);
  assert.equal(blob.status, 200);
  await assert.rejects(blob.arrayBuffer());
  // An honest fill requested after it is recorded; by then the lie was refused long ago.
  const honestDigest = fake.blob(honest);
  const next = await mirror.fetch(`/v2/fake/liar/blobs/${honestDigest}`);
  assert.deepEqual(Buffer.from(await next.arrayBuffer()), honest);
  await eventually(linked("fake/liar", honestDigest), "the honest blob is recorded");
  const hex = sha256(layer).slice(7);
  assert.deepEqual(await mirror.keys(`blobs/sha256/${hex.slice(0, 2)}/${hex}/`), []);
  assert.deepEqual(await mirror.keys(`repositories/fake/liar/_layers/sha256/${hex}/`), []);
  // Of unknown length (chunked, filled in parts and hashed on the way): cut short too, before
  // its last piece. (workerd ends an errored chunked body as if complete, workerd#6818, so the
  // client may see a clean end; it never sees the whole of the other bytes.)
  const chunked = randomBytes(3000);
  fake.blob(chunked);
  fake.lie(sha256(chunked), randomBytes(3000));
  fake.sendChunked(true);
  try {
    const res = await mirror.fetch(`/v2/fake/liar/blobs/${sha256(chunked)}`);
    assert.equal(res.status, 200);
    const got = await res.arrayBuffer().then(Buffer.from, () => null);
    assert.ok(!got || got.length < 3000, `${got?.length} bytes`);
  } finally {
    fake.sendChunked(false);
  }
});

test("concurrent cold pulls of one blob leave one stored copy", async () => {
  const layer = randomBytes(5_000_000);
  const image = await pushUpstream("library/crowd", "v1", [layer]);
  const digest = sha256(layer);
  await (await mirror.fetch("/v2/hub/crowd/manifests/v1", { headers: ACCEPT })).arrayBuffer();
  const objectsBefore = (await mirror.keys("objects/")).length;
  const pulls = await Promise.all(
    Array.from({ length: 4 }, async () => {
      const res = await mirror.fetch(`/v2/hub/crowd/blobs/${digest}`);
      return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
    }),
  );
  for (const p of pulls) {
    assert.equal(p.status, 200);
    assert.ok(p.bytes.equals(layer));
  }
  await eventually(linked("hub/crowd", digest), "the blob is recorded");
  const hex = digest.slice(7);
  assert.deepEqual(await mirror.keys(`blobs/sha256/${hex.slice(0, 2)}/${hex}/`), [
    `blobs/sha256/${hex.slice(0, 2)}/${hex}/data`,
    `blobs/sha256/${hex.slice(0, 2)}/${hex}/descriptor`,
  ]);
  assert.equal((await mirror.keys("objects/")).length, objectsBefore, "no second copy anywhere");
  assert.equal(image.layers[0].length, layer.length);
});

test("blob redirects are followed, and the upstream's credentials never go to the other host", async () => {
  const layer = randomBytes(4000);
  const digest = sha256(layer);
  fake.blob(layer);
  cdn.blob(layer);
  fake.requireBasic("mirror:fake-pw");
  fake.redirectBlobsTo(cdn.url);
  try {
    const res = await mirror.fetch(`/v2/fakeauth/redirected/blobs/${digest}`);
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), layer);
    // Basic challenge answered, 307 followed to the CDN without the Authorization header.
    assert.equal(ops(res).upstream, 3);
    assert.deepEqual(fake.log.filter((l) => l.includes("/redirected/")).slice(-2), [
      `GET /v2/redirected/blobs/${digest} without authorization`,
      `GET /v2/redirected/blobs/${digest} with authorization`,
    ]);
    assert.deepEqual(cdn.log.slice(-1), [`GET /cdn/${digest} without authorization`]);
    await eventually(linked("fakeauth/redirected", digest), "the redirected blob is recorded");
  } finally {
    fake.requireBasic(null);
    fake.redirectBlobsTo(null);
  }
});

test("a bad UPSTREAMS, or credentials it names that are not set, fail closed", async () => {
  for (const bindings of [
    { UPSTREAMS: "[{\"prefix\": \"x\", \"url\": \"https://h\"}]" },
    { UPSTREAMS: "not json" },
    { UPSTREAMS: JSON.stringify([{ prefix: "x/", url: "https://h", credentials: "MISSING" }]) },
    { UPSTREAMS: JSON.stringify([{ prefix: "x/", url: "https://h", credentials: "C" }]), C: "no-colon" },
  ]) {
    const reg = await registry(bindings);
    try {
      for (const path of ["/v2/", "/v2/x/y/manifests/v1", "/v2/other/manifests/v1"]) {
        const res = await reg.fetch(path);
        assert.equal(res.status, 500, `${JSON.stringify(bindings)} ${path}`);
        assert.equal(await errorCode(res), "UNKNOWN");
      }
    } finally {
      await reg.close();
    }
  }
});

test("tags of a mirrored repository come from the upstream, cached, paginated, stale when it is down", async () => {
  for (const tag of ["v3", "v1", "v2"]) await pushUpstream("library/listed", tag);
  const res = await mirror.fetch("/v2/hub/listed/tags/list");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("registry-upstream"), "miss");
  assert.deepEqual(await res.json(), { name: "hub/listed", tags: ["v1", "v2", "v3"] });
  const page = await mirror.fetch("/v2/hub/listed/tags/list?n=2");
  assert.equal(page.headers.get("registry-upstream"), "hit");
  assert.equal(ops(page).upstream, 0);
  assert.deepEqual((await page.json()).tags, ["v1", "v2"]);
  assert.equal(page.headers.get("link"), '</v2/hub/listed/tags/list?n=2&last=v2>; rel="next"');
  const rest = await mirror.fetch("/v2/hub/listed/tags/list?n=2&last=v2");
  assert.deepEqual((await rest.json()).tags, ["v3"]);
  assert.equal(rest.headers.get("link"), null);

  // Revalidated every time (ttl 0); served stale when the upstream fails.
  const manifest = imageManifest({ digest: fake.blob(Buffer.from("{}")), size: 2 }, []);
  fake.manifest("listed", "a", manifest);
  fake.manifest("listed", "b", manifest);
  const fresh = await mirror.fetch("/v2/fake/listed/tags/list");
  assert.deepEqual((await fresh.json()).tags, ["a", "b"]);
  fake.manifest("listed", "c", manifest);
  assert.deepEqual((await (await mirror.fetch("/v2/fake/listed/tags/list")).json()).tags, ["a", "b", "c"]);
  fake.set("status", 502);
  try {
    const stale = await mirror.fetch("/v2/fake/listed/tags/list");
    assert.equal(stale.status, 200);
    assert.equal(stale.headers.get("registry-upstream"), "stale");
    assert.deepEqual((await stale.json()).tags, ["a", "b", "c"]);
    const never = await mirror.fetch("/v2/fake/never-listed/tags/list");
    assert.equal(never.status, 503);
    assert.equal(await errorCode(never), "UNAVAILABLE");
  } finally {
    fake.set("normal");
  }
  const unknown = await mirror.fetch("/v2/fake/never-listed/tags/list");
  assert.equal(unknown.status, 404);
  assert.equal(await errorCode(unknown), "NAME_UNKNOWN");
});

test("one platform of a multi-platform index: the index and that platform are stored, nothing else", async () => {
  const amd = await pushUpstream("library/multi", "amd64");
  const arm = await pushUpstream("library/multi", "arm64");
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        { mediaType: OCI_MANIFEST, digest: amd.digest, size: amd.manifest.length, platform: { architecture: "amd64", os: "linux" } },
        { mediaType: OCI_MANIFEST, digest: arm.digest, size: arm.manifest.length, platform: { architecture: "arm64", os: "linux" } },
      ],
    }),
  );
  const put = await upstream.fetch("/v2/library/multi/manifests/latest", { method: "PUT", body: index, headers: { ...alice, "content-type": "application/vnd.oci.image.index.v1+json" } });
  assert.equal(put.status, 201);
  const got = await mirror.fetch("/v2/hub/multi/manifests/latest", { headers: ACCEPT });
  assert.equal(got.headers.get("docker-content-digest"), sha256(index));
  const child = await mirror.fetch(`/v2/hub/multi/manifests/${arm.digest}`, { headers: ACCEPT });
  assert.equal(child.status, 200);
  await child.arrayBuffer();
  const layer = await mirror.fetch(`/v2/hub/multi/blobs/${sha256(arm.layers[0])}`);
  assert.deepEqual(Buffer.from(await layer.arrayBuffer()), arm.layers[0]);
  await eventually(linked("hub/multi", sha256(arm.layers[0])), "the arm64 layer is recorded");
  const revisions = (await mirror.keys("repositories/hub/multi/_manifests/revisions/")).filter((k) => k.endsWith("/link"));
  assert.deepEqual(revisions.sort(), [sha256(index), arm.digest].map((d) => `repositories/hub/multi/_manifests/revisions/sha256/${d.slice(7)}/link`).sort());
  assert.deepEqual(await mirror.keys("repositories/hub/multi/_layers/"), [`repositories/hub/multi/_layers/sha256/${sha256(arm.layers[0]).slice(7)}/link`]);
});

test("mirrored content not pulled for evict_after_days is evicted; a later pull fetches it again", async () => {
  const image = await pushUpstream("library/evicted", "v1");
  const ev = await registry({ UPSTREAMS: JSON.stringify([{ prefix: "ev/", url: upstream.url, library: true, evict_after_days: 7 }]) });
  try {
    const layer = sha256(image.layers[0]);
    const first = await ev.fetch("/v2/ev/evicted/manifests/v1", { headers: ACCEPT });
    assert.equal(first.headers.get("registry-upstream"), "miss");
    await (await ev.fetch(`/v2/ev/evicted/blobs/${layer}`)).arrayBuffer();
    const marker = `repositories/ev/evicted/_mirror/pulled/sha256/${image.digest.slice(7)}`;
    for (let i = 0; !(await ev.keys(marker)).length || !(await ev.keys(`repositories/ev/evicted/_layers/`)).length; i++) {
      assert.ok(i < 400, "the pull and the fill are recorded");
      await new Promise((r) => setTimeout(r, 25));
    }
    const bucket = await ev.bucket();
    const today = Math.floor(Date.now() / 86_400_000);
    assert.deepEqual(JSON.parse(await (await bucket.get(marker)).text()), { day: today });
    // Pulled again today: nothing more is written. Eight days ago: evicted, with its tag.
    await bucket.put(marker, JSON.stringify({ day: today - 6 }));
    const kept = await (await ev.fetch("/admin/lifecycle", { method: "POST" })).json();
    assert.equal(kept.eviction.manifests_evicted, 0);
    await bucket.put(marker, JSON.stringify({ day: today - 8 }));
    const dry = await (await ev.fetch("/admin/lifecycle?dry_run=true", { method: "POST" })).json();
    assert.deepEqual(dry.eviction.evicted, [`ev/evicted@${image.digest}`]);
    assert.equal((await ev.keys(marker)).length, 1, "a dry run evicts nothing");
    const run = await (await ev.fetch("/admin/lifecycle", { method: "POST" })).json();
    assert.deepEqual(run.eviction.evicted, [`ev/evicted@${image.digest}`]);
    assert.deepEqual(await ev.keys("repositories/ev/evicted/_manifests/"), []);
    // The collector then frees the layer (no manifest names it; aged past the grace period).
    for (const key of await ev.keys("blobs/")) {
      if (!key.endsWith("/descriptor")) continue;
      const d = JSON.parse(await (await bucket.get(key)).text());
      d.touched = 0;
      await bucket.put(key, JSON.stringify(d));
    }
    for (let i = 0; !(await (await ev.fetch("/admin/lifecycle", { method: "POST" })).json()).gc_finished; i++) assert.ok(i < 50);
    assert.equal((await ev.keys(`blobs/sha256/${layer.slice(7, 9)}/${layer.slice(7)}/data`)).length, 0, "the layer's bytes are gone");

    // A later pull: the fresh tag record and the layer's link outlived the content; both are
    // fetched again from the upstream, served whole and stored again.
    const again = await ev.fetch("/v2/ev/evicted/manifests/v1", { headers: ACCEPT });
    assert.equal(again.status, 200);
    assert.equal(again.headers.get("registry-upstream"), "miss");
    assert.deepEqual(Buffer.from(await again.arrayBuffer()), image.manifest);
    const bytes = await ev.fetch(`/v2/ev/evicted/blobs/${layer}`);
    assert.equal(bytes.status, 200);
    assert.equal(bytes.headers.get("registry-upstream"), "miss");
    assert.deepEqual(Buffer.from(await bytes.arrayBuffer()), image.layers[0]);
  } finally {
    await ev.close();
  }
});

test("access rules apply to mirrored pulls as to any repository", async () => {
  const image = await pushUpstream("library/guarded", "v1");
  const guarded = await registry({
    AUTH_HTPASSWD: HTPASSWD,
    AUTH_RULES: JSON.stringify([{ user: "bob", repos: ["hub/*"], actions: ["pull"] }]),
    TOKEN_SECRET: "mirror-token-secret",
    UPSTREAMS: JSON.stringify([{ prefix: "hub/", url: upstream.url, library: true }]),
  });
  try {
    const anonymous = await guarded.fetch("/v2/hub/guarded/manifests/v1", { headers: ACCEPT });
    assert.equal(anonymous.status, 401);
    assert.equal(await errorCode(anonymous), "UNAUTHORIZED");
    const alice = await guarded.fetch("/v2/hub/guarded/manifests/v1", { headers: { ...ACCEPT, authorization: basicAuth("alice") } });
    assert.equal(alice.status, 403);
    assert.deepEqual(await guarded.keys("repositories/"), [], "a refused pull asks nothing and stores nothing");
    const bob = await guarded.fetch("/v2/hub/guarded/manifests/v1", { headers: { ...ACCEPT, authorization: basicAuth("bob") } });
    assert.equal(bob.status, 200);
    assert.equal(bob.headers.get("docker-content-digest"), image.digest);
    // Pull rights do not make a mirrored name writable.
    const push = await guarded.fetch("/v2/hub/guarded/blobs/uploads/", { method: "POST", headers: { authorization: basicAuth("bob") } });
    assert.equal(push.status, 403);
  } finally {
    await guarded.close();
  }
});

test("a blob of unknown length is filled in parts, hashed on the way; a lie is deleted, not recorded", async () => {
  const big = randomBytes(23 * 1024 * 1024 + 5);
  const liar = randomBytes(12 * 1024 * 1024);
  fake.blob(big);
  fake.blob(liar);
  fake.lie(sha256(liar), randomBytes(12 * 1024 * 1024));
  fake.sendChunked(true);
  const objectsBefore = (await mirror.keys("objects/")).length;
  try {
    // The lie first: its parts are stored before its digest is known, then deleted.
    const lie = await mirror.fetch(`/v2/fake/chunked/blobs/${sha256(liar)}`);
    assert.equal(lie.status, 200);
    await lie.arrayBuffer();

    const res = await mirror.fetch(`/v2/fake/chunked/blobs/${sha256(big)}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-length"), null);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(big));
    // Requested after the lie was read whole, bigger: by the time it is recorded, the lie's
    // fill has long settled.
    await eventually(linked("fake/chunked", sha256(big)), "the multipart fill is recorded");
    const hex = sha256(liar).slice(7);
    assert.deepEqual(await mirror.keys(`blobs/sha256/${hex.slice(0, 2)}/${hex}/`), []);
    assert.deepEqual(await mirror.keys(`repositories/fake/chunked/_layers/sha256/${hex}/`), []);
    assert.equal((await mirror.keys("objects/")).length, objectsBefore + 1, "the honest fill's object only");

    // Filled under a key of its own (its digest was checked after the write), named by the
    // descriptor.
    const bigHex = sha256(big).slice(7);
    const descriptor = JSON.parse(await (await (await mirror.bucket()).get(`blobs/sha256/${bigHex.slice(0, 2)}/${bigHex}/descriptor`)).text());
    assert.match(descriptor.object, /^objects\/[0-9a-f-]{36}\/data$/);
    assert.equal(descriptor.size, big.length);
    const again = await mirror.fetch(`/v2/fake/chunked/blobs/${sha256(big)}`);
    assert.equal(again.headers.get("registry-upstream"), "hit");
    assert.equal(again.headers.get("content-length"), String(big.length));
    assert.ok(Buffer.from(await again.arrayBuffer()).equals(big));
    const from = 10 * 1024 * 1024 - 2;
    const part = await mirror.fetch(`/v2/fake/chunked/blobs/${sha256(big)}`, { headers: { range: `bytes=${from}-${from + 3}` } });
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), big.subarray(from, from + 4));
  } finally {
    fake.sendChunked(false);
  }
});
