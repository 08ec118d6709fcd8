// The web UI's figures, in headless Chromium on the emulator: for the first view of each main
// page (empty browser cache), the requests it makes, the bytes it transfers (as served, and
// gzipped as the edge would send them), the first contentful paint, and when the registry's
// data is on the page. Run by `npm run bench` (after its blob figures), or alone:
// `node miniflare/bench-ui.mjs` after `npm run build`.
import { gzipSync } from "node:zlib";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createHash } from "node:crypto";
import { startRegistry, withoutRequestLogs } from "./registry.mjs";

const sha256 = (b) => "sha256:" + createHash("sha256").update(b).digest("hex");

async function push(url, name, ref, layers, platform = "amd64") {
  const blob = async (bytes) => {
    const digest = sha256(bytes);
    const res = await fetch(`${url}/v2/${name}/blobs/uploads/?digest=${digest}`, { method: "POST", body: bytes });
    if (res.status !== 201) throw new Error(`push blob: ${res.status}`);
    return { digest, size: bytes.length };
  };
  const config = await blob(Buffer.from(JSON.stringify({
    created: new Date().toISOString(), architecture: platform, os: "linux",
    config: { Entrypoint: ["/bin/app"], Env: ["PATH=/usr/bin"], Labels: { version: ref } },
    history: layers.map((_, i) => ({ created_by: `RUN step ${i}` })),
  })));
  const ls = [];
  for (const [i, size] of layers.entries()) ls.push(await blob(Buffer.alloc(size, `${name}${ref}${i}`)));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: ls.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...l })),
  }));
  const res = await fetch(`${url}/v2/${name}/manifests/${ref}`, { method: "PUT", body: manifest, headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } });
  if (res.status !== 201) throw new Error(`push manifest: ${res.status}`);
  return { digest: sha256(manifest), size: manifest.length };
}

async function firstView(browser, url, hash, selector) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  const responses = [];
  page.on("response", (r) => responses.push(r));
  const t0 = Date.now();
  await page.goto(`${url}/${hash}`, { waitUntil: "domcontentloaded" });
  await page.waitForSelector(selector, { timeout: 20000 });
  const shown = await page.evaluate(() => performance.now());
  const fcp = await page.evaluate(() => performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? null);
  await page.waitForNetworkIdle({ idleTime: 200 });
  let raw = 0, gzip = 0;
  for (const r of responses) {
    const body = await r.buffer().catch(() => Buffer.alloc(0));
    raw += body.length;
    gzip += body.length > 0 ? gzipSync(body).length : 0;
  }
  await context.close();
  return { requests: responses.length, raw, gzip, fcp, shown, wall: Date.now() - t0 };
}

export async function uiFigures() {
  let launch;
  try {
    ({ launch } = await import("../tests/browser.mjs"));
  } catch (e) {
    console.log(`web UI: not measured (${e.message})`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "bench-ui-"));
  const { mf, url } = await startRegistry({ onLog: withoutRequestLogs, port: 0, dataDir: dir, bindings: { UPLOAD_SECRET: "bench" } });
  const browser = await launch();
  try {
    for (let i = 0; i < 12; i++) await push(url, `team/service-${i}`, "v1", [1000]);
    const amd = await push(url, "team/app", "amd", [2_000_000, 500_000]);
    const arm = await push(url, "team/app", "arm", [1_900_000, 400_000], "arm64");
    for (let i = 0; i < 20; i++) await push(url, "team/app", `build-${i}`, [1000 + i]);
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        { mediaType: "application/vnd.oci.image.manifest.v1+json", ...amd, platform: { os: "linux", architecture: "amd64" } },
        { mediaType: "application/vnd.oci.image.manifest.v1+json", ...arm, platform: { os: "linux", architecture: "arm64" } },
      ],
    }));
    await fetch(`${url}/v2/team/app/manifests/latest`, { method: "PUT", body: index, headers: { "content-type": "application/vnd.oci.image.index.v1+json" } });
    const pages = [
      ["repositories (13)", "#/", "ul.repos li a"],
      ["repository (22 tags, page of 20)", "#/r/team/app", "tr[data-tag]"],
      ["index (2 platforms)", "#/r/team/app/-/latest", "td.platform a"],
      ["image (config, layers)", "#/r/team/app/-/amd", "#config"],
    ];
    console.log("web UI, first view with an empty cache (headless Chromium on the emulator):");
    console.log(`  ${"page".padEnd(34)} ${"requests".padStart(8)} ${"KB served".padStart(10)} ${"KB gzip".padStart(8)} ${"first paint".padStart(12)} ${"data shown".padStart(11)}`);
    for (const [name, hash, selector] of pages) {
      // The first load warms the isolate; the second is the figure.
      await firstView(browser, url, hash, selector);
      const f = await firstView(browser, url, hash, selector);
      console.log(`  ${name.padEnd(34)} ${String(f.requests).padStart(8)} ${(f.raw / 1000).toFixed(1).padStart(10)} ${(f.gzip / 1000).toFixed(1).padStart(8)} ${(f.fcp ?? NaN).toFixed(0).padStart(9)} ms ${f.shown.toFixed(0).padStart(8)} ms`);
    }
  } finally {
    await browser.close();
    await mf.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await uiFigures();
