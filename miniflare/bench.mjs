// `npm run bench`: on the emulator, next to a plain JavaScript worker measured in the same run
// (miniflare/baseline.js):
// - push throughput of a 200 MB blob (monolithic PATCH, 10 MB chunks; POST then PUT with the
//   whole body, against a worker handing the request to R2.put with the checksum) and
//   workerd's peak RSS;
// - the cost of committing a chunked upload as sha512 without `?digest-algorithm=` (one
//   streamed read-back of the stored bytes): time and workerd CPU;
// - cold pull (the blob not in the edge cache: the bucket's stream served, the cache filled after
//   it from a second read), the same with the blob cache off (where the cold pull's time goes),
//   and warm pull (edge cache)
//   of that blob, received by curl into /dev/null (Node's fetch caps at a few MB/s here);
// - storage operations per `skopeo copy` of a 3-layer image: push, cold pull, warm pull,
//   summed from every response's Registry-Storage-Ops header through a counting proxy; and the
//   same copy through a mirror of that registry, cold and warm, with the upstream requests;
// - the mirror: a cold pull of the blob through a mirror (upstream → client and R2 in one
//   pass) against a direct pull from the same upstream, and the warm pull that follows;
// - pushes in 1 MiB chunks and in random chunks up to 37 MB, and workerd's peak RSS during a
//   1 GiB push in 10 MB chunks, each against the baseline (miniflare/bench-chunks.mjs);
// - with SLOW=1, a 6 GiB blob pushed in chunks and pulled back (miniflare/bench-huge.mjs);
// - the web UI's first views in headless Chromium (miniflare/bench-ui.mjs);
// - what a retention run costs per 1,000 manifests, and the push latency with and without
//   events, and with and without the storage totals (miniflare/bench-policy.mjs).
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { execFile, execFileSync } from "node:child_process";
import http from "node:http";
import { fetchResent, startRegistry, startBaseline, withoutRequestLogs } from "./registry.mjs";
import { workerdPeaks, workerdCpuMs, peakSince } from "./procstat.mjs";
import { uiFigures } from "./bench-ui.mjs";
import { policyFigures, eventsLatency, statsLatency } from "./bench-policy.mjs";
import { hugeFigures } from "./bench-huge.mjs";
import { chunkFigures } from "./bench-chunks.mjs";

const SIZE = Number(process.env.BENCH_MB || 200) * 1000 * 1000;
const CHUNK = 10 * 1000 * 1000;
const blob = randomBytes(SIZE);
const digest = "sha256:" + createHash("sha256").update(blob).digest("hex");

async function timed(fn) {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

// GETs `url` with curl into /dev/null; seconds taken, after checking the size received.
async function curlPull(url) {
  const out = await new Promise((ok, no) =>
    execFile("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}", url], (e, stdout) => (e ? no(e) : ok(stdout))),
  );
  const [status, size, seconds] = out.trim().split(" ");
  if (Number(size) !== SIZE) throw new Error(`pull ${url}: HTTP ${status}, ${size} bytes`);
  return Number(seconds);
}

const mbps = (s) => (SIZE / 1e6 / s).toFixed(1);

// The plain JS worker over the bucket persisted in `dir`: pushes a fresh copy of the blob
// (single put), then pulls `keys` (the registry's own objects) and its copy.
async function baseline(dir, keys) {
  const before = new Set(Object.keys(workerdPeaks()));
  const { mf, url } = await startBaseline(join(dir, "r2"));
  const push = await timed(async () => {
    const res = await fetchResent(url + "baseline/blob", { method: "PUT", body: blob });
    if ((await res.text()) !== digest.slice(7)) throw new Error("baseline digest mismatch");
  });
  // What a worker that hands the request to R2.put with the checksum option reaches.
  const checked = await timed(async () => {
    const res = await fetchResent(`${url}baseline/checked?sha256=${digest.slice(7)}`, { method: "PUT", body: blob });
    if (res.status !== 201) throw new Error(`baseline checked put: ${res.status}`);
  });
  const pulls = {};
  for (const [name, key] of Object.entries(keys)) {
    pulls[name] = Math.min(await curlPull(url + key), await curlPull(url + key));
  }
  const peak = peakSince(before);
  await mf.dispose();
  return { push, checked, pulls, peak };
}

