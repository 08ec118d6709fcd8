// Retention (RETENTION) on the emulator, run by the lifecycle endpoint: the newest pushes and
// the named tags stay, the rest go with the manifests left untagged; an index keeps its
// children; referrers go with their subject; the dry run names exactly what the run deletes;
// immutable tags never go; the garbage collection then frees the blobs. Ages here are zero
// days (the emulator's clock is real); the age arithmetic is tested natively
// (policy::retention, storage::retention) with simulated push times.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { registry, sha256, pushBlob, imageManifest, putManifest, assertFailsClosed, OCI_INDEX, OCI_MANIFEST } from "./helpers.mjs";

let reg;
before(async () => {
  reg = await registry({
    RETENTION: JSON.stringify([
      { repos: ["ci/*"], keep_last: 2, keep_tags: ["latest", "v*"], untagged_after_days: 0 },
      { repos: ["scratch"], older_than_days: 0 },
    ]),
    IMMUTABLE_TAGS: JSON.stringify([{ repos: ["scratch"], tags: ["pinned"] }]),
  });
});
after(async () => reg.close());

async function lifecycle(query = "") {
  const res = await reg.fetch(`/admin/lifecycle${query}`, { method: "POST" });
  assert.equal(res.status, 200);
  return res.json();
}

const status = async (name, ref) => (await reg.fetch(`/v2/${name}/manifests/${ref}`, { method: "HEAD" })).status;

async function tags(name) {
  const res = await reg.fetch(`/v2/${name}/tags/list`);
  return (await res.json()).tags ?? [];
}

// A distinct image (its own layer) pushed under `ref` ("" = by digest), optionally with a subject.
async function image(name, ref, n, subject) {
  const config = await pushBlob(reg, name, Buffer.from(`{"architecture":"amd64","os":"linux","n":${n}}`));
  const layer = await pushBlob(reg, name, Buffer.from(`layer ${name} ${n}`));
  const extra = subject ? { subject: { mediaType: subject.mediaType ?? OCI_MANIFEST, digest: subject.digest, size: subject.size } } : {};
  const manifest = imageManifest(config, [layer], extra);
  const digest = sha256(manifest);
  const res = await putManifest(reg, name, ref || digest, manifest);
  assert.equal(res.status, 201, await res.text());
  return { digest, size: manifest.length, layer };
}

test("old builds go, the newest and named tags stay, the dry run says exactly what goes, the GC frees the blobs", async () => {
  const builds = [];
  for (let i = 0; i < 5; i++) builds.push(await image("ci/app", `build-${i}`, i));
  assert.equal((await putManifest(reg, "ci/app", "latest", imageManifest(...(await firstOf(builds[0]))))).status, 201);
  const release = await image("ci/app", "v1.0", 10);
  const signature = await image("ci/app", "", 11, builds[1]);
  const releaseSig = await image("ci/app", "", 12, release);
  // A multi-platform build: its children are pushed by digest and have no tag of their own.
  const amd = await image("ci/app", "", 20);
  const arm = await image("ci/app", "", 21);
  const index = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_INDEX,
    manifests: [amd, arm].map((m) => ({ mediaType: OCI_MANIFEST, digest: m.digest, size: m.size })),
  }));
  assert.equal((await putManifest(reg, "ci/app", "build-5", index, OCI_INDEX)).status, 201);

  const dry = (await lifecycle("?dry_run=true")).retention;
  assert.equal(dry.repositories, 1, "scratch is empty, other repositories match no rule");
  // The two newest unnamed tags are build-5 (the index) and build-4; latest and v1.0 are named.
  const goneTags = ["ci/app:build-0", "ci/app:build-1", "ci/app:build-2", "ci/app:build-3"];
  assert.deepEqual(dry.deleted.filter((d) => d.includes(":build")).sort(), goneTags);
  const goneManifests = [builds[1].digest, builds[2].digest, builds[3].digest, signature.digest].map((d) => `ci/app@${d}`).sort();
  assert.deepEqual(dry.deleted.filter((d) => d.includes("@")).sort(), goneManifests, "build-0's manifest stays: latest points at it");
  assert.deepEqual(await tags("ci/app"), ["build-0", "build-1", "build-2", "build-3", "build-4", "build-5", "latest", "v1.0"], "a dry run deletes nothing");

  const run = (await lifecycle()).retention;
  assert.deepEqual([...run.deleted].sort(), [...dry.deleted].sort(), "the run deleted exactly what the dry run said");
  assert.equal(run.finished, true);
  assert.deepEqual(await tags("ci/app"), ["build-4", "build-5", "latest", "v1.0"]);
  for (const [what, m, want] of [
    ["build-0 (latest)", builds[0], 200], ["build-1", builds[1], 404], ["build-2", builds[2], 404], ["build-3", builds[3], 404],
    ["signature of build-1", signature, 404], ["release signature", releaseSig, 200], ["amd64 child", amd, 200], ["arm64 child", arm, 200],
  ]) {
    assert.equal(await status("ci/app", m.digest), want, what);
  }
  const referrers = await (await reg.fetch(`/v2/ci/app/referrers/${release.digest}`)).json();
  assert.deepEqual(referrers.manifests.map((m) => m.digest), [releaseSig.digest]);

  // The collection frees the layers only deleted manifests named (aged past the grace period).
  await reg.ageBlobs();
  for (let i = 0; i < 50 && !(await lifecycle()).gc_finished; i++);
  const dataKey = (digest) => `blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}/data`;
  const left = new Set(await reg.keys("blobs/"));
  assert.ok(!left.has(dataKey(builds[2].layer.digest)), "build-2's layer freed");
  assert.ok(left.has(dataKey(builds[4].layer.digest)), "build-4's layer kept");
  assert.ok(left.has(dataKey(amd.layer.digest)), "the index child's layer kept");
});

// `latest` points at build-0's manifest: the config and layers of that manifest.
async function firstOf(build) {
  const m = await (await reg.fetch(`/v2/ci/app/manifests/${build.digest}`)).json();
  return [m.config, m.layers];
}

test("immutable tags never go, and the run says why it kept them", async () => {
  await image("scratch", "pinned", 1);
  await image("scratch", "temp", 2);
  const run = (await lifecycle()).retention;
  assert.deepEqual(run.deleted.filter((d) => d.startsWith("scratch")), ["scratch:temp"]);
  assert.ok(run.kept.some((k) => /scratch:pinned \(immutable by IMMUTABLE_TAGS rule 1/.test(k)), JSON.stringify(run.kept));
  assert.deepEqual(await tags("scratch"), ["pinned"]);
});

test("a RETENTION that does not parse fails closed", async () => {
  await assertFailsClosed({ RETENTION: '[{"repos": ["x"]}]' }, async (bad) => {
    // Nothing is deleted by a rule the registry cannot read: the lifecycle refuses too.
    assert.equal((await bad.fetch("/admin/lifecycle", { method: "POST" })).status, 500);
  });
});
