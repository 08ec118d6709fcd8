// Storage totals (GET /admin/stats) on the emulator: after every kind of change — monolithic and
// chunked pushes, re-pushes, tags moved and deleted, mounts, blob and manifest deletes,
// concurrent pushes, the garbage collection — the totals equal a recount of the bucket done here,
// independently, by listing every key and reading every link. Totals are applied after the
// response, so each check waits (up to a few seconds) for them to settle on the recount.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { registry, sha256, errorCode, pushBlob, imageManifest, putManifest, basicAuth, HTPASSWD, startUpload } from "./helpers.mjs";

// The totals, recounted from the bucket: every layer link, revision link and tag link of each
// repository, and every blob descriptor that is not a tombstone.
async function recount(reg) {
  const bucket = await reg.bucket();
  const json = async (key) => JSON.parse(await (await bucket.get(key)).text());
  const repos = new Map();
  const of = (name) => {
    if (!repos.has(name)) repos.set(name, { name, blobs: 0, blob_bytes: 0, manifests: 0, manifest_bytes: 0, tags: 0 });
    return repos.get(name);
  };
  for (const key of await reg.keys("repositories/")) {
    const [name, rest] = key.slice("repositories/".length).split(/\/_(.*)/s);
    if (/^layers\/[^/]+\/[0-9a-f]+\/link$/.test(rest)) {
      const r = of(name);
      r.blobs++;
      r.blob_bytes += (await json(key)).size;
    } else if (/^manifests\/revisions\/[^/]+\/[0-9a-f]+\/link$/.test(rest)) {
      const r = of(name);
      r.manifests++;
      r.manifest_bytes += (await json(key)).size;
    } else if (/^manifests\/tags\/[^/]+$/.test(rest)) {
      of(name).tags++;
    }
  }
  const stored = { blobs: 0, bytes: 0 };
  for (const key of await reg.keys("blobs/")) {
    if (!key.endsWith("/descriptor")) continue;
    const d = await json(key);
    if (d.doomed) continue;
    stored.blobs++;
    stored.bytes += d.size;
  }
  const repositories = [...repos.values()].filter((r) => r.blobs + r.manifests + r.tags > 0).sort((a, b) => (a.name < b.name ? -1 : 1));
  return { stored, repositories };
}

async function stats(reg, query = "", headers = {}) {
  const res = await reg.fetch(`/admin/stats${query}`, { headers });
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
}

