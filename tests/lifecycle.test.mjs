// Lifecycle on the emulator: the cron trigger purges abandoned uploads (multipart parts
// included) and keeps fresh ones; garbage collection removes the blobs of a deleted image and
// keeps shared layers; a push racing the sweep loses nothing; a dry run changes nothing; work
// resumes from the cursor across runs. Age is simulated by rewriting the bucket's own records
// (upload start times, descriptors' `touched`), never by a clock hook in the worker.
import { test, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { registry, sha256, errorCode, pushBlob, imageManifest, putManifest, startUpload } from "./helpers.mjs";

// A registry of its own for each test: collections see the whole bucket, and ageing touches
// every blob in it, so no test may see another's data.
let reg;
beforeEach(async () => {
  reg = await registry({ UPLOAD_MAX_AGE_SECONDS: "3600" });
});
afterEach(async () => {
  await reg.close();
});

// Rewrites a JSON record in the bucket.
async function rewrite(key, change) {
  const bucket = await reg.bucket();
  const obj = await bucket.get(key);
  const value = JSON.parse(await obj.text());
  change(value);
  await bucket.put(key, JSON.stringify(value));
}

async function lifecycle(query = "") {
  const res = await reg.fetch(`/admin/lifecycle${query}`, { method: "POST" });
  assert.equal(res.status, 200);
  return res.json();
}

// Runs until the collection completes; returns every summary.
async function collectAll(query = "") {
  const runs = [];
  for (let i = 0; i < 200; i++) {
    const s = await lifecycle(query);
    runs.push(s);
    if (s.gc_finished) return runs;
  }
  throw new Error("collection did not finish");
}

async function pushImage(name, tag, layers, config) {
  const c = await pushBlob(reg, name, config);
  const ls = [];
  for (const l of layers) ls.push(await pushBlob(reg, name, l));
  const manifest = imageManifest(c, ls);
  assert.equal((await putManifest(reg, name, tag, manifest)).status, 201);
  return { digest: sha256(manifest), config: c, layers: ls, manifest };
}

test("the cron trigger purges abandoned uploads with their multipart parts and keeps fresh ones", async () => {
  const old = await startUpload(reg, "life/up");
  const oldId = old.match(/uploads\/([0-9a-f-]+)/)[1];
  let res = await reg.fetch(old, { method: "PATCH", body: randomBytes(6 * 1024 * 1024), headers: { "content-range": `0-${6 * 1024 * 1024 - 1}` } });
  assert.equal(res.status, 202);
  res = await reg.fetch(res.headers.get("location"), { method: "PATCH", body: randomBytes(1000), headers: { "content-range": `${6 * 1024 * 1024}-${6 * 1024 * 1024 + 999}` } });
  assert.equal(res.status, 202);
  const state = JSON.parse(await (await (await reg.bucket()).get(`uploads/${oldId}/state`)).text());
  assert.ok(state.multipart_id, "a part was written");
  assert.ok((await reg.keys(`objects/${oldId}/`)).length > 0, "a pending piece was written");
  // Started two days ago.
  await rewrite(`uploads/${oldId}/state`, (s) => (s.started_at -= 48 * 3600 * 1000));
  const fresh = await startUpload(reg, "life/up");
  const patched = await reg.fetch(fresh, { method: "PATCH", body: randomBytes(100) });
  assert.equal(patched.status, 202);

  await reg.scheduled();

  assert.equal(await errorCode(await reg.fetch(`/v2/life/up/blobs/uploads/${oldId}`)), "BLOB_UPLOAD_UNKNOWN");
  assert.deepEqual(await reg.keys(`objects/${oldId}/`), []);
  assert.deepEqual(await reg.keys(`uploads/${oldId}/`), []);
  // The multipart upload was aborted: it takes no more parts.
  const bucket = await reg.bucket();
  await assert.rejects(bucket.resumeMultipartUpload(`objects/${oldId}/data`, state.multipart_id).uploadPart(2, "x"), /upload|not exist|not found/i);
  const status = await reg.fetch(patched.headers.get("location"));
  assert.equal(status.status, 204);
  assert.equal(status.headers.get("range"), "0-99");
});

test("garbage collection: a deleted image's blobs go, shared layers stay; a dry run changes nothing", async () => {
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const shared = randomBytes(30_000);
  const a = await pushImage("life/gc", "a", [shared, randomBytes(20_000)], config);
  const bLayer = randomBytes(25_000);
  const b = await pushImage("life/gc", "b", [shared, bLayer], config);
  const onlyB = b.layers[1].digest;
  // Pull b's own layer once: it is now in the edge cache too.
  assert.equal((await reg.fetch(`/v2/life/gc/blobs/${onlyB}`)).status, 200);
  assert.equal((await reg.fetch(`/v2/life/gc/manifests/${b.digest}`, { method: "DELETE" })).status, 202);

  // Young blobs are kept whatever references them.
  let runs = await collectAll();
  // A summary's counts are the collection's totals so far: the last run's are the whole.
  assert.equal(runs[runs.length - 1].gc.blobs_deleted, 0, "nothing older than the grace period yet");

  await reg.ageBlobs();
  const before = await reg.keys();
  const dry = await collectAll("?dry_run=true&budget=1000");
  const last = dry[dry.length - 1];
  assert.equal(last.dry_run, true);
  assert.equal(last.gc.blobs_deleted, 2, "b's own layer and b's manifest");
  assert.equal(last.gc.bytes_freed, 25_000 + b.manifest.length);
  assert.deepEqual(await reg.keys(), before, "a dry run writes nothing");

  runs = await collectAll();
  assert.equal(runs[runs.length - 1].gc.blobs_deleted, 2, "the collection's totals");
  // b's layer is gone, from the bucket and from the edge cache.
  assert.equal(await errorCode(await reg.fetch(`/v2/life/gc/blobs/${onlyB}`)), "BLOB_UNKNOWN");
  // Image a still pulls whole.
  const m = await reg.fetch("/v2/life/gc/manifests/a");
  assert.equal(m.status, 200);
  for (const blob of [a.config, ...a.layers]) {
    const res = await reg.fetch(`/v2/life/gc/blobs/${blob.digest}`);
    assert.equal(res.status, 200, blob.digest);
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), blob.digest);
  }
  // Pushing b's layer again stores a fresh copy next to the tombstone.
  await pushBlob(reg, "life/gc", bLayer);
  const back = await reg.fetch(`/v2/life/gc/blobs/${onlyB}`);
  assert.equal(back.status, 200);
  assert.equal(sha256(Buffer.from(await back.arrayBuffer())), onlyB);
});