const start = async (url, name) => (await fetch(`${url}/v2/${name}/blobs/uploads/`, { method: "POST" })).headers.get("location");

// Pushes the blob three ways; returns the timings and the bucket keys of the stored bytes.
async function registryPush(dir) {
  const before = new Set(Object.keys(workerdPeaks()));
  const { mf, url } = await startRegistry({ onLog: withoutRequestLogs, dataDir: dir, bindings: { UPLOAD_SECRET: "bench", MAX_BODY_BYTES: String(2 * SIZE) } });
  const mono = await timed(async () => {
    const loc = await start(url, "bench/mono");
    let res = await fetchResent(url + loc, { method: "PATCH", body: blob, headers: { "content-type": "application/octet-stream" } });
    res = await fetch(`${url}${res.headers.get("location")}&digest=${digest}`, { method: "PUT" });
    if (res.status !== 201) throw new Error(`mono push: ${res.status} ${await res.text()}`);
  });
  const chunked = await timed(async () => {
    let loc = await start(url, "bench/chunked");
    for (let at = 0; at < SIZE; at += CHUNK) {
      const end = Math.min(at + CHUNK, SIZE);
      const res = await fetchResent(url + loc, { method: "PATCH", body: blob.subarray(at, end), headers: { "content-range": `${at}-${end - 1}` } });
      if (res.status !== 202) throw new Error(`chunk: ${res.status}`);
      loc = res.headers.get("location");
    }
    const res = await fetch(`${url}${loc}&digest=${digest}`, { method: "PUT" });
    if (res.status !== 201) throw new Error(`commit: ${res.status}`);
  });
  // Other bytes, as skopeo and podman push small blobs: POST, then PUT with the whole body.
  const third = Buffer.concat([blob.subarray(3), blob.subarray(0, 3)]);
  const thirdDigest = "sha256:" + createHash("sha256").update(third).digest("hex");
  let wholeClassA = 0;
  const classA = (res) => Number((res.headers.get("registry-storage-ops") || "").match(/r2-a=(\d+)/)?.[1] ?? NaN);
  const whole = await timed(async () => {
    const post = await fetch(`${url}/v2/bench/whole/blobs/uploads/`, { method: "POST" });
    const res = await fetchResent(`${url}${post.headers.get("location")}&digest=${thirdDigest}`, { method: "PUT", body: third });
    if (res.status !== 201) throw new Error(`whole push: ${res.status} ${await res.text()}`);
    wholeClassA = classA(post) + classA(res);
  });
  // Other bytes, chunked, committed as sha512 without ?digest-algorithm=: the upload hashed
  // sha256 on the way, so the commit reads the stored bytes back once to verify.
  const rotated = Buffer.concat([blob.subarray(2), blob.subarray(0, 2)]);
  const sha512 = "sha512:" + createHash("sha512").update(rotated).digest("hex");
  let loc512 = await start(url, "bench/sha512");
  for (let at = 0; at < SIZE; at += CHUNK) {
    const end = Math.min(at + CHUNK, SIZE);
    const res = await fetchResent(url + loc512, { method: "PATCH", body: rotated.subarray(at, end), headers: { "content-range": `${at}-${end - 1}` } });
    loc512 = res.headers.get("location");
  }
  const cpu0 = workerdCpuMs();
  const readBack = await timed(async () => {
    const res = await fetch(`${url}${loc512}&digest=${sha512}`, { method: "PUT" });
    if (res.status !== 201) throw new Error(`sha512 commit: ${res.status} ${await res.text()}`);
  });
  const readBackCpu = workerdCpuMs() - cpu0;
  // The same bytes once more, as one object: POST ?digest= (content-addressed key).
  const other = Buffer.concat([blob.subarray(1), blob.subarray(0, 1)]);
  const otherDigest = "sha256:" + createHash("sha256").update(other).digest("hex");
  const res = await fetchResent(`${url}/v2/bench/single/blobs/uploads/?digest=${otherDigest}`, { method: "POST", body: other });
  if (res.status !== 201) throw new Error(`single push: ${res.status}`);
  const bucket = await mf.getR2Bucket("BLOBS");
  // The chunked pushes' object (multipart), as the blob's descriptor names it; the whole PUT's
  // bytes are a single-put object under objects/ too.
  const descriptor = await bucket.get(`blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}/descriptor`);
  const keys = { multipart: JSON.parse(await descriptor.text()).object, single: `blobs/sha256/${otherDigest.slice(7, 9)}/${otherDigest.slice(7)}/data` };
  const peak = peakSince(before);
  await mf.dispose();
  return { mono, chunked, whole, wholeClassA, readBack, readBackCpu, keys, otherDigest, peak };
}

