// Immutable tags (IMMUTABLE_TAGS) over real HTTP: a matching tag, once it exists, is neither
// moved nor deleted (403 DENIED naming the rule); the same digest pushed again is accepted;
// of concurrent first pushes exactly one wins.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { registry, sha256, errorCode, pushBlob, imageManifest, putManifest, assertFailsClosed } from "./helpers.mjs";

let reg;
before(async () => {
  reg = await registry({ IMMUTABLE_TAGS: JSON.stringify([{ repos: ["prod/*"], tags: ["v*"] }]) });
});
after(async () => reg.close());

async function images(name, n) {
  const config = await pushBlob(reg, name, Buffer.from('{"architecture":"amd64","os":"linux"}'));
  return Array.from({ length: n }, (_, i) => imageManifest(config, [], { annotations: { n: String(i) } }));
}

test("an immutable tag takes its first digest again, never another, and is never deleted", async () => {
  const [a, b] = await images("prod/app", 2);
  assert.equal((await putManifest(reg, "prod/app", "v1", a)).status, 201);
  assert.equal((await putManifest(reg, "prod/app", "v1", a)).status, 201, "a retried push of the same digest");
  const moved = await putManifest(reg, "prod/app", "v1", b);
  assert.equal(moved.status, 403);
  const body = await moved.json();
  assert.equal(body.errors[0].code, "DENIED");
  assert.match(body.errors[0].detail, /tag v1 of prod\/app is immutable by IMMUTABLE_TAGS rule 1 \(repos \["prod\/\*"\], tags \["v\*"\]\)/);
  assert.equal((await reg.fetch(`/v2/prod/app/manifests/${sha256(b)}`)).status, 404, "the refused manifest was not stored");
  const byParam = await reg.fetch(`/v2/prod/app/manifests/${sha256(b)}?tag=v1`, { method: "PUT", body: b, headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } });
  assert.equal(byParam.status, 403);
  for (const ref of ["v1", sha256(a)]) {
    const del = await reg.fetch(`/v2/prod/app/manifests/${ref}`, { method: "DELETE" });
    assert.equal(del.status, 403, `DELETE ${ref}`);
    assert.equal(await errorCode(del), "DENIED");
  }
  const still = await reg.fetch("/v2/prod/app/manifests/v1");
  assert.equal(still.headers.get("docker-content-digest"), sha256(a));
  // Tags no rule names move and go as always.
  assert.equal((await putManifest(reg, "prod/app", "latest", a)).status, 201);
  assert.equal((await putManifest(reg, "prod/app", "latest", b)).status, 201);
  assert.equal((await reg.fetch("/v2/prod/app/manifests/latest", { method: "DELETE" })).status, 202);
  const [c, d] = await images("dev/app", 2);
  assert.equal((await putManifest(reg, "dev/app", "v1", c)).status, 201);
  assert.equal((await putManifest(reg, "dev/app", "v1", d)).status, 201);
});

test("concurrent first pushes of an immutable tag: exactly one wins", async () => {
  const manifests = await images("prod/race", 16);
  const statuses = await Promise.all(manifests.map((m) => putManifest(reg, "prod/race", "v2", m).then((r) => r.status)));
  assert.equal(statuses.filter((s) => s === 201).length, 1, JSON.stringify(statuses));
  assert.equal(statuses.filter((s) => s === 403).length, 15, JSON.stringify(statuses));
  const winner = manifests[statuses.indexOf(201)];
  const tag = await reg.fetch("/v2/prod/race/manifests/v2");
  assert.equal(tag.headers.get("docker-content-digest"), sha256(winner));
});

test("rules that do not parse fail closed", async () => {
  await assertFailsClosed({ IMMUTABLE_TAGS: '[{"repos": ["prod/*"]}]' });
});
