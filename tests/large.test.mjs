// Large blobs on the emulator: 1 GiB pushed in 37 MB chunks with a restart of the emulator
// between two chunks, a 90 MB monolithic PATCH, and pulls checked by digest.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { registry, startUpload, sha256 } from "./helpers.mjs";

let reg;
before(async () => (reg = await registry()));
after(async () => reg.close());

const MB = 1000 * 1000;

// Deterministic chunk i: a random block with the index stamped in, so chunks differ.
const block = randomBytes(37 * MB);
function chunk(i, len) {
  const c = Buffer.from(block.subarray(0, len));
  if (len >= 4) c.writeUInt32BE(i, 0);
  else if (len > 0) c[0] = i & 255;
  return c;
}

async function pullDigest(name, digest) {
  const res = await reg.fetch(`/v2/${name}/blobs/${digest}`);
  assert.equal(res.status, 200);
  const h = createHash(digest.split(":")[0]);
  let n = 0;
  for await (const part of res.body) {
    h.update(part);
    n += part.length;
  }
  return { digest: `${digest.split(":")[0]}:${h.digest("hex")}`, size: n };
}

test("1 GiB in 37 MB chunks, emulator restarted between two chunks", async () => {
  const total = 1024 * 1024 * 1024;
  const hash = createHash("sha256");
  let loc = await startUpload(reg, "large/one");
  let at = 0;
  let i = 0;
  while (at < total) {
    const len = Math.min(37 * MB, total - at);
    const c = chunk(i++, len);
    hash.update(c);
    const res = await reg.fetch(loc, {
      method: "PATCH", body: c,
      headers: { "content-type": "application/octet-stream", "content-range": `${at}-${at + len - 1}` },
    });
    assert.equal(res.status, 202, await res.text());
    at += len;
    assert.equal(res.headers.get("range"), `0-${at - 1}`);
    loc = res.headers.get("location");
    if (i === 3) {
      await reg.restart();
      const status = await reg.fetch(loc);
      assert.equal(status.status, 204);
      assert.equal(status.headers.get("range"), `0-${at - 1}`);
    }
  }
  const digest = "sha256:" + hash.digest("hex");
  const res = await reg.fetch(`${loc}&digest=${digest}`, { method: "PUT" });
  assert.equal(res.status, 201, await res.text());
  assert.deepEqual(await pullDigest("large/one", digest), { digest, size: total });
});

test("90 MB monolithic PATCH then PUT", async () => {
  const c = Buffer.concat([chunk(99, 37 * MB), chunk(98, 37 * MB), chunk(97, 16 * MB)]);
  const digest = sha256(c);
  const loc = await startUpload(reg, "large/mono");
  let res = await reg.fetch(loc, { method: "PATCH", body: c, headers: { "content-type": "application/octet-stream" } });
  assert.equal(res.status, 202);
  res = await reg.fetch(`${res.headers.get("location")}&digest=${digest}`, { method: "PUT" });
  assert.equal(res.status, 201);
  assert.deepEqual(await pullDigest("large/mono", digest), { digest, size: c.length });
});

test("random chunk sizes straddling 5 MiB parts", async () => {
  const sizes = [3 * MB, 7 * MB, 1, 2 * MB + 5, 6 * MB, 11];
  const hash = createHash("sha256");
  let loc = await startUpload(reg, "large/random");
  let at = 0;
  for (const [i, len] of sizes.entries()) {
    const c = chunk(200 + i, len);
    hash.update(c);
    const res = await reg.fetch(loc, { method: "PATCH", body: c, headers: { "content-range": `${at}-${at + len - 1}` } });
    assert.equal(res.status, 202);
    at += len;
    loc = res.headers.get("location");
  }
  const digest = "sha256:" + hash.digest("hex");
  const res = await reg.fetch(`${loc}&digest=${digest}`, { method: "PUT" });
  assert.equal(res.status, 201);
  assert.deepEqual(await pullDigest("large/random", digest), { digest, size: at });
});