// Waits for the totals to equal the recount (they are applied after each response), then
// asserts it; returns them.
async function settled(reg) {
  const want = await recount(reg);
  let got;
  for (let i = 0; i < 100; i++) {
    got = await stats(reg);
    if (isDeepStrictEqual(got, want)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(got, want);
  return got;
}

const repo = (page, name) => page.repositories.find((r) => r.name === name);

async function pushImage(reg, name, tag, layers) {
  const config = await pushBlob(reg, name, Buffer.from(`{"os":"linux","n":"${name}:${tag}"}`));
  const ls = [];
  for (const l of layers) ls.push(await pushBlob(reg, name, l));
  const manifest = imageManifest(config, ls);
  assert.equal((await putManifest(reg, name, tag, manifest)).status, 201);
  return { digest: sha256(manifest), manifest, config, layers: ls };
}

test("storage totals follow pushes, tags, mounts and deletes, and equal a recount of the bucket", async () => {
  const reg = await registry();
  try {
    const shared = randomBytes(3000);
    const a = await pushImage(reg, "team/app", "v1", [shared, randomBytes(2000)]);
    let page = await settled(reg);
    assert.deepEqual(repo(page, "team/app"), {
      name: "team/app",
      blobs: 3,
      blob_bytes: a.config.size + 5000,
      manifests: 1,
      manifest_bytes: a.manifest.length,
      tags: 1,
    });
    // The manifest's bytes are a stored blob too.
    assert.deepEqual(page.stored, { blobs: 4, bytes: a.config.size + 5000 + a.manifest.length });

    // The same image again, and under a second tag: nothing new but the tag.
    assert.equal((await putManifest(reg, "team/app", "v1", a.manifest)).status, 201);
    assert.equal((await putManifest(reg, "team/app", "latest", a.manifest)).status, 201);
    await pushBlob(reg, "team/app", shared);
    page = await settled(reg);
    assert.equal(repo(page, "team/app").tags, 2);
    assert.equal(repo(page, "team/app").blobs, 3);

    // A chunked upload into another repository, and a mount of the shared layer there.
    const big = randomBytes(6 * 1024 * 1024 + 100);
    let loc = await startUpload(reg, "team/other");
    let res = await reg.fetch(loc, { method: "PATCH", body: big.subarray(0, 6 * 1024 * 1024), headers: { "content-range": `0-${6 * 1024 * 1024 - 1}` } });
    assert.equal(res.status, 202);
    res = await reg.fetch(`${res.headers.get("location")}&digest=${sha256(big)}`.replace(/\?&/, "?"), { method: "PUT", body: big.subarray(6 * 1024 * 1024) });
    assert.equal(res.status, 201, await res.text());
    res = await reg.fetch(`/v2/team/other/blobs/uploads/?mount=${sha256(shared)}&from=team/app`, { method: "POST" });
    assert.equal(res.status, 201);
    page = await settled(reg);
    assert.deepEqual(repo(page, "team/other"), { name: "team/other", blobs: 2, blob_bytes: big.length + 3000, manifests: 0, manifest_bytes: 0, tags: 0 });
    assert.equal(page.stored.blobs, 5, "the mount stored nothing");

    // A tag moved to another image is still one tag; deleting tags, a manifest and a link.
    const b = await pushImage(reg, "team/app", "latest", [randomBytes(1000)]);
    page = await settled(reg);
    assert.equal(repo(page, "team/app").tags, 2);
    assert.equal(repo(page, "team/app").manifests, 2);
    assert.equal((await reg.fetch("/v2/team/app/manifests/latest", { method: "DELETE" })).status, 202);
    assert.equal((await reg.fetch(`/v2/team/app/manifests/${a.digest}`, { method: "DELETE" })).status, 202);
    assert.equal((await reg.fetch(`/v2/team/other/blobs/${sha256(shared)}`, { method: "DELETE" })).status, 202);
    page = await settled(reg);
    assert.deepEqual(
      { ...repo(page, "team/app") },
      { name: "team/app", blobs: 5, blob_bytes: a.config.size + 5000 + b.config.size + 1000, manifests: 1, manifest_bytes: b.manifest.length, tags: 0 },
    );
    assert.equal(repo(page, "team/other").blobs, 1);

    // Pages in name order, with a Link to the next.
    res = await reg.fetch("/admin/stats?n=1");
    assert.equal(res.headers.get("link"), '</admin/stats?n=1&last=team%2Fapp>; rel="next"');
    assert.deepEqual((await res.json()).repositories.map((r) => r.name), ["team/app"]);
    res = await reg.fetch("/admin/stats?n=1&last=team%2Fapp");
    assert.equal(res.headers.get("link"), null);
    assert.deepEqual((await res.json()).repositories.map((r) => r.name), ["team/other"]);
    assert.equal(await errorCode(await reg.fetch("/admin/stats?n=x")), "PAGINATION_NUMBER_INVALID");

    // The totals are durable: a restart keeps them.
    await reg.restart();
    assert.deepEqual(await stats(reg), page);
  } finally {
    await reg.close();
  }
});

test("storage totals stay exact under concurrent pushes of the same content, and through the garbage collection", async () => {
  const reg = await registry();
  try {
    const layer = randomBytes(50_000);
    // Eight clients push the same layer and the same manifest to two repositories at once.
    const config = Buffer.from('{"os":"linux"}');
    const manifest = imageManifest({ digest: sha256(config), size: config.length }, [{ digest: sha256(layer), size: layer.length }]);
    await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const name = i % 2 ? "race/a" : "race/b";
        await pushBlob(reg, name, config);
        await pushBlob(reg, name, layer);
        assert.equal((await putManifest(reg, name, `t${i % 3}`, manifest)).status, 201);
      }),
    );
    let page = await settled(reg);
    for (const name of ["race/a", "race/b"]) {
      assert.equal(repo(page, name).blobs, 2);
      assert.equal(repo(page, name).manifests, 1);
    }
    assert.deepEqual(page.stored, { blobs: 3, bytes: config.length + layer.length + manifest.length });

    // Untagged, unreferenced, aged: the collection frees the bytes, and the registry's stored
    // totals drop with them; the repositories' links stay until deleted.
    for (const name of ["race/a", "race/b"]) {
      assert.equal((await reg.fetch(`/v2/${name}/manifests/${sha256(manifest)}`, { method: "DELETE" })).status, 202);
    }
    await reg.ageBlobs();
    for (let i = 0; i < 50; i++) {
      const s = await (await reg.fetch("/admin/lifecycle", { method: "POST" })).json();
      // The first run's recount found the incremental totals exact: nothing to correct (it
      // reads the descriptors this test rewrote behind the registry's back).
      if (i === 0) assert.deepEqual([s.recount.finished, s.recount.corrected, s.recount.read], [true, 0, 3]);
      if (s.gc_finished) break;
    }
    page = await settled(reg);
    assert.deepEqual(page.stored, { blobs: 0, bytes: 0 });
    assert.equal(repo(page, "race/a").manifests, 0);
  } finally {
    await reg.close();
  }
});

