// Starts the built worker (build/index.js) on the emulator with the same bindings as
// wrangler.toml: R2 bucket BLOBS, KV namespace META, and the edge cache, persisted under `dataDir`,
// and the web UI's files (build/ui) as the assets binding ASSETS, the worker running first.
// The storage totals' Durable Object (class RegistryStats, SQLite) is bound as STATS and persisted
// there too, as wrangler.toml's [[durable_objects.bindings]] binds it (`stats: false` leaves it out).
// With WEBHOOK_URL set, the events queue runs too: producer binding EVENTS, consumed by the same
// worker (batches of up to 10, sent within a second), as wrangler.toml's [[queues]] would bind it.
import { Miniflare } from "miniflare";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { startFront } from "./front.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

// `onLog(level, message)`, if given, receives the worker's log lines instead of the console
// (tests keep the request log lines to assert on them, and print the rest). With `front`, the
// registry is served at `port` through the plain-HTTP front (front.mjs: a TLS probe is refused
// at once, as podman and skopeo need), as `npm start` and the tests serve it; without, workerd
// listens there itself (the benches measure the worker alone). `stop()` ends both.
export async function startRegistry({ port = 0, dataDir, bindings = {}, onLog, stats = true, front = false } = {}) {
  const events = bindings.WEBHOOK_URL
    ? {
        queueProducers: { EVENTS: { queueName: "registry-events" } },
        queueConsumers: { "registry-events": { maxBatchSize: 10, maxBatchTimeout: 1, maxRetries: 10 } },
      }
    : {};
  const logs = onLog ? { handleStructuredLogs: ({ level, message }) => void onLog(level, message) } : {};
  // METRICS_DATASET names a Workers Analytics Engine dataset to bind as METRICS (wrangler.toml's
  // [[analytics_engine_datasets]]); the emulator accepts the writes and keeps nothing.
  const metrics = bindings.METRICS_DATASET ? { analyticsEngineDatasets: { METRICS: { dataset: bindings.METRICS_DATASET } } } : {};
  const durable = stats
    ? { durableObjects: { STATS: { className: "RegistryStats", useSQLite: true } }, durableObjectsPersist: join(dataDir, "do") }
    : {};
  const mf = new Miniflare({
    ...durable,
    ...events,
    ...logs,
    ...metrics,
    modules: true,
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
    scriptPath: join(root, "build", "index.js"),
    modulesRoot: root,
    compatibilityDate: "2026-04-01",
    r2Buckets: ["BLOBS"],
    kvNamespaces: ["META"],
    r2Persist: join(dataDir, "r2"),
    kvPersist: join(dataDir, "kv"),
    cachePersist: join(dataDir, "cache"),
    bindings,
    assets: {
      directory: join(root, "build", "ui"),
      binding: "ASSETS",
      routerConfig: { has_user_worker: true, invoke_user_worker_ahead_of_assets: true },
    },
    host: "127.0.0.1",
    port: front ? 0 : port,
  });
  const url = await mf.ready;
  if (!front) return { mf, url: url.toString().replace(/\/$/, ""), stop: () => mf.dispose() };
  const served = await startFront(url, port);
  // workerd first, as a crash would end it: a request in flight must not see its client go
  // away (and clean up) before the worker itself is gone.
  const stop = async () => {
    await mf.dispose();
    await served.close();
  };
  return { mf, url: `http://127.0.0.1:${served.port}`, stop };
}

// fetch, once more if the connection went away under the request's body: fetch reuses idle
// keep-alive connections, which the emulator may close just then (seen as EPIPE on 200 MB
// bodies, a few times a day, whichever worker was on the other side). The body must be a buffer.
export async function fetchResent(url, init) {
  try {
    return await fetch(url, init);
  } catch (e) {
    if (!["EPIPE", "ECONNRESET", "UND_ERR_SOCKET"].includes(e?.cause?.code)) throw e;
    return fetch(url, init);
  }
}

// An `onLog` that prints the worker's log lines except the per-request ones (benches).
export function withoutRequestLogs(level, message) {
  if (!message.startsWith('{"method":')) (level === "error" ? console.error : console.log)(message);
}

// The benches' plain JavaScript worker (baseline.js) on the emulator, its bucket BLOBS persisted
// in `r2Persist`; `url` ends with a slash.
export async function startBaseline(r2Persist) {
  const mf = new Miniflare({ modules: true, scriptPath: join(root, "miniflare", "baseline.js"), compatibilityDate: "2026-04-01", r2Buckets: ["BLOBS"], r2Persist, host: "127.0.0.1", port: 0 });
  return { mf, url: (await mf.ready).toString() };
}
