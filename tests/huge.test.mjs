// Past R2's 5 GiB single-write limit: a 6 GiB blob pushed in 64 MiB chunks (one R2 multipart
// part each), committed, and pulled back with the right digest, while workerd's memory during
// the push stays bounded by what is in flight, not by the blob. (The pull's memory is the
// emulator's: its R2 reads a multipart object's parts into memory, a plain JS worker's pull
// more so; `npm run bench` with SLOW=1 prints both.) Slow (several minutes, 12 GB through the
// emulator's disk): `npm test` runs it only with SLOW=1.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { registry, startUpload } from "./helpers.mjs";
import { workerdPeaks, peakSince } from "../miniflare/procstat.mjs";

const GiB = 1024 * 1024 * 1024;
const CHUNK = 64 * 1024 * 1024;
const skip = process.env.SLOW === "1" ? false : "slow: set SLOW=1 to run it";

test("a 6 GiB blob in 64 MiB chunks: committed with memory bounded, pulled back by digest", { skip, timeout: 40 * 60 * 1000 }, async () => {
  const before = new Set(Object.keys(workerdPeaks()));
  const reg = await registry();
  try {
    const total = 6 * GiB;
    const block = randomBytes(CHUNK);
    const hash = createHash("sha256");
    let loc = await startUpload(reg, "huge/blob");
    for (let at = 0, i = 0; at < total; at += CHUNK, i++) {
      block.writeUInt32BE(i, 0); // every chunk differs
      hash.update(block);
      const res = await reg.fetch(loc, {
        method: "PATCH", body: block,
        headers: { "content-type": "application/octet-stream", "content-range": `${at}-${at + CHUNK - 1}` },
      });
      assert.equal(res.status, 202, await res.text());
      loc = res.headers.get("location");
    }
    const digest = "sha256:" + hash.digest("hex");
    const pushPeak = peakSince(before);
    // Bounded by the chunks in flight (a few times 64 MiB), nowhere near the blob's 6 GiB.
    assert.ok(pushPeak < 1024, `workerd peak ${pushPeak.toFixed(0)} MB while pushing`);
    const put = await reg.fetch(`${loc}&digest=${digest}`, { method: "PUT" });
    assert.equal(put.status, 201, await put.text());
    const head = await reg.fetch(`/v2/huge/blob/blobs/${digest}`, { method: "HEAD" });
    assert.equal(head.headers.get("content-length"), String(total));

    const res = await reg.fetch(`/v2/huge/blob/blobs/${digest}`);
    assert.equal(res.status, 200);
    const back = createHash("sha256");
    let size = 0;
    for await (const part of res.body) {
      back.update(part);
      size += part.length;
    }
    assert.deepEqual({ digest: "sha256:" + back.digest("hex"), size }, { digest, size: total });
    console.log(`6 GiB: workerd peak RSS ${pushPeak.toFixed(0)} MB while pushing, ${peakSince(before).toFixed(0)} MB after the pull`);
  } finally {
    await reg.close();
  }
});
