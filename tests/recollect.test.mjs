// A collected blob is gone for every reader: an image pushed with skopeo, deleted, its blobs
// collected (age simulated by rewriting the descriptors' `touched`, as lifecycle.test does), then
// HEAD answers 404 for each of its blobs, and pushing the same image again into the same
// repository works on the first try, with skopeo and with Docker (a private daemon; Docker
// remembers which layers it pushed where, and HEADs them before it skips them).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { registry, sha256, errorCode } from "./helpers.mjs";
import { writeFileSync, mkdirSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { skipClients as skip, sh, buildImage, dockerDaemon } from "./tools.mjs";

let reg, host, work;
before(async () => {
  reg = await registry();
  host = reg.url.replace("http://", "");
  work = mkdtempSync(join(tmpdir(), "recollect-"));
});
after(async () => {
  await reg.close();
  rmSync(work, { recursive: true, force: true });
});

async function lifecycle() {
  const res = await reg.fetch("/admin/lifecycle", { method: "POST" });
  assert.equal(res.status, 200);
  return res.json();
}

test("delete, collect, HEAD 404, and skopeo pushes the same image again first try", { skip }, async () => {
  const layout = join(work, "img");
  buildImage(work, layout, "t1", "recollect");
  const ref = `docker://${host}/ci/app`;
  sh("skopeo", ["copy", "--dest-tls-verify=false", `oci:${layout}:t1`, `${ref}:t1`]);
  const raw = sh("skopeo", ["inspect", "--raw", "--tls-verify=false", `${ref}:t1`]);
  const manifest = JSON.parse(raw);
  const digest = sha256(Buffer.from(raw));
  const blobs = [manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
  for (const b of blobs) assert.equal((await reg.fetch(`/v2/ci/app/blobs/${b}`, { method: "HEAD" })).status, 200);

  assert.equal((await reg.fetch(`/v2/ci/app/manifests/${digest}`, { method: "DELETE" })).status, 202);
  await reg.ageBlobs();
  // A registry this small is collected in one run.
  const run = await lifecycle();
  assert.equal(run.gc_finished, true, JSON.stringify(run));
  assert.equal(run.gc.blobs_deleted, blobs.length + 1, "the config, the layers and the manifest");

  for (const b of blobs) {
    const head = await reg.fetch(`/v2/ci/app/blobs/${b}`, { method: "HEAD" });
    assert.equal(head.status, 404, `HEAD ${b} after the collection`);
    assert.equal(await errorCode(await reg.fetch(`/v2/ci/app/blobs/${b}`)), "BLOB_UNKNOWN");
    assert.equal((await reg.fetch(`/v2/ci/app/blobs/${b}`, { method: "HEAD" })).status, 404, "and still 404");
  }
  assert.deepEqual(await reg.keys("repositories/ci/app/_layers/"), [], "no link claims a collected blob");

  // The same image again, into the same repository: skopeo uploads what HEAD says is missing.
  sh("skopeo", ["copy", "--retry-times=0", "--dest-tls-verify=false", `oci:${layout}:t1`, `${ref}:t1again`]);
  assert.equal(sha256(Buffer.from(sh("skopeo", ["inspect", "--raw", "--tls-verify=false", `${ref}:t1again`]))), digest);
  for (const b of blobs) {
    const res = await reg.fetch(`/v2/ci/app/blobs/${b}`);
    assert.equal(res.status, 200);
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), b);
  }
});

test("docker pushes an image again after it was deleted and collected, first try", { skip }, async () => {
  const daemon = await dockerDaemon(mkdtempSync("/tmp/dkr-"));
  try {
    const rootfs = join(work, "docker-rootfs");
    mkdirSync(rootfs, { recursive: true });
    writeFileSync(join(rootfs, "data"), randomBytes(200_000));
    sh("tar", ["-C", rootfs, "-cf", join(work, "rootfs.tar"), "."]);
    const image = `${host}/ci/dock:t1`;
    daemon.docker(["import", join(work, "rootfs.tar"), image]);
    daemon.docker(["push", image]);
    const head = await reg.fetch("/v2/ci/dock/manifests/t1", { method: "HEAD", headers: { accept: "application/vnd.docker.distribution.manifest.v2+json" } });
    const digest = head.headers.get("docker-content-digest");
    const manifest = await (await reg.fetch(`/v2/ci/dock/manifests/${digest}`)).json();
    const blobs = [manifest.config.digest, ...manifest.layers.map((l) => l.digest)];

    assert.equal((await reg.fetch(`/v2/ci/dock/manifests/${digest}`, { method: "DELETE" })).status, 202);
    await reg.ageBlobs();
    const run = await lifecycle();
    assert.equal(run.gc_finished, true);
    for (const b of blobs) assert.equal((await reg.fetch(`/v2/ci/dock/blobs/${b}`, { method: "HEAD" })).status, 404, b);

    // Docker still believes it pushed these layers here; its HEAD says otherwise, so it uploads.
    daemon.docker(["push", image]);
    const again = await reg.fetch("/v2/ci/dock/manifests/t1", { method: "HEAD", headers: { accept: "application/vnd.docker.distribution.manifest.v2+json" } });
    assert.equal(again.status, 200);
    assert.equal(again.headers.get("docker-content-digest"), digest);
    for (const b of blobs) {
      const res = await reg.fetch(`/v2/ci/dock/blobs/${b}`);
      assert.equal(res.status, 200, b);
      assert.equal(sha256(Buffer.from(await res.arrayBuffer())), b);
    }
  } finally {
    await daemon.close();
  }
});

test("a link whose bytes are gone is dropped by the GET that finds them gone", async () => {
  const bytes = Buffer.from("soon gone");
  const d = sha256(bytes);
  assert.equal((await reg.fetch(`/v2/heal/x/blobs/uploads/?digest=${d}`, { method: "POST", body: bytes })).status, 201);
  // The bytes vanish under the link (as a collection leaves them).
  const bucket = await reg.bucket();
  const descKey = (await reg.keys("blobs/")).find((k) => k.includes(d.slice(7)) && k.endsWith("/descriptor"));
  const desc = JSON.parse(await (await bucket.get(descKey)).text());
  await bucket.delete(desc.object);
  assert.equal(await errorCode(await reg.fetch(`/v2/heal/x/blobs/${d}`)), "BLOB_UNKNOWN");
  assert.deepEqual(await reg.keys("repositories/heal/x/_layers/"), []);
});
