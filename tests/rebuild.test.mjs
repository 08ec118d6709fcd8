// A build while a server runs never breaks that server (`npm start` in one terminal, `npm test`
// or `npm run build` in another): the UI's files of each build go to a directory of their own
// and `build/ui` is switched to it in one rename (miniflare/build.mjs), so the running worker
// keeps the files it started with.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { lstatSync, readlinkSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { registry } from "./helpers.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

async function ui(reg) {
  const page = await reg.fetch("/");
  const html = await page.text();
  const assets = [...html.matchAll(/"(\/assets\/[^"]+)"/g)].map((m) => m[1]);
  const statuses = [];
  for (const a of assets) statuses.push((await reg.fetch(a)).status);
  return { status: page.status, type: page.headers.get("content-type"), assets: assets.length, statuses };
}

test("a build under a running server leaves its UI whole", async () => {
  const reg = await registry();
  try {
    const before = await ui(reg);
    assert.equal(before.status, 200);
    assert.equal(before.assets, 2);
    execFileSync(process.execPath, [join(root, "miniflare", "build.mjs")], { stdio: "ignore" });
    assert.ok(lstatSync(join(root, "build", "ui")).isSymbolicLink());
    assert.match(readlinkSync(join(root, "build", "ui")), /^ui-[0-9a-f]{12}$/);
    const after = await ui(reg);
    assert.deepEqual(after, before);
    assert.deepEqual(after.statuses, [200, 200]);
  } finally {
    await reg.close();
  }
});

test("when the UI's files do break under the worker, the answer is the registry's JSON error and the log says why", async () => {
  const { cpSync, rmSync, realpathSync, mkdtempSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const reg = await registry();
  const real = realpathSync(join(root, "build", "ui"));
  const copy = join(mkdtempSync(join(tmpdir(), "ui-")), "ui");
  cpSync(real, copy, { recursive: true });
  try {
    assert.equal((await reg.fetch("/")).status, 200);
    // What builds did before: the directory removed and written again under the server.
    rmSync(real, { recursive: true, force: true });
    cpSync(copy, real, { recursive: true });
    const res = await reg.fetch("/");
    assert.equal(res.status, 500);
    assert.equal((await res.json()).errors[0].code, "UNKNOWN");
    assert.ok(reg.workerLogs.some((l) => l.includes("assets /") && l.includes("assets binding answered")), reg.workerLogs.join("\n"));
  } finally {
    rmSync(real, { recursive: true, force: true });
    cpSync(copy, real, { recursive: true });
    await reg.close();
  }
});
