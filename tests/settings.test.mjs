// `npm start` reads its settings as `wrangler dev` does: wrangler.toml [vars], then .dev.vars,
// then environment variables of the same names.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { readSettings } from "../miniflare/settings.mjs";
import { HTPASSWD, basicAuth } from "./helpers.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
// alice/alice-pw alone.
const ALICE = HTPASSWD.split("\n")[0];

test("wrangler.toml [vars] < .dev.vars < environment; other environment variables stay out", () => {
  const dir = mkdtempSync(join(tmpdir(), "settings-"));
  try {
    writeFileSync(join(dir, "wrangler.toml"), 'name = "x"\n[vars]\nMAX_BODY_BYTES = "5"\nTAG_CACHE_SECONDS = "7"\nCACHE_TTL_SECONDS = "9"\n');
    writeFileSync(join(dir, ".dev.vars"), `TAG_CACHE_SECONDS=8\nAUTH_HTPASSWD="${ALICE}"\n# a comment\nREAD_ONLY=true\n`);
    const s = readSettings(dir, { READ_ONLY: "false", MAX_BODY_BYTES: "6", HOME: "/root", PATH: "/bin" });
    assert.deepEqual(s, { MAX_BODY_BYTES: "6", TAG_CACHE_SECONDS: "8", CACHE_TTL_SECONDS: "9", AUTH_HTPASSWD: ALICE, READ_ONLY: "false" });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("UPSTREAMS reaches the worker, with the credentials secrets it names", () => {
  const dir = mkdtempSync(join(tmpdir(), "settings-"));
  try {
    const upstreams = JSON.stringify([{ prefix: "hub/", url: "https://registry-1.docker.io", credentials: "HUB_CREDS" }]);
    writeFileSync(join(dir, ".dev.vars"), `UPSTREAMS='${upstreams}'\n`);
    const s = readSettings(dir, { HUB_CREDS: "me:token", OTHER_CREDS: "x:y", UPSTREAM_TIMEOUT_SECONDS: "4" });
    assert.deepEqual(s, { UPSTREAMS: upstreams, HUB_CREDS: "me:token", UPSTREAM_TIMEOUT_SECONDS: "4" });
    // A bad UPSTREAMS still reaches the worker (which refuses it); no credentials are guessed.
    assert.deepEqual(readSettings(dir, { UPSTREAMS: "[not json", HUB_CREDS: "me:token" }), { UPSTREAMS: "[not json" });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

// Runs `npm start` (serve.mjs) with `env` over the test's environment (a key set to undefined is
// left out) on a free port and a fresh data directory, until its output says `until`; then
// `check(out, port)`, and it is stopped.
async function serve(env, until, check) {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), "serve-"));
  const all = { ...process.env, PORT: String(port), DATA_DIR: dataDir, ...env };
  for (const [k, v] of Object.entries(all)) if (v === undefined) delete all[k];
  const child = spawn(process.execPath, [join(root, "miniflare", "serve.mjs")], { env: all, stdio: ["ignore", "pipe", "pipe"] });
  try {
    let out = "";
    await new Promise((resolve, reject) => {
      child.stdout.on("data", (d) => {
        out += d;
        if (out.includes(until)) resolve();
      });
      child.on("exit", (code) => reject(new Error(`serve.mjs exited (${code}): ${out}`)));
    });
    await check(out, port);
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

test("npm start with AUTH_HTPASSWD in the environment serves a registry with access control on", async () => {
  await serve({ AUTH_HTPASSWD: ALICE, TOKEN_SECRET: "s", UPLOAD_SECRET: "u" }, "registry listening", async (out, port) => {
    assert.ok(!out.includes("open mode"), out);
    const base = `http://127.0.0.1:${port}/v2/`;
    const anon = await fetch(base);
    assert.equal(anon.status, 401);
    assert.match(anon.headers.get("www-authenticate"), /^Bearer realm=/);
    const alice = await fetch(base, { headers: { authorization: basicAuth("alice") } });
    assert.equal(alice.status, 200);
  });
});

test("npm start with a configuration the worker refuses says why at start", async () => {
  await serve({ AUTH_HTPASSWD: ALICE, UPLOAD_SECRET: "u", TOKEN_SECRET: undefined }, "every request will fail", (out) => {
    assert.match(out, /every request will fail: registry misconfigured: .*TOKEN_SECRET is not set/);
  });
});