test("the lifecycle's recount counts what was stored before the totals were kept", async () => {
  const reg = await registry({}, { stats: false });
  try {
    await pushImage(reg, "before/a", "v1", [randomBytes(4000)]);
    await pushImage(reg, "before/a", "v2", [randomBytes(5000)]);
    await pushImage(reg, "before/b", "v1", [randomBytes(6000)]);
    assert.equal((await reg.fetch("/v2/before/a/manifests/v1", { method: "DELETE" })).status, 202);
    await reg.stop();
    await reg.start({ stats: true });
    assert.deepEqual(await stats(reg), { stored: { blobs: 0, bytes: 0 }, repositories: [] }, "nothing counted yet");

    const run = await (await reg.fetch("/admin/lifecycle", { method: "POST" })).json();
    const keys = await reg.keys();
    const links = keys.filter((k) => /^repositories\/.+\/_(layers|manifests\/revisions)\/[^/]+\/[0-9a-f]+\/link$/.test(k)).length;
    const tags = keys.filter((k) => /^repositories\/.+\/_manifests\/tags\/[^/]+$/.test(k)).length;
    const descriptors = keys.filter((k) => /^blobs\/.+\/descriptor$/.test(k)).length;
    assert.equal(tags, 2);
    assert.equal(run.recount.finished, true);
    // Every layer link, revision link and descriptor is read once for its size; tags need no read.
    assert.deepEqual(run.recount, { keys_scanned: links + tags + descriptors, read: links + descriptors, corrected: links + tags + descriptors, finished: true, idle: false });
    assert.deepEqual(await stats(reg), await recount(reg));
    const line = `stats recount scanned=${links + tags + descriptors} read=${links + descriptors} corrected=${links + tags + descriptors} finished;`;
    assert.ok(reg.workerLogs.some((l) => l.includes(line)), reg.workerLogs.join("\n"));

    // The next pass is a day away: the next run does nothing for the totals.
    const next = await (await reg.fetch("/admin/lifecycle", { method: "POST" })).json();
    assert.equal(next.recount.idle, true);
    // A dry run never writes to the totals.
    const dry = await (await reg.fetch("/admin/lifecycle?dry_run=true", { method: "POST" })).json();
    assert.equal(dry.recount, undefined);
  } finally {
    await reg.close();
  }
});

test("storage totals are for administrators, and need their binding", async () => {
  const reg = await registry({ AUTH_HTPASSWD: HTPASSWD, TOKEN_SECRET: "t", ADMIN_USERS: "admin" });
  try {
    assert.equal(await errorCode(await reg.fetch("/admin/stats")), "UNAUTHORIZED");
    assert.equal(await errorCode(await reg.fetch("/admin/stats", { headers: { authorization: basicAuth("bob") } })), "DENIED");
    const page = await stats(reg, "", { authorization: basicAuth("admin") });
    assert.deepEqual(page, { stored: { blobs: 0, bytes: 0 }, repositories: [] });
  } finally {
    await reg.close();
  }
  const without = await registry({}, { stats: false });
  try {
    await pushBlob(without, "x/y", Buffer.from("pushes work without it"));
    const res = await without.fetch("/admin/stats");
    assert.equal(res.status, 405);
    assert.equal(await errorCode(res), "UNSUPPORTED");
  } finally {
    await without.close();
  }
});
