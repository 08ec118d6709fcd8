// Policies and events, measured on the emulator:
// - what a retention run costs: a repository of 1,000 tagged manifests under a rule keeping the
//   newest 100 (and no untagged manifest), judged by the lifecycle endpoint: the dry run's and
//   the real runs' figures (operations as the step counts them: bucket lists, reads through the
//   fact cache, deletions), and the storage operations the responses report;
// - the push latency of a manifest with events on (queue + webhook) and off, and with the
//   storage totals (the STATS object) on and off, same run.
// Run by `npm run bench`, or alone: `node miniflare/bench-policy.mjs` after a build.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import http from "node:http";
import { startRegistry, withoutRequestLogs } from "./registry.mjs";

const MANIFESTS = Number(process.env.BENCH_MANIFESTS || 1000);
const sha256 = (b) => "sha256:" + createHash("sha256").update(b).digest("hex");

// Sums `Registry-Storage-Ops` fields (k=v, comma-separated) into `into`.
function addOps(into, header) {
  for (const part of (header || "").split(",")) {
    const [k, v] = part.trim().split("=");
    if (k) into[k] = (into[k] || 0) + Number(v);
  }
}

export async function policyFigures() {
  const dir = mkdtempSync(join(tmpdir(), "bench-policy-"));
  const rule = { repos: ["bench/*"], keep_last: 100, untagged_after_days: 0 };
  // A line per deletion and per run is the worker's log; the bench prints the counts instead.
  const onLog = (level, message) => {
    if (!/^(retention: (would delete|deleted) |lifecycle: )/.test(message)) withoutRequestLogs(level, message);
  };
  const { mf, url } = await startRegistry({ onLog, port: 0, dataDir: dir, bindings: { UPLOAD_SECRET: "bench", RETENTION: JSON.stringify([rule]), LIFECYCLE_BUDGET: "800" } });
  try {
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const digest = sha256(config);
    await fetch(`${url}/v2/bench/app/blobs/uploads/?digest=${digest}`, { method: "POST", body: config });
    const t0 = Date.now();
    for (let i = 0; i < MANIFESTS; i++) {
      const body = JSON.stringify({
        schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest, size: config.length },
        layers: [], annotations: { build: String(i) },
      });
      const res = await fetch(`${url}/v2/bench/app/manifests/build-${i}`, { method: "PUT", body, headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } });
      if (res.status !== 201) throw new Error(`push ${i}: ${res.status}`);
    }
    const pushMs = Date.now() - t0;
    const lifecycle = async (query) => {
      const res = await fetch(`${url}/admin/lifecycle${query}`, { method: "POST" });
      const ops = {};
      addOps(ops, res.headers.get("registry-storage-ops"));
      return { summary: await res.json(), ops };
    };
    const dry = await lifecycle("?dry_run=true");
    const r = dry.summary.retention;
    console.log(`retention of ${MANIFESTS} tagged manifests (${JSON.stringify(rule)}; pushed in ${(pushMs / 1000).toFixed(1)} s):`);
    console.log(`  dry run: ${r.tags_deleted} tags and ${r.manifests_deleted} manifests would go; the step's operations: ${r.operations} (${((r.operations / MANIFESTS) * 1000).toFixed(0)} per 1,000 manifests)`);
    let runs = 0, operations = 0, deleted = 0;
    const total = {};
    const t1 = Date.now();
    for (; runs < 100; ) {
      runs++;
      const { summary, ops } = await lifecycle("");
      operations += summary.retention.operations;
      deleted += summary.retention.tags_deleted + summary.retention.manifests_deleted;
      for (const [k, v] of Object.entries(ops)) total[k] = (total[k] || 0) + v;
      if (summary.retention.finished) break;
    }
    console.log(`  real runs: ${runs} (LIFECYCLE_BUDGET 800) in ${((Date.now() - t1) / 1000).toFixed(1)} s; ${deleted} deletions; the step's operations: ${operations} (${((operations / MANIFESTS) * 1000).toFixed(0)} per 1,000 manifests)`);
    console.log(`  storage operations of those runs (retention, upload purge and GC together): ${Object.entries(total).map(([k, v]) => `${k}=${v}`).join(" ")}`);
    const tags = (await (await fetch(`${url}/v2/bench/app/tags/list`)).json()).tags;
    console.log(`  tags left: ${tags.length}`);
  } finally {
    await mf.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

// Median and 90th percentile of `ms`.
function spread(ms) {
  const s = [...ms].sort((a, b) => a - b);
  return { p50: s[Math.floor(s.length / 2)], p90: s[Math.floor(s.length * 0.9)] };
}

// PUT latency of `n` manifests (a shared config blob), in ms each.
async function pushLatencies(url, n) {
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const digest = sha256(config);
  await fetch(`${url}/v2/bench/events/blobs/uploads/?digest=${digest}`, { method: "POST", body: config });
  const out = [];
  for (let i = 0; i < n; i++) {
    const body = JSON.stringify({
      schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest, size: config.length },
      layers: [], annotations: { n: String(i) },
    });
    const t = performance.now();
    const res = await fetch(`${url}/v2/bench/events/manifests/t${i}`, { method: "PUT", body, headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } });
    await res.arrayBuffer();
    out.push(performance.now() - t);
    if (res.status !== 201) throw new Error(`push ${i}: ${res.status}`);
  }
  return out;
}

