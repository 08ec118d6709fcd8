// `npm run bench`: push and pull throughput of a 200 MB blob on the emulator, and workerd's
// peak RSS, next to a plain JavaScript worker measured in the same run (miniflare/baseline.js).
import { Miniflare } from "miniflare";
import { mkdtempSync, rmSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createHash, randomBytes } from "node:crypto";
import { startRegistry } from "./registry.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const SIZE = Number(process.env.BENCH_MB || 200) * 1000 * 1000;
const CHUNK = 10 * 1000 * 1000;
const blob = randomBytes(SIZE);
const digest = "sha256:" + createHash("sha256").update(blob).digest("hex");

// Peak resident set of every workerd process (VmHWM), in MB.
function workerdPeaks() {
  const peaks = {};
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (!cmd.includes("workerd")) continue;
      const hwm = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmHWM:\s+(\d+)/);
      if (hwm) peaks[pid] = Number(hwm[1]) / 1024;
    } catch {}
  }
  return peaks;
}

async function timed(fn) {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

async function drain(res) {
  let n = 0;
  for await (const part of res.body) n += part.length;
  return n;
}

const mbps = (s) => (SIZE / 1e6 / s).toFixed(1);

async function baseline() {
  const dir = mkdtempSync(join(tmpdir(), "bench-js-"));
  const before = new Set(Object.keys(workerdPeaks()));
  const mf = new Miniflare({ modules: true, scriptPath: join(root, "miniflare", "baseline.js"), compatibilityDate: "2026-04-01", r2Buckets: ["BLOBS"], r2Persist: join(dir, "r2"), host: "127.0.0.1", port: 0 });
  const url = (await mf.ready).toString();
  const push = await timed(async () => {
    const res = await fetch(url + "blob", { method: "PUT", body: blob });
    if ((await res.text()) !== digest.slice(7)) throw new Error("baseline digest mismatch");
  });
  const pull = await timed(async () => {
    if ((await drain(await fetch(url + "blob"))) !== SIZE) throw new Error("baseline short read");
  });
  const peak = Math.max(...Object.entries(workerdPeaks()).filter(([p]) => !before.has(p)).map(([, v]) => v));
  await mf.dispose();
  rmSync(dir, { recursive: true, force: true });
  return { push, pull, peak };
}

async function registry() {
  const dir = mkdtempSync(join(tmpdir(), "bench-reg-"));
  const before = new Set(Object.keys(workerdPeaks()));
  const { mf, url } = await startRegistry({ dataDir: dir, bindings: { UPLOAD_SECRET: "bench", MAX_BODY_BYTES: String(2 * SIZE) } });
  const start = async (name) => (await fetch(`${url}/v2/${name}/blobs/uploads/`, { method: "POST" })).headers.get("location");
  const mono = await timed(async () => {
    const loc = await start("bench/mono");
    let res = await fetch(url + loc, { method: "PATCH", body: blob, headers: { "content-type": "application/octet-stream" } });
    res = await fetch(`${url}${res.headers.get("location")}&digest=${digest}`, { method: "PUT" });
    if (res.status !== 201) throw new Error(`mono push: ${res.status} ${await res.text()}`);
  });
  const chunked = await timed(async () => {
    let loc = await start("bench/chunked");
    for (let at = 0; at < SIZE; at += CHUNK) {
      const end = Math.min(at + CHUNK, SIZE);
      const res = await fetch(url + loc, { method: "PATCH", body: blob.subarray(at, end), headers: { "content-range": `${at}-${end - 1}` } });
      if (res.status !== 202) throw new Error(`chunk: ${res.status}`);
      loc = res.headers.get("location");
    }
    const res = await fetch(`${url}${loc}&digest=${digest}`, { method: "PUT" });
    if (res.status !== 201) throw new Error(`commit: ${res.status}`);
  });
  const pull = await timed(async () => {
    if ((await drain(await fetch(`${url}/v2/bench/mono/blobs/${digest}`))) !== SIZE) throw new Error("short pull");
  });
  const peak = Math.max(...Object.entries(workerdPeaks()).filter(([p]) => !before.has(p)).map(([, v]) => v));
  await mf.dispose();
  rmSync(dir, { recursive: true, force: true });
  return { mono, chunked, pull, peak };
}

const b = await baseline();
const r = await registry();
const row = (name, s, base) => console.log(`${name.padEnd(34)} ${mbps(s).padStart(8)} MB/s   ${(base / s).toFixed(2)}× baseline`);
console.log(`blob: ${SIZE / 1e6} MB, chunks: ${CHUNK / 1e6} MB`);
console.log(`baseline JS push (DigestStream + R2)  ${mbps(b.push).padStart(8)} MB/s`);
console.log(`baseline JS pull (R2 stream)          ${mbps(b.pull).padStart(8)} MB/s`);
row("registry push, monolithic PATCH", r.mono, b.push);
row("registry push, 10 MB chunks", r.chunked, b.push);
row("registry pull", r.pull, b.pull);
console.log(`workerd peak RSS: registry ${r.peak.toFixed(0)} MB, baseline ${b.peak.toFixed(0)} MB`);
