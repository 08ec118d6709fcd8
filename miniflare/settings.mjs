// The registry's settings for a local run, read the way `wrangler dev` reads them: the `[vars]`
// of wrangler.toml, then `.dev.vars` (where wrangler keeps local secrets, dotenv syntax) beside
// it, and over both the environment variables of the same names
// (`AUTH_HTPASSWD="$(htpasswd -nbB alice pw)" npm start`).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseEnv } from "node:util";
import { unstable_readConfig } from "wrangler";

// Every setting the worker reads (src/app.rs: vars and secrets). Only these are taken from the
// environment, so the rest of the environment never reaches the worker.
export const SETTINGS = [
  "UPLOAD_SECRET",
  "MAX_BODY_BYTES",
  "UPLOAD_PART_SIZE",
  "UPLOAD_LEASE_SECONDS",
  "CACHE_TTL_SECONDS",
  "TAG_CACHE_SECONDS",
  "BLOB_CACHE_MAX_BYTES",
  "AUTH_HTPASSWD",
  "AUTH_RULES",
  "TOKEN_SECRET",
  "AUTH_SERVICE",
  "TOKEN_TTL_SECONDS",
  "READ_ONLY",
  "ADMIN_USERS",
  "UPLOAD_MAX_AGE_SECONDS",
  "GC_GRACE_SECONDS",
  "LIFECYCLE_BUDGET",
  "REGISTRY_ORIGIN",
  "UPSTREAMS",
  "UPSTREAM_TIMEOUT_SECONDS",
  "IMMUTABLE_TAGS",
  "UI",
  "RETENTION",
  "WEBHOOK_URL",
  "WEBHOOK_SECRET",
  "NOTIFY_PULLS",
  "OFFLOAD_MIN_BYTES",
  "OFFLOAD_TTL_SECONDS",
  "R2_S3_ENDPOINT",
  "R2_BUCKET_NAME",
  "R2_ACCESS_KEY_ID",
  "R2_SECRET_ACCESS_KEY",
];

// The secrets `UPSTREAMS` names for upstream credentials (`"credentials": "DOCKERHUB_CREDENTIALS"`):
// settings too, whatever they are called.
function credentialNames(upstreams) {
  try {
    return JSON.parse(upstreams ?? "[]").flatMap((u) => (typeof u?.credentials === "string" ? [u.credentials] : []));
  } catch {
    return []; // The worker refuses the bad UPSTREAMS itself, with a clear error.
  }
}

// The bindings for the worker from the project in `dir` and the environment `env`.
export function readSettings(dir, env = process.env) {
  const out = {};
  const toml = join(dir, "wrangler.toml");
  if (existsSync(toml)) {
    const config = unstable_readConfig({ config: toml }, { hideWarnings: true });
    for (const [k, v] of Object.entries(config.vars ?? {})) out[k] = typeof v === "string" ? v : JSON.stringify(v);
  }
  const devVars = join(dir, ".dev.vars");
  if (existsSync(devVars)) Object.assign(out, parseEnv(readFileSync(devVars, "utf8")));
  for (const name of SETTINGS) {
    if (env[name] !== undefined) out[name] = env[name];
  }
  for (const name of credentialNames(out.UPSTREAMS)) {
    if (env[name] !== undefined) out[name] = env[name];
  }
  return out;
}
