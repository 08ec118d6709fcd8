// Sets up what a fresh machine lacks (idempotent, fast when done), then builds the worker into
// build/ with worker-build, and the web UI (ui/) into build/ui (the `[assets]` directory) with
// content-hashed script and style names. Used by `npm start`, `npm test` and `npm run bench`.
//
// Pinned tools: wasm-bindgen CLI at exactly the Cargo.lock version of wasm-bindgen, worker-build
// at the worker crate's version; esbuild comes from node_modules (with wrangler). worker-build
// would download wasm-bindgen and wasm-opt from the network; we point it at our own.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cargoBin = join(process.env.CARGO_HOME || join(homedir(), ".cargo"), "bin");
const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: "inherit", cwd: root, ...opts });
const quiet = (cmd, args) => {
  try {
    return execFileSync(cmd, args, { cwd: root, stdio: ["ignore", "pipe", "ignore"] }).toString();
  } catch {
    return "";
  }
};

function lockedVersion(crate) {
  const lock = readFileSync(join(root, "Cargo.lock"), "utf8");
  const m = lock.match(new RegExp(`name = "${crate}"\\nversion = "([^"]+)"`));
  if (!m) throw new Error(`${crate} not in Cargo.lock`);
  return m[1];
}

function ensureTarget() {
  if (!quiet("rustup", ["target", "list", "--installed"]).includes("wasm32-unknown-unknown")) {
    run("rustup", ["target", "add", "wasm32-unknown-unknown"]);
  }
}

function ensureCli(crate, bin, version) {
  const path = join(cargoBin, bin);
  if (existsSync(path) && quiet(path, ["--version"]).includes(version)) return path;
  console.log(`installing ${crate} ${version} (once per machine)`);
  run("cargo", ["install", crate, "--version", version, "--force"]);
  return path;
}

function ensureNodeModules() {
  const lock = join(root, "node_modules", ".package-lock.json");
  if (!existsSync(lock) || !existsSync(join(root, "node_modules", "miniflare"))) {
    run("npm", ["ci", "--no-audit", "--no-fund"]);
  }
}

ensureNodeModules();
ensureTarget();
const wasmBindgen = ensureCli("wasm-bindgen-cli", "wasm-bindgen", lockedVersion("wasm-bindgen"));
const workerBuild = ensureCli("worker-build", "worker-build", lockedVersion("worker"));
run(workerBuild, ["--release", "--no-opt"], {
  env: { ...process.env, WASM_BINDGEN_BIN: wasmBindgen, ESBUILD_BIN: join(root, "node_modules", ".bin", "esbuild") },
});

// The web UI: index.html as written, its script and style renamed by content (served as
// immutable under /assets/), so a deploy never mixes old and new files in a browser.
function buildUi() {
  const src = join(root, "ui");
  const out = join(root, "build", "ui");
  rmSync(out, { recursive: true, force: true });
  mkdirSync(join(out, "assets"), { recursive: true });
  let html = readFileSync(join(src, "index.html"), "utf8");
  for (const file of ["app.js", "style.css"]) {
    const body = readFileSync(join(src, file));
    const hash = createHash("sha256").update(body).digest("hex").slice(0, 12);
    const hashed = file.replace(/\.(\w+)$/, `.${hash}.$1`);
    writeFileSync(join(out, "assets", hashed), body);
    if (!html.includes(`"${file}"`)) throw new Error(`ui/index.html does not load ${file}`);
    html = html.replace(`"${file}"`, `"/assets/${hashed}"`);
  }
  writeFileSync(join(out, "index.html"), html);
}

buildUi();
