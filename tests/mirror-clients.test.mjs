// The mirror with real clients and a real upstream: Debian's docker-registry (distribution 2.8)
// holds an image pushed by skopeo; skopeo copies it and podman pulls it through a prefix of the
// mirror, podman pulls it through a registries.conf mirror entry, and a warm copy works with the
// upstream stopped.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { registry } from "./helpers.mjs";
import { skipClients as skip, sh, buildImage, distribution } from "./tools.mjs";

let work, dist, mirror, plain;
const rawDigest = (ref, flags = []) => "sha256:" + createHash("sha256").update(sh("skopeo", ["inspect", "--raw", ...flags, ref])).digest("hex");

before(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), "mirror-clients-"));
  dist = await distribution(join(work, "distribution"));
  buildImage(work, join(work, "img"), "v1", "mirror");
  sh("skopeo", ["copy", "--dest-tls-verify=false", `oci:${join(work, "img")}:v1`, `docker://${dist.host}/team/app:v1`]);
  mirror = await registry({ UPSTREAMS: JSON.stringify([{ prefix: "dist/", url: dist.url }]) });
  // A mirror for every name, as a registries.conf mirror (or dockerd's registry-mirrors) uses it.
  plain = await registry({ UPSTREAMS: JSON.stringify([{ prefix: "", url: dist.url }]) });
});

after(async () => {
  if (skip) return;
  await mirror?.close();
  await plain?.close();
  await dist?.close();
  rmSync(work, { recursive: true, force: true });
});

test("skopeo copies through a prefix; the warm copy needs no upstream", { skip }, async () => {
  const host = mirror.url.replace("http://", "");
  const source = rawDigest(`oci:${join(work, "img")}:v1`);
  sh("skopeo", ["copy", "--src-tls-verify=false", `docker://${host}/dist/team/app:v1`, `oci:${join(work, "cold")}:v1`]);
  assert.equal(rawDigest(`oci:${join(work, "cold")}:v1`), source);
  const res = await mirror.fetch("/v2/dist/team/app/manifests/v1", { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
  assert.equal(res.headers.get("registry-upstream"), "hit");
  const manifest = await res.json();
  // Every layer was filled (recorded after each response).
  for (const l of manifest.layers) {
    for (let i = 0; (await mirror.keys(`repositories/dist/team/app/_layers/sha256/${l.digest.slice(7)}/`)).length === 0; i++) {
      assert.ok(i < 400, `layer ${l.digest} recorded`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  await dist.close();
  try {
    sh("skopeo", ["copy", "--src-tls-verify=false", `docker://${host}/dist/team/app:v1`, `oci:${join(work, "warm")}:v1`]);
    assert.equal(rawDigest(`oci:${join(work, "warm")}:v1`), source);
  } finally {
    dist = await distribution(join(work, "distribution"));
    await plain.close();
    plain = await registry({ UPSTREAMS: JSON.stringify([{ prefix: "", url: dist.url }]) });
  }
});

test("podman pulls through a prefix", { skip }, async () => {
  const host = mirror.url.replace("http://", "");
  const storage = ["--root", join(work, "podman-prefix-root"), "--runroot", join(work, "podman-prefix-run"), "--storage-driver", "vfs"];
  sh("podman", [...storage, "pull", "--tls-verify=false", `${host}/dist/team/app:v1`]);
  const image = JSON.parse(sh("podman", [...storage, "image", "inspect", `${host}/dist/team/app:v1`]));
  const res = await mirror.fetch("/v2/dist/team/app/manifests/v1", { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
  assert.equal(res.status, 200);
  assert.equal(image[0].RootFS.Layers.length, (await res.json()).layers.length);
});

test("podman pulls through a registries.conf mirror", { skip }, async () => {
  const mirrorHost = plain.url.replace("http://", "");
  const conf = join(work, "registries.conf");
  writeFileSync(
    conf,
    `unqualified-search-registries = []\n[[registry]]\nlocation = "${dist.host}"\ninsecure = true\n[[registry.mirror]]\nlocation = "${mirrorHost}"\ninsecure = true\n`,
  );
  const storage = ["--root", join(work, "podman-root"), "--runroot", join(work, "podman-run"), "--storage-driver", "vfs"];
  const env = { ...process.env, CONTAINERS_REGISTRIES_CONF: conf };
  sh("podman", [...storage, "pull", `${dist.host}/team/app:v1`], { env });
  // The mirror served it: it holds the manifest and the layers now.
  const res = await plain.fetch("/v2/team/app/manifests/v1", { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("registry-upstream"), "hit");
  const manifest = await res.json();
  const image = JSON.parse(sh("podman", [...storage, "image", "inspect", `${dist.host}/team/app:v1`], { env }));
  assert.equal(image[0].RootFS.Layers.length, manifest.layers.length);
  assert.ok((await plain.keys("repositories/team/app/_layers/")).length >= 1);
});
