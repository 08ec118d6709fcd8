// Chunked pushes against the plain JS worker (miniflare/baseline.js: tee → DigestStream + put)
// on the same emulator, same run, part of `npm run bench`:
// - throughput with 1 MiB chunks and with chunks of random sizes up to 37 MB (the sizes drawn
//   from a fixed seed, so every run pushes the same ones), each against the baseline's push of
//   the same bytes measured just before it;
// - workerd's peak RSS during a 1 GiB push in 10 MB chunks against the baseline's single push
//   of the same 1 GiB, each in a fresh emulator (peaks are per process).
// - where a small chunk's time goes: per request, wall and workerd CPU, of a request that
//   touches no storage, a 1-byte PATCH (the state read and saved, a piece written) and a 1 MiB
//   PATCH, against the baseline's 1 MiB push (one emulator at a time, so the CPU is its own).
// Alone: `node miniflare/bench-chunks.mjs` after a build. BENCH_CHUNKS_MB (default 100) and
// BENCH_MEMORY_MB (default 1024, in MiB) set the sizes.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { fetchResent, startRegistry, startBaseline, withoutRequestLogs } from "./registry.mjs";
import { workerdPeaks, peakSince, workerdCpuMs } from "./procstat.mjs";

const sha256 = (b) => "sha256:" + createHash("sha256").update(b).digest("hex");

async function timed(fn) {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

// Chunk lengths for `size` bytes: all `n` but a shorter last one.
function fixedChunks(size, n) {
  const out = [];
  for (let at = 0; at < size; at += n) out.push(Math.min(n, size - at));
  return out;
}

// Chunk lengths for `size` bytes, each 1 byte to `max`, from a fixed seed (xorshift32).
function randomChunks(size, max, seed = 0x2545f491) {
  const out = [];
  let x = seed;
  for (let left = size; left > 0; ) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const n = Math.min(left, 1 + ((x >>> 0) % max));
    out.push(n);
    left -= n;
  }
  return out;
}

const startBaselineIn = (dir) => startBaseline(join(dir, "baseline"));

async function baselinePush(url, key, blob) {
  const res = await fetchResent(url + key, { method: "PUT", body: blob });
  if ((await res.text()) !== sha256(blob).slice(7)) throw new Error("baseline digest mismatch");
}

// POST, a PATCH per chunk (with Content-Range), then PUT ?digest=.
async function chunkedPush(url, name, blob, chunks) {
  let loc = (await fetch(`${url}/v2/${name}/blobs/uploads/`, { method: "POST" })).headers.get("location");
  let at = 0;
  for (const n of chunks) {
    const res = await fetchResent(url + loc, { method: "PATCH", body: blob.subarray(at, at + n), headers: { "content-range": `${at}-${at + n - 1}` } });
    if (res.status !== 202) throw new Error(`chunk at ${at}: ${res.status} ${await res.text()}`);
    loc = res.headers.get("location");
    at += n;
  }
  const res = await fetch(`${url}${loc}&digest=${sha256(blob)}`, { method: "PUT" });
  if (res.status !== 201) throw new Error(`commit: ${res.status} ${await res.text()}`);
}

// Wall and workerd CPU per call of `fn` (ms), over `n` calls.
async function perCall(n, fn) {
  const cpu = workerdCpuMs();
  const wall = await timed(async () => {
    for (let i = 0; i < n; i++) await fn(i);
  });
  return { wall: (wall * 1000) / n, cpu: (workerdCpuMs() - cpu) / n };
}

