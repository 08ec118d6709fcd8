// Real clients from Debian's packages against the registry on the emulator: skopeo copies a
// locally built (umoci) multi-layer OCI image in and out, across a restart of the emulator;
// podman pulls it and pushes it under a new name; `skopeo copy --all` pushes a multi-platform
// index. Skipped (loudly) outside CI when the tools are missing; CI installs them.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { registry } from "./helpers.mjs";
import { skipClients, sh, buildImage as buildImageIn } from "./tools.mjs";

const skip = skipClients;
let reg, work, host;
const buildImage = (layout, tag, seed) => buildImageIn(work, layout, tag, seed);

const rawDigest = (ref, flags = []) => "sha256:" + createHash("sha256").update(sh("skopeo", ["inspect", "--raw", ...flags, ref])).digest("hex");

before(async () => {
  if (skip) return;
  reg = await registry();
  host = reg.url.replace("http://", "");
  work = mkdtempSync(join(tmpdir(), "clients-"));
  buildImage(join(work, "img"), "v1", "one");
});

after(async () => {
  if (skip) return;
  await reg.close();
  rmSync(work, { recursive: true, force: true });
});

// The request log lines of what `run` sent (they are written as responses go out).
async function logsOf(run) {
  const from = reg.requestLogs.length;
  run();
  let seen;
  do {
    seen = reg.requestLogs.length;
    await new Promise((r) => setTimeout(r, 100));
  } while (reg.requestLogs.length !== seen);
  return reg.requestLogs.slice(from);
}

const classA = (line) => Number(line.ops.match(/r2-a=(\d+)/)[1]);

test("skopeo copy in, list tags, restart, copy out: digests match", { skip }, async () => {
  const src = `oci:${join(work, "img")}:v1`;
  const push = await logsOf(() => sh("skopeo", ["copy", "--dest-tls-verify=false", src, `docker://${host}/clients/img:v1`]));
  // What the push cost in class-A operations (README's table): per blob (config, two layers)
  // POST 0, PATCH 2 (the bytes, the state), PUT 3 (the lease, the descriptor, the link); the
  // manifest 6 (its bytes and descriptor, the revision, the tag and its index entry, the
  // catalog entry).
  const of = (method, route) => push.filter((l) => l.method === method && l.route === route && l.status < 300);
  assert.equal(of("PATCH", "upload").length, 3, JSON.stringify(push.map((l) => `${l.method} ${l.route} ${l.status}`)));
  assert.deepEqual(of("POST", "upload").map(classA), [0, 0, 0]);
  assert.deepEqual(of("PATCH", "upload").map(classA), [2, 2, 2]);
  assert.deepEqual(of("PUT", "upload").map(classA), [3, 3, 3]);
  assert.deepEqual(of("PUT", "manifest").map(classA), [6]);
  assert.equal(push.map(classA).reduce((a, b) => a + b), 3 * 5 + 6);
  // The same image pushed again (as CI does): skopeo finds every blob, and the manifest's links
  // are in place already; nothing is written.
  const again = await logsOf(() => sh("skopeo", ["copy", "--dest-tls-verify=false", src, `docker://${host}/clients/img:v1`]));
  assert.equal(again.map(classA).reduce((a, b) => a + b), 0, JSON.stringify(again.map((l) => `${l.method} ${l.route} ${l.ops}`)));
  const tags = JSON.parse(sh("skopeo", ["list-tags", "--tls-verify=false", `docker://${host}/clients/img`]));
  assert.deepEqual(tags.Tags, ["v1"]);
  await reg.restart();
  host = reg.url.replace("http://", "");
  const out = `oci:${join(work, "out")}:v1`;
  sh("skopeo", ["copy", "--src-tls-verify=false", `docker://${host}/clients/img:v1`, out]);
  assert.equal(rawDigest(out), rawDigest(src));
  assert.equal(rawDigest(`docker://${host}/clients/img:v1`, ["--tls-verify=false"]), rawDigest(src));
});

test("podman pulls the image and pushes it under a new name", { skip }, async () => {
  // Its own image, pushed here: the test does not depend on another having run.
  sh("skopeo", ["copy", "--dest-tls-verify=false", `oci:${join(work, "img")}:v1`, `docker://${host}/clients/podman-src:v1`]);
  const storage = ["--root", join(work, "podman-root"), "--runroot", join(work, "podman-run"), "--storage-driver", "vfs"];
  sh("podman", [...storage, "pull", "--tls-verify=false", `${host}/clients/podman-src:v1`]);
  sh("podman", [...storage, "push", "--tls-verify=false", `${host}/clients/podman-src:v1`, `${host}/clients/copy:v2`]);
  const tags = JSON.parse(sh("skopeo", ["list-tags", "--tls-verify=false", `docker://${host}/clients/copy`]));
  assert.deepEqual(tags.Tags, ["v2"]);
  const res = await reg.fetch(`/v2/clients/copy/manifests/v2`);
  assert.equal(res.status, 200);
});

test("skopeo copy --all pushes a multi-platform OCI index", { skip }, async () => {
  const layout = join(work, "multi");
  buildImage(layout, "amd64", "amd");
  buildImage(layout, "arm64", "arm");
  // Put both images under one image index, as a multi-platform image is laid out.
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
  const platform = { amd64: { architecture: "amd64", os: "linux" }, arm64: { architecture: "arm64", os: "linux" } };
  const manifests = index.manifests.map((m) => {
    const arch = m.annotations["org.opencontainers.image.ref.name"];
    return { mediaType: m.mediaType, digest: m.digest, size: m.size, platform: platform[arch] };
  });
  const child = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests }));
  const hex = createHash("sha256").update(child).digest("hex");
  writeFileSync(join(layout, "blobs", "sha256", hex), child);
  index.manifests = [{ mediaType: "application/vnd.oci.image.index.v1+json", digest: `sha256:${hex}`, size: child.length, annotations: { "org.opencontainers.image.ref.name": "multi" } }];
  writeFileSync(join(layout, "index.json"), JSON.stringify(index));
  sh("skopeo", ["copy", "--all", "--dest-tls-verify=false", `oci:${layout}:multi`, `docker://${host}/clients/multi:latest`]);
  const res = await reg.fetch(`/v2/clients/multi/manifests/latest`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/vnd.oci.image.index.v1+json");
  assert.equal(res.headers.get("docker-content-digest"), `sha256:${hex}`);
  for (const m of manifests) {
    const child = await reg.fetch(`/v2/clients/multi/manifests/${m.digest}`, { method: "HEAD" });
    assert.equal(child.status, 200);
  }
});
