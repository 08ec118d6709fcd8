// `npm start`: serves the registry on the emulator at http://127.0.0.1:5000 (PORT overrides),
// with R2 and KV data persisted under ./data (DATA_DIR overrides). Settings come from
// wrangler.toml [vars], .dev.vars and the environment, as with `wrangler dev` (settings.mjs).
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { startRegistry } from "./registry.mjs";
import { readSettings } from "./settings.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const port = Number(process.env.PORT || 5000);
const dataDir = process.env.DATA_DIR || "data";
const bindings = readSettings(root);
const { url, stop: stopRegistry } = await startRegistry({ port, dataDir, bindings, front: true });
console.log(`registry listening on ${url} (data in ${dataDir}/)`);
// A configuration the worker refuses fails every request (closed, not open): say why now, not
// only at the first request's answer.
const probe = await fetch(`${url}/v2/`).catch(() => null);
const refused = probe?.status === 500 ? (await probe.json().catch(() => null))?.errors?.[0]?.detail : null;
if (refused?.startsWith("registry misconfigured")) console.log(`every request will fail: ${refused}`);
if (!bindings.AUTH_HTPASSWD) console.log("open mode: no authentication; do not expose this port");
else if (!bindings.UPLOAD_SECRET || !bindings.TOKEN_SECRET) {
  console.log("access control is on but UPLOAD_SECRET or TOKEN_SECRET is not set (.dev.vars or the environment): every request fails until both are");
}
const stop = async () => {
  await stopRegistry();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
