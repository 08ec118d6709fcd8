// Sets up what a fresh machine lacks (idempotent, fast when done), then builds the worker into
// build/ with worker-build, and the web UI (ui/) into build/ui (the `[assets]` directory) with
// content-hashed script and style names. Used by `npm start`, `npm test` and `npm run bench`.
//
// Pinned tools: wasm-bindgen CLI at exactly the Cargo.lock version of wasm-bindgen, worker-build
// at the worker crate's version; esbuild comes from node_modules (with wrangler). worker-build
// would download wasm-bindgen and wasm-opt from the network; we point it at our own.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
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
//
// A build never breaks a server already running (`npm start` in another terminal while `npm
// test` builds): each build's files go to a directory of their own, `build/ui-<hash of the
// content>`, written under a temporary name and renamed whole, and `build/ui` (the assets
// directory wrangler.toml names) is a symlink switched to it in one rename. Directories of the
// last few builds stay, for servers that resolved the link when they started.
function buildUi() {
  const src = join(root, "ui");
  const build = join(root, "build");
  let html = readFileSync(join(src, "index.html"), "utf8");
  const files = [];
  for (const file of ["app.js", "style.css"]) {
    const body = readFileSync(join(src, file));
    const hash = createHash("sha256").update(body).digest("hex").slice(0, 12);
    const hashed = file.replace(/\.(\w+)$/, `.${hash}.$1`);
    files.push([hashed, body]);
    if (!html.includes(`"${file}"`)) throw new Error(`ui/index.html does not load ${file}`);
    html = html.replace(`"${file}"`, `"/assets/${hashed}"`);
  }
  const name = `ui-${createHash("sha256").update(html).digest("hex").slice(0, 12)}`;
  const out = join(build, name);
  if (!existsSync(out)) {
    const tmp = `${out}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(join(tmp, "assets"), { recursive: true });
    for (const [hashed, body] of files) writeFileSync(join(tmp, "assets", hashed), body);
    writeFileSync(join(tmp, "index.html"), html);
    renameSync(tmp, out);
  }
  const link = join(build, "ui");
  // An earlier build's real directory (before the link) goes once.
  if (existsSync(link) && !lstatSync(link).isSymbolicLink()) rmSync(link, { recursive: true, force: true });
  const next = `${link}.next-${process.pid}`;
  rmSync(next, { force: true });
  symlinkSync(name, next);
  renameSync(next, link);
  // Keep the newest few builds' directories besides this one.
  const old = readdirSync(build)
    .filter((d) => /^ui-[0-9a-f]{12}$/.test(d) && d !== name)
    .map((d) => [d, statSync(join(build, d)).mtimeMs])
    .sort((a, b) => b[1] - a[1]);
  for (const [d] of old.slice(3)) rmSync(join(build, d), { recursive: true, force: true });
}
buildUi();
