// Shared test helpers: a registry on the emulator on a free port with a fresh data dir.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import assert from "node:assert/strict";
import { startRegistry } from "../miniflare/registry.mjs";

// The worker's request log lines (one JSON object per request) are kept in `requestLogs`,
// not printed; other log lines are printed as usual and kept in `workerLogs`.
export const isRequestLog = (message) => message.startsWith('{"method":');
export function logSink(requestLogs, workerLogs = []) {
  return (level, message) => {
    if (isRequestLog(message)) {
      requestLogs.push(JSON.parse(message));
    } else {
      workerLogs.push(message);
      (level === "error" ? console.error : console.log)(message);
    }
  };
}

// `options.stats: false` starts it without the storage totals' Durable Object.
export async function registry(extra = {}, { stats = true } = {}) {
  // Both secrets, as access control requires (a test of their absence sets one to "").
  const bindings = { UPLOAD_SECRET: "test-secret", TOKEN_SECRET: "test-token-secret", ...extra };
  const dataDir = mkdtempSync(join(tmpdir(), "registry-test-"));
  const requestLogs = [];
  const workerLogs = [];
  const onLog = logSink(requestLogs, workerLogs);
  // Through the plain-HTTP front, as `npm start` serves it (real clients probe TLS first).
  const r = await startRegistry({ port: 0, dataDir, bindings, onLog, stats, front: true });
  const url = (p) => (p.startsWith("http") ? p : r.url + p);
  return {
    url: r.url,
    dataDir,
    requestLogs,
    workerLogs,
    fetch: (p, init = {}) => fetch(url(p), { redirect: "manual", ...init }),
    // The bucket, as the emulator stores it (to inspect, or to age objects in tests).
    bucket: () => r.mf.getR2Bucket("BLOBS"),
    // Every key in the bucket under `prefix`, in order.
    async keys(prefix = "") {
      const bucket = await r.mf.getR2Bucket("BLOBS");
      const out = [];
      let cursor;
      do {
        const page = await bucket.list({ prefix, cursor });
        out.push(...page.objects.map((o) => o.key));
        cursor = page.truncated ? page.cursor : undefined;
      } while (cursor);
      return out;
    },
    // Makes every blob look as if it was last stored or claimed long ago (its descriptor's
    // `touched` rewritten to 0): how the tests pass the collector's grace period.
    async ageBlobs() {
      const bucket = await r.mf.getR2Bucket("BLOBS");
      for (const key of await this.keys("blobs/")) {
        if (!key.endsWith("/descriptor")) continue;
        const d = JSON.parse(await (await bucket.get(key)).text());
        d.touched = 0;
        await bucket.put(key, JSON.stringify(d));
      }
    },
    // Fires the cron trigger once.
    async scheduled() {
      const worker = await r.mf.getWorker();
      return worker.scheduled({ cron: "*/15 * * * *", scheduledTime: new Date() });
    },
    async stop() {
      await r.stop();
    },
    // Starts it again on the same data; `stats` says whether the totals' store is bound now.
    async start(options = {}) {
      if (options.stats !== undefined) stats = options.stats;
      const again = await startRegistry({ port: 0, dataDir, bindings, onLog, stats, front: true });
      r.mf = again.mf;
      r.url = again.url;
      r.stop = again.stop;
      this.url = again.url;
    },
    async restart() {
      await this.stop();
      await this.start();
    },
    async close() {
      await r.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// A registry started with `settings` that must refuse to serve (configuration that does not
// parse, or is incomplete: closed, not open): every request is 500 UNKNOWN. `more(reg)` may
// check further requests before it is closed.
export async function assertFailsClosed(settings, more = async () => {}) {
  const bad = await registry(settings);
  try {
    const res = await bad.fetch("/v2/");
    assert.equal(res.status, 500);
    assert.equal((await res.json()).errors[0].code, "UNKNOWN");
    await more(bad);
  } finally {
    await bad.close();
  }
}

export const sha256 = (buf) => "sha256:" + createHash("sha256").update(buf).digest("hex");
export const sha512 = (buf) => "sha512:" + createHash("sha512").update(buf).digest("hex");

// The storage operations a response reports (Registry-Storage-Ops), by name, as numbers.
export function storageOps(res) {
  const header = res.headers.get("registry-storage-ops");
  if (!header) throw new Error("every response reports its storage operations");
  return Object.fromEntries(header.split(",").map((kv) => kv.trim().split("=")).map(([k, v]) => [k, Number(v)]));
}

export async function errorCode(res) {
  const body = await res.json();
  return body.errors[0].code;
}

export async function startUpload(reg, name) {
  const res = await reg.fetch(`/v2/${name}/blobs/uploads/`, { method: "POST" });
  if (res.status !== 202) throw new Error(`POST upload: ${res.status}`);
  return res.headers.get("location");
}

// Pushes a blob monolithically with POST ?digest=.
export async function pushBlob(reg, name, bytes) {
  const digest = sha256(bytes);
  const res = await reg.fetch(`/v2/${name}/blobs/uploads/?digest=${digest}`, {
    method: "POST",
    body: bytes,
    headers: { "content-type": "application/octet-stream" },
  });
  if (res.status !== 201) throw new Error(`push blob: ${res.status} ${await res.text()}`);
  return { digest, size: bytes.length };
}

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";

export function imageManifest(config, layers, extra = {}) {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
      layers: layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar", ...l })),
      ...extra,
    }),
  );
}

export async function putManifest(reg, name, ref, bytes, type = OCI_MANIFEST) {
  return reg.fetch(`/v2/${name}/manifests/${ref}`, { method: "PUT", body: bytes, headers: { "content-type": type } });
}

// Users for access-control tests, as `htpasswd -B` (bcrypt, cost 5) writes them:
// alice/alice-pw, bob/bob-pw, admin/admin-pw.
export const HTPASSWD = [
  "alice:$2b$05$fflHjkMT2rFQa0PZCpjOauBgnlo1MzlqZcySdYQoDjPJSNg4WJcfO",
  "bob:$2b$05$Xcjef/yN/P6hyz5p6dWGy.YLcBR3QhddGgUemzt8BWyQj3JKPlmpK",
  "admin:$2b$05$UUPev.39dtDY4RQ3.qz5Ter4Nbe21./Ul9sTctTGmTokul5OWhfLa",
].join("\n");

// The `Authorization` value of one of those users, with the password `<user>-pw`.
export const basicAuth = (user) => "Basic " + Buffer.from(`${user}:${user}-pw`).toString("base64");

// A request body of unknown length (chunked transfer encoding), handed over in pieces.
export const streamOf = (buf, piece = 65536) =>
  new ReadableStream({
    start(c) {
      for (let at = 0; at < buf.length; at += piece) c.enqueue(buf.subarray(at, at + piece));
      c.close();
    },
  });