// Manifest push latency (p50, p90) of `n` pushes on each of `variants` ([label, { bindings,
// stats }], each a fresh registry), printed against the mean of the first and last;
// `after(url, variant)` runs once each variant's pushes are done.
async function latencyRows(title, variants, n, after = async () => {}) {
  const rows = [];
  for (const [label, { bindings = {}, stats = true }] of variants) {
    const dir = mkdtempSync(join(tmpdir(), "bench-latency-"));
    const { mf, url } = await startRegistry({ onLog: withoutRequestLogs, port: 0, dataDir: dir, bindings: { UPLOAD_SECRET: "bench", ...bindings }, stats });
    try {
      await pushLatencies(url, 20); // warm the isolate
      rows.push([label, spread(await pushLatencies(url, n))]);
      await after(url, label);
    } finally {
      await mf.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log(`${title}, ${n} pushes each (emulator):`);
  const base = (rows[0][1].p50 + rows[rows.length - 1][1].p50) / 2;
  for (const [label, { p50, p90 }] of rows) {
    console.log(`  ${label.padEnd(30)} p50 ${p50.toFixed(2)} ms  p90 ${p90.toFixed(2)} ms  (${(p50 / base).toFixed(2)}× off)`);
  }
}

export async function eventsLatency(n = Number(process.env.BENCH_EVENT_PUSHES || 200)) {
  let delivered = 0;
  const receiver = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      delivered += JSON.parse(body).events.length;
      res.writeHead(204).end();
    });
  });
  await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
  const hook = { WEBHOOK_URL: `http://127.0.0.1:${receiver.address().port}/`, WEBHOOK_SECRET: "bench" };
  const variants = [["events off", {}], ["events on (queue + webhook)", { bindings: hook }], ["events off, again", {}]];
  await latencyRows("manifest push latency with and without events", variants, n, async (_, label) => {
    // Let the consumer deliver what is queued (batches wait up to a second).
    for (let i = 0; label.startsWith("events on") && delivered < n + 20 && i < 100; i++) await new Promise((r) => setTimeout(r, 100));
  });
  receiver.close();
  console.log(`  events delivered to the webhook: ${delivered} (of ${n + 20} pushes)`);
}

// The storage totals' cost on a push: the same pushes without and with the STATS object.
export async function statsLatency(n = Number(process.env.BENCH_EVENT_PUSHES || 200)) {
  // The warm-up pushes the first 20 manifests of the measured run (same bytes, same tags), so
  // the totals must end at n manifests and n tags.
  let counted;
  const variants = [["totals off", { stats: false }], ["totals on (STATS object)", { stats: true }], ["totals off, again", { stats: false }]];
  await latencyRows("manifest push latency with and without storage totals", variants, n, async (url, label) => {
    if (!label.startsWith("totals on")) return;
    for (let i = 0; i < 100; i++) {
      counted = (await (await fetch(`${url}/admin/stats`)).json()).repositories[0];
      if (counted?.manifests === n && counted?.tags === n) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  });
  console.log(`  counted in the totals: ${counted?.manifests} manifests, ${counted?.tags} tags (of ${n} distinct pushed)`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await policyFigures();
  await eventsLatency();
  await statsLatency();
}
