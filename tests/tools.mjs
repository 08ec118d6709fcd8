// Real-client tooling shared by the client tests: which tools exist (CI must have them all),
// running them, and building a small OCI image with umoci.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";

const have = (bin) => {
  try {
    execFileSync("sh", ["-c", `command -v ${bin}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};
const missing = ["skopeo", "podman", "umoci", "curl"].filter((b) => !have(b));
if (missing.length && process.env.CI) throw new Error(`CI lacks ${missing.join(", ")}`);

/// The `skip` option of client tests: a reason when tools are missing (outside CI), else false.
export const skipClients = missing.length ? `missing ${missing.join(", ")} (apt-get install skopeo podman umoci curl)` : false;

export const sh = (cmd, args, opts = {}) => execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], ...opts });

// Adds image `tag` to the OCI layout at `layout` (created if needed): two layers, a small file
// and 300 KB of random bytes, built from a scratch directory under `work`.
export function buildImage(work, layout, tag, seed) {
  const dir = join(work, `rootfs-${tag}-${seed}`);
  mkdirSync(join(dir, "etc"), { recursive: true });
  mkdirSync(join(dir, "usr"), { recursive: true });
  writeFileSync(join(dir, "etc", "seed"), seed);
  writeFileSync(join(dir, "usr", "blob"), randomBytes(300_000));
  try {
    sh("umoci", ["init", "--layout", layout]);
  } catch {}
  sh("umoci", ["new", "--image", `${layout}:${tag}`]);
  sh("umoci", ["insert", "--image", `${layout}:${tag}`, join(dir, "etc"), "/etc"]);
  sh("umoci", ["insert", "--image", `${layout}:${tag}`, join(dir, "usr"), "/usr"]);
}