// Where a small chunk's time goes (see the file's docs).
async function chunkProfile(dir) {
  const n = 40;
  const mib = randomBytes(1 << 20);
  const out = {};
  const reg = await startRegistry({ onLog: withoutRequestLogs, dataDir: join(dir, "profile"), bindings: { UPLOAD_SECRET: "bench" } });
  try {
    await (await fetch(`${reg.url}/v2/`)).arrayBuffer();
    out["GET /v2/ (no storage)"] = await perCall(n, async () => (await fetch(`${reg.url}/v2/`)).arrayBuffer());
    for (const [label, body] of [["PATCH of 1 byte", mib.subarray(0, 1)], ["PATCH of 1 MiB", mib]]) {
      let loc = (await fetch(`${reg.url}/v2/bench/profile/blobs/uploads/`, { method: "POST" })).headers.get("location");
      out[label] = await perCall(n, async (i) => {
        const at = i * body.length;
        const res = await fetch(reg.url + loc, { method: "PATCH", body, headers: { "content-range": `${at}-${at + body.length - 1}` } });
        if (res.status !== 202) throw new Error(`profile chunk: ${res.status} ${await res.text()}`);
        loc = res.headers.get("location");
      });
    }
  } finally {
    await reg.mf.dispose();
  }
  const base = await startBaselineIn(join(dir, "profile-baseline"));
  try {
    await baselinePush(base.url, "warm", mib);
    out["baseline: push of 1 MiB"] = await perCall(n, (i) => baselinePush(base.url, `profile/${i}`, mib));
  } finally {
    await base.mf.dispose();
  }
  return out;
}

export async function chunkFigures() {
  const size = Number(process.env.BENCH_CHUNKS_MB || 100) * 1e6;
  const dir = mkdtempSync(join(tmpdir(), "bench-chunks-"));
  const out = {};
  try {
    const base = await startBaselineIn(dir);
    const reg = await startRegistry({ onLog: withoutRequestLogs, dataDir: join(dir, "registry"), bindings: { UPLOAD_SECRET: "bench" } });
    try {
      const variants = { "1 MiB": fixedChunks(size, 1 << 20), "random ≤ 37 MB": randomChunks(size, 37e6) };
      for (const [label, chunks] of Object.entries(variants)) {
        const blob = randomBytes(size);
        const baseline = await timed(() => baselinePush(base.url, `chunks/${Object.keys(out).length}`, blob));
        const registry = await timed(() => chunkedPush(reg.url, "bench/chunks", blob, chunks));
        out[label] = { baseline, registry, requests: chunks.length + 2 };
      }
    } finally {
      await reg.mf.dispose();
      await base.mf.dispose();
    }
    out.profile = await chunkProfile(dir);
    // Memory: each side in a process of its own, so each peak is its own.
    const mem = Number(process.env.BENCH_MEMORY_MB || 1024) * 1024 * 1024;
    const blob = randomBytes(mem);
    let before = new Set(Object.keys(workerdPeaks()));
    const b = await startBaselineIn(dir);
    await baselinePush(b.url, "memory", blob);
    const baselinePeak = peakSince(before);
    await b.mf.dispose();
    before = new Set(Object.keys(workerdPeaks()));
    const r = await startRegistry({ onLog: withoutRequestLogs, dataDir: join(dir, "memory"), bindings: { UPLOAD_SECRET: "bench" } });
    await chunkedPush(r.url, "bench/memory", blob, fixedChunks(mem, 10e6));
    const registryPeak = peakSince(before);
    await r.mf.dispose();
    out.memory = { bytes: mem, baselinePeak, registryPeak };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`chunked pushes of ${size / 1e6} MB (emulator), against the JS tee → DigestStream + put of the same bytes:`);
  for (const [label, { baseline, registry, requests }] of Object.entries(out)) {
    if (label === "memory" || label === "profile") continue;
    console.log(`  ${label.padEnd(16)} ${(size / 1e6 / registry).toFixed(1).padStart(6)} MB/s (${requests} requests)   baseline ${(size / 1e6 / baseline).toFixed(1)} MB/s   ${(baseline / registry).toFixed(2)}× baseline`);
  }
  console.log("where a small chunk's time goes, per request (wall / workerd CPU):");
  for (const [label, { wall, cpu }] of Object.entries(out.profile)) {
    console.log(`  ${label.padEnd(26)} ${wall.toFixed(1).padStart(6)} ms / ${cpu.toFixed(1).padStart(5)} ms`);
  }
  const m = out.memory;
  console.log(`workerd peak RSS, ${m.bytes / 2 ** 30} GiB: registry push in 10 MB chunks ${m.registryPeak.toFixed(0)} MB; baseline single push ${m.baselinePeak.toFixed(0)} MB`);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await chunkFigures();
}
