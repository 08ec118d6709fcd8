// Past R2's 5 GiB single-write limit (run by `npm run bench` only with SLOW=1; several minutes):
// a blob of BENCH_HUGE_GIB GiB (default 6) pushed in 64 MiB chunks and pulled back, with the
// throughput and workerd's peak memory of each, and the peak of a plain JS worker pulling the
// same stored object (the emulator's R2 reads multipart objects into memory: compare like with
// like).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { fetchResent, startRegistry, startBaseline, withoutRequestLogs } from "./registry.mjs";
import { workerdPeaks, peakSince } from "./procstat.mjs";

const CHUNK = 64 * 1024 * 1024;

async function drain(res) {
  const hash = createHash("sha256");
  let n = 0;
  for await (const part of res.body) {
    hash.update(part);
    n += part.length;
  }
  return { digest: "sha256:" + hash.digest("hex"), n };
}

export async function hugeFigures(gib = Number(process.env.BENCH_HUGE_GIB || 6)) {
  const total = gib * 1024 ** 3;
  const dir = mkdtempSync(join(tmpdir(), "bench-huge-"));
  try {
    let before = new Set(Object.keys(workerdPeaks()));
    const { mf, url } = await startRegistry({ onLog: withoutRequestLogs, dataDir: dir, bindings: { UPLOAD_SECRET: "bench" } });
    const block = randomBytes(CHUNK);
    const hash = createHash("sha256");
    let loc = (await fetch(`${url}/v2/bench/huge/blobs/uploads/`, { method: "POST" })).headers.get("location");
    const t0 = performance.now();
    for (let at = 0, i = 0; at < total; at += CHUNK, i++) {
      block.writeUInt32BE(i, 0);
      hash.update(block);
      const res = await fetchResent(url + loc, { method: "PATCH", body: block, headers: { "content-range": `${at}-${at + CHUNK - 1}` } });
      if (res.status !== 202) throw new Error(`chunk ${i}: ${res.status}`);
      loc = res.headers.get("location");
    }
    const digest = "sha256:" + hash.digest("hex");
    const put = await fetch(`${url}${loc}&digest=${digest}`, { method: "PUT" });
    if (put.status !== 201) throw new Error(`commit: ${put.status}`);
    const pushS = (performance.now() - t0) / 1000;
    const pushPeak = peakSince(before);
    const t1 = performance.now();
    const back = await drain(await fetch(`${url}/v2/bench/huge/blobs/${digest}`));
    const pullS = (performance.now() - t1) / 1000;
    if (back.digest !== digest || back.n !== total) throw new Error("pulled back the wrong bytes");
    const pullPeak = peakSince(before);
    const key = (await (await mf.getR2Bucket("BLOBS")).list({ prefix: "objects/" })).objects.find((o) => o.size === total).key;
    await mf.dispose();
    before = new Set(Object.keys(workerdPeaks()));
    const { mf: base, url: baseUrl } = await startBaseline(join(dir, "r2"));
    const jsBack = await drain(await fetch(baseUrl + key));
    const jsPeak = peakSince(before);
    await base.dispose();
    if (jsBack.n !== total) throw new Error("the JS pull got the wrong size");
    const mbps = (s) => ((total / 1e6) / s).toFixed(1);
    console.log(`${gib} GiB blob in 64 MiB chunks (R2 multipart, past the 5 GiB single-write limit):`);
    console.log(`  push ${mbps(pushS)} MB/s, workerd peak ${pushPeak.toFixed(0)} MB; pull ${mbps(pullS)} MB/s, workerd peak ${pullPeak.toFixed(0)} MB (a JS worker's pull of the same object: ${jsPeak.toFixed(0)} MB); digest checked`);
    return { pushPeak, pullPeak, jsPeak };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await hugeFigures();
