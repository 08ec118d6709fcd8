// Pulls on the emulator: Range variants, 304, the edge cache and the KV fact cache, asserted
// through the storage operations each response reports (Registry-Storage-Ops), not timing.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { registry, sha256, errorCode, pushBlob, imageManifest, putManifest, storageOps } from "./helpers.mjs";

let reg;
before(async () => {
  reg = await registry();
});
after(async () => {
  await reg.close();
});

const ops = storageOps;

async function pull(path, headers = {}) {
  const res = await reg.fetch(path, { headers });
  const body = Buffer.from(await res.arrayBuffer());
  return { res, body, ops: ops(res) };
}

// The first full GET fills the edge cache from a second read, after the response.
// Waits for that event, seen as a GET served without touching the bucket; a cache that never
// fills fails the test (when node's test timeout or this generous bound runs out), a slow one
// does not.
async function warm(path) {
  for (let i = 0; i < 2400; i++) {
    const last = await pull(path);
    if (last.ops["r2-b"] === 0) return last;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${path} was never served from the edge cache`);
}

test("cold pull reads the link and the bytes once; warm pull reads nothing from the bucket", async () => {
  const bytes = randomBytes(3_000_000);
  const { digest } = await pushBlob(reg, "pull/a", bytes);
  const path = `/v2/pull/a/blobs/${digest}`;
  const cold = await pull(path);
  assert.equal(cold.res.status, 200);
  assert.equal(sha256(cold.body), digest);
  // The link, the bytes for the client, and a second read of the bytes that fills the edge
  // cache once the client has them all (the client's stream is the bucket's, untouched).
  assert.equal(cold.ops["r2-b"], 3, "the link, the bytes, the bytes again for the edge cache");
  assert.equal(cold.res.headers.get("etag"), `"${digest}"`);
  assert.equal(cold.res.headers.get("accept-ranges"), "bytes");
  assert.match(cold.res.headers.get("cache-control"), /immutable/);
  const hot = await warm(path);
  assert.equal(hot.res.status, 200);
  assert.equal(hot.ops["r2-b"], 0, "warm pull: no bucket read");
  assert.equal(hot.ops["r2-a"], 0);
  assert.ok(hot.ops["cache-hit"] >= 2, "link and bytes from the edge cache");
  assert.equal(sha256(hot.body), digest);
  assert.equal(hot.res.headers.get("content-length"), String(bytes.length));
  assert.equal(hot.res.headers.get("docker-content-digest"), digest);
});

test("Range variants, cold from the bucket and warm from the edge cache", async () => {
  const bytes = randomBytes(100_000);
  const { digest } = await pushBlob(reg, "pull/range", bytes);
  const path = `/v2/pull/range/blobs/${digest}`;
  const n = bytes.length;
  const cases = [
    ["bytes=0-9", 0, 9],
    ["bytes=10-", 10, n - 1],
    ["bytes=-5", n - 5, n - 1],
    ["bytes=99990-200000", 99990, n - 1],
  ];
  const check = async (phase) => {
    for (const [range, start, end] of cases) {
      const { res, body } = await pull(path, { range });
      assert.equal(res.status, 206, `${phase} ${range}`);
      assert.equal(res.headers.get("content-range"), `bytes ${start}-${end}/${n}`, `${phase} ${range}`);
      assert.equal(res.headers.get("content-length"), String(end - start + 1));
      assert.deepEqual(body, bytes.subarray(start, end + 1), `${phase} ${range}`);
    }
    const bad = await pull(path, { range: `bytes=${n}-` });
    assert.equal(bad.res.status, 416, phase);
    assert.equal(bad.res.headers.get("content-range"), `bytes */${n}`);
    const multi = await pull(path, { range: "bytes=0-1,5-6" });
    assert.equal(multi.res.status, 200, `${phase}: a multi-range gets the whole blob`);
    assert.deepEqual(multi.body, bytes);
  };
  await check("cold");
  await warm(path);
  const hit = await pull(path, { range: "bytes=0-9" });
  assert.equal(hit.ops["r2-b"], 0, "a range of a cached blob comes from the edge cache");
  await check("warm");
});

test("304, HEAD without a body read, and a zero-length blob", async () => {
  const bytes = randomBytes(1000);
  const { digest } = await pushBlob(reg, "pull/cond", bytes);
  const path = `/v2/pull/cond/blobs/${digest}`;
  const notModified = await pull(path, { "if-none-match": `"${digest}"` });
  assert.equal(notModified.res.status, 304);
  assert.equal(notModified.body.length, 0);
  assert.equal(notModified.ops["r2-b"], 1, "only the link (not cached yet), never the bytes");
  const head = await reg.fetch(path, { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-length"), "1000");
  assert.equal(ops(head)["cache-miss"] + ops(head)["cache-hit"], 1, "HEAD looks up the link only, never the bytes");
  const empty = await pushBlob(reg, "pull/cond", Buffer.alloc(0));
  const e = await pull(`/v2/pull/cond/blobs/${empty.digest}`);
  assert.equal(e.res.status, 200);
  assert.equal(e.body.length, 0);
  assert.equal(e.res.headers.get("content-length"), "0");
});

test("a cached blob does not leak into a repository that does not link it", async () => {
  const bytes = randomBytes(50_000);
  const { digest } = await pushBlob(reg, "pull/owner", bytes);
  await warm(`/v2/pull/owner/blobs/${digest}`);
  const other = await pull(`/v2/pull/other/blobs/${digest}`);
  assert.equal(other.res.status, 404);
  assert.equal(JSON.parse(other.body).errors[0].code, "BLOB_UNKNOWN");
  const head = await reg.fetch(`/v2/pull/other/blobs/${digest}`, { method: "HEAD" });
  assert.equal(head.status, 404);
  // Once mounted there, the other repository is served from the same cached bytes.
  const mount = await reg.fetch(`/v2/pull/other/blobs/uploads/?mount=${digest}&from=pull/owner`, { method: "POST" });
  assert.equal(mount.status, 201);
  const served = await pull(`/v2/pull/other/blobs/${digest}`);
  assert.equal(served.res.status, 200);
  assert.equal(sha256(served.body), digest);
  assert.equal(served.ops["r2-b"], 1, "its own link from the bucket, the bytes from the edge cache");
});

test("deletes invalidate the cached link, revision and tag", async () => {
  const layer = randomBytes(20_000);
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const l = await pushBlob(reg, "pull/del", layer);
  const c = await pushBlob(reg, "pull/del", config);
  const manifest = imageManifest(c, [l]);
  const mdigest = sha256(manifest);
  assert.equal((await putManifest(reg, "pull/del", "v1", manifest)).status, 201);

  // Manifests by digest: cached, immutable, conditional.
  const first = await pull(`/v2/pull/del/manifests/${mdigest}`);
  assert.equal(first.res.status, 200);
  assert.match(first.res.headers.get("cache-control"), /immutable/);
  const again = await pull(`/v2/pull/del/manifests/${mdigest}`);
  assert.deepEqual(again.body, manifest);
  assert.equal(again.ops["r2-b"], 0, "a warm manifest by digest reads nothing from the bucket");
  const byTag = await pull("/v2/pull/del/manifests/v1");
  assert.equal(byTag.ops["r2-b"], 1, "a tag is read fresh from the bucket (TAG_CACHE_SECONDS=0)");
  assert.equal(byTag.res.headers.get("cache-control"), "no-cache");
  const nm = await pull(`/v2/pull/del/manifests/${mdigest}`, { "if-none-match": `"${mdigest}"` });
  assert.equal(nm.res.status, 304);

  // Blob link: warm, delete, gone.
  const lpath = `/v2/pull/del/blobs/${l.digest}`;
  assert.equal((await warm(lpath)).ops["cache-hit"] >= 2, true, "link and bytes cached before the delete");
  assert.equal((await reg.fetch(lpath, { method: "DELETE" })).status, 202);
  const gone = await pull(lpath);
  assert.equal(gone.res.status, 404);
  assert.equal(JSON.parse(gone.body).errors[0].code, "BLOB_UNKNOWN");

  // Manifest: delete by digest, gone by digest and by tag.
  assert.equal((await reg.fetch(`/v2/pull/del/manifests/${mdigest}`, { method: "DELETE" })).status, 202);
  assert.equal(await errorCode(await reg.fetch(`/v2/pull/del/manifests/${mdigest}`)), "MANIFEST_UNKNOWN");
  assert.equal((await reg.fetch(`/v2/pull/del/manifests/${mdigest}`, { method: "HEAD" })).status, 404);
  assert.equal(await errorCode(await reg.fetch("/v2/pull/del/manifests/v1")), "MANIFEST_UNKNOWN");
});

test("a retagged manifest is served at once", async () => {
  const c = await pushBlob(reg, "pull/tag", Buffer.from("{}"));
  const m1 = imageManifest(c, [], { annotations: { n: "1" } });
  const m2 = imageManifest(c, [], { annotations: { n: "2" } });
  await putManifest(reg, "pull/tag", "latest", m1);
  assert.equal((await pull("/v2/pull/tag/manifests/latest")).res.headers.get("docker-content-digest"), sha256(m1));
  await putManifest(reg, "pull/tag", "latest", m2);
  const now = await pull("/v2/pull/tag/manifests/latest");
  assert.equal(now.res.headers.get("docker-content-digest"), sha256(m2));
  assert.deepEqual(now.body, m2);
});

test("KV serves facts when the edge cache is cold (another data centre)", async () => {
  const bytes = randomBytes(10_000);
  const { digest } = await pushBlob(reg, "pull/kv", bytes);
  const path = `/v2/pull/kv/blobs/${digest}`;
  await warm(path);
  // Drop this "data centre's" edge cache; KV persists.
  await reg.stop();
  rmSync(join(reg.dataDir, "cache"), { recursive: true, force: true });
  await reg.start();
  const { res, body, ops: o } = await pull(path);
  assert.equal(res.status, 200);
  assert.equal(sha256(body), digest);
  assert.equal(o["kv-read"], 1, "the link from KV");
  assert.equal(o["r2-b"], 2, "only the bytes from the bucket (and again for this edge cache)");
});

test("50 concurrent pulls of one blob are all correct", async () => {
  const bytes = randomBytes(1_000_000);
  const { digest } = await pushBlob(reg, "pull/many", bytes);
  const results = await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const res = await reg.fetch(`/v2/pull/many/blobs/${digest}`, i % 5 === 0 ? { headers: { range: "bytes=100-199" } } : {});
      return { status: res.status, body: Buffer.from(await res.arrayBuffer()), i };
    }),
  );
  for (const { status, body, i } of results) {
    if (i % 5 === 0) {
      assert.equal(status, 206);
      assert.deepEqual(body, bytes.subarray(100, 200));
    } else {
      assert.equal(status, 200);
      assert.equal(sha256(body), digest);
    }
  }
  const hot = await warm(`/v2/pull/many/blobs/${digest}`);
  assert.equal(sha256(hot.body), digest);
});
