// Real-client tooling shared by the client tests (and the browser of the web UI tests): which tools exist (CI must have them all),
// running them, and building a small OCI image with umoci.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { missingClients, installCommand } from "../miniflare/clients.mjs";

// What the tests need, and how it is installed, is said once (miniflare/clients.mjs, which
// `npm test` runs first). A missing tool fails the run with the command that installs it,
// unless the user opts out of the real-client tests explicitly with SKIP_CLIENTS=1 (CI never
// does).
const missing = missingClients();
const optedOut = process.env.SKIP_CLIENTS === "1";
if (missing.length && !optedOut) {
  throw new Error(`the client tests need ${missing.join(", ")}: ${installCommand(missing)} (npm test installs them itself when run as root with apt; or SKIP_CLIENTS=1 npm test to skip them)`);
}

/// The `skip` option of client tests: a reason when the user opted out and tools are missing.
export const skipClients = missing.length ? `SKIP_CLIENTS=1 and missing ${missing.join(", ")}` : false;

export const sh = (cmd, args, opts = {}) => execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], ...opts });

// Adds image `tag` to the OCI layout at `layout` (created if needed): two layers, a small file
// and 300 KB of random bytes, built from a scratch directory under `work`.
export function buildImage(work, layout, tag, seed) {
  const dir = join(work, `rootfs-${tag}-${seed}`);
  mkdirSync(join(dir, "etc"), { recursive: true });
  mkdirSync(join(dir, "usr"), { recursive: true });
  writeFileSync(join(dir, "etc", "seed"), seed);
  writeFileSync(join(dir, "usr", "blob"), randomBytes(300_000));
  if (!existsSync(join(layout, "index.json"))) sh("umoci", ["init", "--layout", layout]);
  sh("umoci", ["new", "--image", `${layout}:${tag}`]);
  sh("umoci", ["insert", "--image", `${layout}:${tag}`, join(dir, "etc"), "/etc"]);
  sh("umoci", ["insert", "--image", `${layout}:${tag}`, join(dir, "usr"), "/usr"]);
}

// Starts Debian's `docker-registry` (distribution 2.8) on a free port, storing under `dir`.
export async function distribution(dir) {
  const { spawn } = await import("node:child_process");
  const { createServer } = await import("node:net");
  const port = await new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
  mkdirSync(dir, { recursive: true });
  const config = join(dir, "config.yml");
  writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, "data")}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const child = spawn("docker-registry", ["serve", config], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/v2/`)).status === 200) break;
    } catch {}
    if (i === 200 || child.exitCode !== null) throw new Error(`docker-registry did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    host: `127.0.0.1:${port}`,
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill();
      await exited;
    },
  };
}

// Starts a private Docker daemon (Debian's docker.io) under `dir`: its own data and exec roots,
// socket and pid file, the vfs storage driver, and no networking of its own (no iptables, no
// bridge), so it changes nothing outside `dir`. Loopback registries are insecure-allowed by
// default, so it pushes to the emulator over plain HTTP. `docker(args)` runs the CLI against it.
export async function dockerDaemon(dir) {
  const { spawn } = await import("node:child_process");
  const root = join(dir, "root");
  const exec = join(dir, "exec");
  mkdirSync(root, { recursive: true });
  mkdirSync(exec, { recursive: true });
  const config = join(dir, "daemon.json");
  writeFileSync(config, JSON.stringify({ "storage-driver": "vfs", iptables: false, "ip-forward": false, bridge: "none" }));
  const host = `unix://${join(dir, "docker.sock")}`;
  const args = ["--data-root", root, "--exec-root", exec, "-H", host, "--pidfile", join(dir, "dockerd.pid"), "--config-file", config];
  const child = spawn("dockerd", args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr = (stderr + d).slice(-4000)));
  const docker = (more, opts) => sh("docker", ["-H", host, ...more], opts);
  for (let i = 0; ; i++) {
    try {
      docker(["version", "--format", "{{.Server.Version}}"]);
      break;
    } catch {}
    if (i === 300 || child.exitCode !== null) throw new Error(`dockerd did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    docker,
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}