// Bytes made by `make(i)` for the first i whose digest's first hex digit passes `wanted`.
function withDigest(make, wanted) {
  for (let i = 0; ; i++) {
    const bytes = make(i);
    if (wanted(sha256(bytes)[7])) return bytes;
  }
}

test("a manifest pushed while the collector sweeps keeps the blobs it names", async () => {
  // The sweep goes in digest order: the image's blobs come last (digests starting with f), after
  // unreferenced fillers (0-7), so it is still sweeping the fillers when the manifest comes.
  const config = withDigest((i) => Buffer.from(`{"architecture":"arm64","os":"linux","n":${i}}`), (h) => h === "f");
  const c = await pushBlob(reg, "life/race", config);
  const layer = await pushBlob(reg, "life/race", withDigest(() => randomBytes(40_000), (h) => h === "f"));
  for (let i = 0; i < 12; i++) await pushBlob(reg, "life/filler", withDigest(() => randomBytes(100), (h) => h < "8"));
  await reg.ageBlobs();
  // Mark in small steps, until the sweep has begun (a run that completes the marking goes on
  // sweeping with what is left of its budget).
  let runs = 0;
  for (;;) {
    const s = await lifecycle("?budget=8");
    runs++;
    if (s.gc_phase === "sweep" || s.gc_finished) break;
  }
  const manifest = imageManifest(c, [layer]);
  assert.equal((await putManifest(reg, "life/race", "v1", manifest)).status, 201);
  const rest = await collectAll("?budget=8");
  runs += rest.length;
  assert.ok(runs > 2, `the work took several runs (${runs}), resuming from the cursor`);
  for (const blob of [c, layer]) {
    const res = await reg.fetch(`/v2/life/race/blobs/${blob.digest}`);
    assert.equal(res.status, 200, `${blob.digest} survived`);
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), blob.digest);
  }
  assert.equal((await reg.fetch("/v2/life/race/manifests/v1")).status, 200);
});