// Cold pulls (the blob not in the edge cache: the bucket's stream served, the cache filled
// after it from a second read), then warm pulls (from the cache). Like the baseline's pulls,
// each figure is the better of two, taken from a worker that has served a request before (a
// cold pull is about the cache, not the isolate's first start): the first of each pair in a
// fresh emulator whose edge cache is emptied.
// With `cacheOff`, the blob cache is off (BLOB_CACHE_MAX_BYTES=0): every pull is the bucket's
// stream through the worker, nothing watched or filled (where a cold pull's time goes).
async function registryPull(dir, path, { cacheOff = false } = {}) {
  const colds = [];
  let warm;
  const bindings = { UPLOAD_SECRET: "bench", ...(cacheOff ? { BLOB_CACHE_MAX_BYTES: "0" } : {}) };
  for (let round = 0; round < 2; round++) {
    rmSync(join(dir, "cache"), { recursive: true, force: true });
    const { mf, url } = await startRegistry({ onLog: withoutRequestLogs, dataDir: dir, bindings });
    await (await fetch(`${url}/v2/`)).arrayBuffer();
    const blobUrl = url + path;
    colds.push(await curlPull(blobUrl));
    // The cache write finishes after the cold response; wait until a GET is served from the
    // cache (a probe the busy emulator hangs up on just counts as not yet).
    const fromCache = async () => {
      try {
        const res = await fetch(blobUrl, { headers: { range: "bytes=0-0" } });
        await res.arrayBuffer();
        return /r2-b=0\b/.test(res.headers.get("registry-storage-ops"));
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 100 && !cacheOff && !(await fromCache()); i++) await new Promise((r) => setTimeout(r, 100));
    warm = Math.min(warm ?? Infinity, await curlPull(blobUrl));
    await mf.dispose();
  }
  return { cold: Math.min(...colds), warm };
}

// A proxy in front of `target` that sums the Registry-Storage-Ops of every response.
async function countingProxy(target) {
  const totals = {};
  let requests = 0;
  const server = http.createServer((req, res) => {
    const up = http.request(target + req.url, { method: req.method, headers: req.headers }, (r) => {
      requests++;
      for (const kv of (r.headers["registry-storage-ops"] || "").split(",").filter(Boolean)) {
        const [k, v] = kv.trim().split("=");
        totals[k] = (totals[k] || 0) + Number(v);
      }
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on("error", (e) => res.destroy(e));
    req.pipe(up);
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    host: `127.0.0.1:${server.address().port}`,
    take() {
      const out = { requests, ...totals };
      requests = 0;
      for (const k of Object.keys(totals)) delete totals[k];
      return out;
    },
    close: () => new Promise((ok) => server.close(ok)),
  };
}

async function skopeoOps() {
  for (const bin of ["skopeo", "umoci"]) {
    try {
      execFileSync("sh", ["-c", `command -v ${bin}`]);
    } catch {
      return null;
    }
  }
  const dir = mkdtempSync(join(tmpdir(), "bench-ops-"));
  const layout = join(dir, "img");
  execFileSync("umoci", ["init", "--layout", layout]);
  execFileSync("umoci", ["new", "--image", `${layout}:v1`]);
  for (let i = 0; i < 3; i++) {
    const d = join(dir, `layer${i}`);
    mkdirSync(d);
    writeFileSync(join(d, "data"), randomBytes(2_000_000));
    execFileSync("umoci", ["insert", "--image", `${layout}:v1`, d, `/layer${i}`]);
  }
  const { mf, url } = await startRegistry({ onLog: withoutRequestLogs, dataDir: join(dir, "data"), bindings: { UPLOAD_SECRET: "bench" } });
  const proxy = await countingProxy(url);
  // Asynchronously: the counting proxy runs on this process's event loop.
  const copy = (from, to) =>
    new Promise((ok, no) => execFile("skopeo", ["copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", from, to], (e) => (e ? no(e) : ok())));
  const ref = `docker://${proxy.host}/bench/three:v1`;
  await copy(`oci:${layout}:v1`, ref);
  const push = proxy.take();
  await copy(ref, `oci:${join(dir, "cold")}:v1`);
  const cold = proxy.take();
  await new Promise((r) => setTimeout(r, 1000)); // let the cold pull's cache writes finish
  await copy(ref, `oci:${join(dir, "warm")}:v1`);
  const warm = proxy.take();
  // The same image through a mirror of this registry: cold (filled from it), then warm.
  const mirror = await startRegistry({ onLog: withoutRequestLogs, dataDir: join(dir, "mirror"), bindings: { UPLOAD_SECRET: "bench", UPSTREAMS: JSON.stringify([{ prefix: "up/", url }]) } });
  const mirrorProxy = await countingProxy(mirror.url);
  const viaMirror = `docker://${mirrorProxy.host}/up/bench/three:v1`;
  await copy(viaMirror, `oci:${join(dir, "mirror-cold")}:v1`);
  const mirrorCold = mirrorProxy.take();
  await new Promise((r) => setTimeout(r, 1000)); // let the cold pull's fills be recorded
  await copy(viaMirror, `oci:${join(dir, "mirror-warm")}:v1`);
  const mirrorWarm = mirrorProxy.take();
  await mirrorProxy.close();
  await mirror.mf.dispose();
  await proxy.close();
  await mf.dispose();
  rmSync(dir, { recursive: true, force: true });
  return { push, cold, warm, "mirror cold": mirrorCold, "mirror warm": mirrorWarm };
}

// A registry holding the blob as the upstream, and a mirror of it: the direct pull (upstream
// warm), the mirror's cold pull (filling its bucket from the same stream), its warm pull.
async function mirrorPull(dir) {
  const up = await startRegistry({ onLog: withoutRequestLogs, dataDir: join(dir, "upstream"), bindings: { UPLOAD_SECRET: "bench", MAX_BODY_BYTES: String(SIZE * 2) } });
  const push = await fetchResent(`${up.url}/v2/library/big/blobs/uploads/?digest=${digest}`, { method: "POST", body: blob });
  if (push.status !== 201) throw new Error(`upstream push: ${push.status}`);
  const direct = `${up.url}/v2/library/big/blobs/${digest}`;
  await curlPull(direct);
  const directWarm = Math.min(await curlPull(direct), await curlPull(direct));
  // The bucket's own write speed from the same upstream, in plain JS: what a fill can reach here.
  const { mf: js, url: jsUrl } = await startBaseline(join(dir, "fill"));
  const fill = await timed(async () => {
    const res = await fetch(`${jsUrl}fill?from=${encodeURIComponent(direct)}&sha256=${digest.slice(7)}`, { method: "POST" });
    if (res.status !== 201) throw new Error(`baseline fill: ${res.status}`);
  });
  await js.dispose();
  const running = new Set(Object.keys(workerdPeaks()));
  const mirror = await startRegistry({ onLog: withoutRequestLogs, dataDir: join(dir, "mirror"), bindings: { UPLOAD_SECRET: "bench", UPSTREAMS: JSON.stringify([{ prefix: "hub/", url: up.url, library: true }]) } });
  const through = `${mirror.url}/v2/hub/big/blobs/${digest}`;
  const cold = await curlPull(through);
  const peak = peakSince(running);
  // The fill is recorded after the response: wait until a HEAD is answered from storage.
  let upstreamRequests = -1;
  for (let i = 0; i < 200; i++) {
    const res = await fetch(through, { method: "HEAD" });
    if (res.headers.get("registry-upstream") === "hit") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const warm = Math.min(await curlPull(through), await curlPull(through));
  const check = await fetch(through, { headers: { range: "bytes=0-0" } });
  await check.arrayBuffer();
  upstreamRequests = Number(check.headers.get("registry-storage-ops").match(/upstream=(\d+)/)[1]);
  await mirror.mf.dispose();
  await up.mf.dispose();
  return { direct: directWarm, fill, cold, warm, upstreamRequests, peak };
}

const dir = mkdtempSync(join(tmpdir(), "bench-"));
const r = await registryPush(dir);
const b = await baseline(dir, r.keys);
const multipart = await registryPull(dir, `/v2/bench/mono/blobs/${digest}`);
const single = await registryPull(dir, `/v2/bench/single/blobs/${r.otherDigest}`);
const uncached = {
  multipart: await registryPull(dir, `/v2/bench/mono/blobs/${digest}`, { cacheOff: true }),
  single: await registryPull(dir, `/v2/bench/single/blobs/${r.otherDigest}`, { cacheOff: true }),
};
const mirrored = await mirrorPull(dir);
rmSync(dir, { recursive: true, force: true });
const ops = await skopeoOps();
const chunks = await chunkFigures();
const row = (name, s, base) => console.log(`${name.padEnd(44)} ${mbps(s).padStart(8)} MB/s   ${(base / s).toFixed(2)}× baseline`);
const base = (name, s) => console.log(`${name.padEnd(44)} ${mbps(s).padStart(8)} MB/s`);
console.log(`blob: ${SIZE / 1e6} MB, chunks: ${CHUNK / 1e6} MB; pulls received by curl`);
base("baseline JS push (DigestStream + R2 put)", b.push);
row("registry push, monolithic PATCH", r.mono, b.push);
row("registry push, 10 MB chunks", r.chunked, b.push);
base("baseline JS push, R2.put with the checksum", b.checked);
row("registry push, POST then PUT with the body", r.whole, b.checked);
base("hint-less sha512 commit (read-back verify)", r.readBack);
console.log(`  its workerd CPU: ${r.readBackCpu} ms, ${((r.readBackCpu / SIZE) * 1e9 / 1000).toFixed(1)} s per GB`);
base("baseline JS pull, multipart object", b.pulls.multipart);
row("registry pull cold, multipart object", multipart.cold, b.pulls.multipart);
row("  the same, blob cache off (no fill)", uncached.multipart.cold, b.pulls.multipart);
row("registry pull warm, multipart object", multipart.warm, b.pulls.multipart);
base("baseline JS pull, single-put object", b.pulls.single);
row("registry pull cold, single-put object", single.cold, b.pulls.single);
row("  the same, blob cache off (no fill)", uncached.single.cold, b.pulls.single);
row("registry pull warm, single-put object", single.warm, b.pulls.single);
base("direct pull from the upstream (warm there)", mirrored.direct);
base("baseline JS fill: upstream → R2.put, no client", mirrored.fill);
row("mirror pull cold (upstream → client + R2)", mirrored.cold, mirrored.direct);
console.log(`${"".padEnd(44)} ${"".padStart(8)}        ${(mirrored.fill / mirrored.cold).toFixed(2)}× the JS fill`);
row("mirror pull warm", mirrored.warm, mirrored.direct);
console.log(`  upstream requests of a warm mirror pull: ${mirrored.upstreamRequests}; mirror's workerd peak RSS in the cold pull: ${mirrored.peak.toFixed(0)} MB`);
console.log(`workerd peak RSS while pushing: registry ${r.peak.toFixed(0)} MB; baseline (push + pulls) ${b.peak.toFixed(0)} MB`);
if (ops) {
  console.log("storage operations per skopeo copy of a 3-layer image (config + 3 layers + manifest):");
  for (const [name, o] of Object.entries(ops)) {
    const fields = Object.entries(o).map(([k, v]) => `${k}=${v}`).join(" ");
    console.log(`  ${name.padEnd(11)} ${fields}`);
  }
} else {
  console.log("storage operations per skopeo copy: skipped (needs skopeo and umoci)");
}
// The speed and cost targets (issue 15), each next to its figure from this run.
const verdict = (ok) => (ok ? "met" : "NOT MET");
const target = (name, figure, ok) => console.log(`  ${name.padEnd(58)} ${figure.padStart(14)}  ${ok === null ? "not measured" : verdict(ok)}`);
console.log("targets:");
const ratio = (base, s) => base / s;
target("PUT with the whole body ≥ 1.0× JS R2.put with the checksum", `${ratio(b.checked, r.whole).toFixed(2)}×`, ratio(b.checked, r.whole) >= 1.0);
target("chunked push, 10 MB chunks ≥ 1.0× JS tee → DigestStream + put", `${ratio(b.push, r.chunked).toFixed(2)}×`, ratio(b.push, r.chunked) >= 1.0);
target("chunked push, monolithic PATCH ≥ 1.0× JS tee", `${ratio(b.push, r.mono).toFixed(2)}×`, ratio(b.push, r.mono) >= 1.0);
target("cold pull, single-put object ≥ 0.9× JS pull", `${ratio(b.pulls.single, single.cold).toFixed(2)}×`, ratio(b.pulls.single, single.cold) >= 0.9);
target("cold pull, multipart object ≥ 0.9× JS pull", `${ratio(b.pulls.multipart, multipart.cold).toFixed(2)}×`, ratio(b.pulls.multipart, multipart.cold) >= 0.9);
target("monolithic push (POST, then PUT with the body): ≤ 3 class-A", `${r.wholeClassA}`, r.wholeClassA <= 3);
const classA = ops?.push?.["r2-a"];
target("skopeo copy push: ≤ 3 class-A per pushed object (5 objects)", classA === undefined ? "-" : `${(classA / 5).toFixed(1)} per object`, classA === undefined ? null : classA / 5 <= 3);
for (const [label, c] of Object.entries(chunks).filter(([k]) => k !== "memory" && k !== "profile")) {
  target(`chunked push, ${label} chunks ≥ 1.0× JS tee`, `${ratio(c.baseline, c.registry).toFixed(2)}×`, ratio(c.baseline, c.registry) >= 1.0);
}
const extra = chunks.memory.registryPeak - chunks.memory.baselinePeak;
target(`workerd peak RSS, ${chunks.memory.bytes / 2 ** 30} GiB chunked push ≤ JS baseline + 64 MB`, `${extra >= 0 ? "+" : ""}${extra.toFixed(0)} MB`, extra <= 64);
if (process.env.SLOW === "1") {
  const huge = await hugeFigures();
  target("6 GiB chunked push: workerd memory bounded (< 1 GB)", `${huge.pushPeak.toFixed(0)} MB`, huge.pushPeak < 1024);
} else {
  target("6 GiB chunked push and pull back (SLOW=1)", "-", null);
}
await uiFigures();
await policyFigures();
await eventsLatency();
await statsLatency();
