// Manifests over real HTTP on the emulator: Docker schema 2 manifests and manifest lists pushed
// and pulled; concurrent PUTs of different manifests to one tag.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { registry, sha256, errorCode, pushBlob, putManifest } from "./helpers.mjs";

const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip";

let reg;
before(async () => (reg = await registry()));
after(async () => reg.close());

function dockerManifest(config, layers) {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: DOCKER_CONFIG, ...config },
      layers: layers.map((l) => ({ mediaType: DOCKER_LAYER, ...l })),
    }),
  );
}

test("Docker schema 2 manifests and a manifest list: pushed, pulled byte-exact with their media types", async () => {
  const name = "docker/app";
  const children = [];
  for (const arch of ["amd64", "arm64"]) {
    const config = await pushBlob(reg, name, Buffer.from(JSON.stringify({ architecture: arch, os: "linux" })));
    const layer = await pushBlob(reg, name, randomBytes(2000));
    const m = dockerManifest(config, [layer]);
    const res = await putManifest(reg, name, `${arch}`, m, DOCKER_MANIFEST);
    assert.equal(res.status, 201);
    assert.equal(res.headers.get("docker-content-digest"), sha256(m));
    children.push({ m, arch });
  }
  const list = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: DOCKER_LIST,
      manifests: children.map(({ m, arch }) => ({ mediaType: DOCKER_MANIFEST, digest: sha256(m), size: m.length, platform: { architecture: arch, os: "linux" } })),
    }),
  );
  assert.equal((await putManifest(reg, name, "latest", list, DOCKER_LIST)).status, 201);
  for (const [ref, bytes, type] of [["latest", list, DOCKER_LIST], [sha256(list), list, DOCKER_LIST], ...children.map(({ m, arch }) => [arch, m, DOCKER_MANIFEST])]) {
    const res = await reg.fetch(`/v2/${name}/manifests/${ref}`, { headers: { accept: `${DOCKER_LIST}, ${DOCKER_MANIFEST}` } });
    assert.equal(res.status, 200, ref);
    assert.equal(res.headers.get("content-type"), type, ref);
    assert.equal(res.headers.get("docker-content-digest"), sha256(bytes));
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), bytes, ref);
  }
  // A list whose body says one media type and whose Content-Type says another is refused.
  const res = await putManifest(reg, name, "mixed", list, DOCKER_MANIFEST);
  assert.equal(res.status, 400);
  assert.equal(await errorCode(res), "MANIFEST_INVALID");
});

test("8 different manifests PUT to one tag at once: the tag ends on one of them, its history stays consistent", async () => {
  const name = "docker/race";
  const config = await pushBlob(reg, name, Buffer.from('{"os":"linux"}'));
  const layer = await pushBlob(reg, name, randomBytes(500));
  const manifests = Array.from({ length: 8 }, (_, i) =>
    Buffer.from(JSON.stringify({ ...JSON.parse(dockerManifest(config, [layer])), annotations: undefined, comment: `variant ${i}` })),
  );
  const results = await Promise.all(manifests.map((m) => putManifest(reg, name, "t", m, DOCKER_MANIFEST)));
  for (const r of results) assert.equal(r.status, 201);
  const digests = manifests.map(sha256);
  const current = (await reg.fetch(`/v2/${name}/manifests/t`)).headers.get("docker-content-digest");
  assert.ok(digests.includes(current), "the tag points at one of the manifests pushed");
  assert.deepEqual((await (await reg.fetch(`/v2/${name}/tags/list`)).json()).tags, ["t"]);
  // Deleting every other revision leaves the tag where it is; deleting its own removes it.
  for (const d of digests.filter((d) => d !== current)) {
    assert.equal((await reg.fetch(`/v2/${name}/manifests/${d}`, { method: "DELETE" })).status, 202);
  }
  assert.equal((await reg.fetch(`/v2/${name}/manifests/t`)).headers.get("docker-content-digest"), current);
  assert.equal((await reg.fetch(`/v2/${name}/manifests/${current}`, { method: "DELETE" })).status, 202);
  assert.equal((await reg.fetch(`/v2/${name}/manifests/t`)).status, 404);
  assert.deepEqual((await (await reg.fetch(`/v2/${name}/tags/list`)).json()).tags, []);
});
