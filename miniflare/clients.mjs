// The real clients and runtimes the tests drive, in one place: which command comes from which
// Debian package. `npm test` runs this first: what is missing is installed with apt when it
// can be (root, apt-get present, not SKIP_CLIENTS=1), idempotently (nothing to do when every
// command is there), with one line saying so; otherwise the tests fail naming the command
// (tests/tools.mjs). A new client for the tests goes here, nowhere else.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

// command → Debian package.
export const CLIENTS = {
  skopeo: "skopeo",
  podman: "podman",
  umoci: "umoci",
  curl: "curl",
  // distribution 2.8, an upstream of the mirror tests
  "docker-registry": "docker-registry",
  // the real browser of the web UI tests (CHROMIUM_PATH may name another build)
  chromium: "chromium",
  // a private Docker daemon pushes as Docker does (tests/tools.mjs dockerDaemon)
  dockerd: "docker.io",
};

// Services the packages start that the tests must not meet: the tests start their own.
const SERVICES = ["docker-registry", "docker.service", "docker.socket", "containerd"];

export const have = (bin) => {
  try {
    execFileSync("sh", ["-c", `command -v ${bin}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};

const haveClient = (bin) => (bin === "chromium" && process.env.CHROMIUM_PATH ? existsSync(process.env.CHROMIUM_PATH) : have(bin));

/// The commands missing on this machine.
export const missingClients = () => Object.keys(CLIENTS).filter((b) => !haveClient(b));

/// The command that installs `bins`.
export const installCommand = (bins) => `apt-get install ${[...new Set(bins.map((b) => CLIENTS[b]))].join(" ")}`;

/// Installs what is missing, when this process may (see the file's comment). Returns what is
/// still missing.
export function ensureClients() {
  const missing = missingClients();
  if (!missing.length || process.env.SKIP_CLIENTS === "1") return missing;
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  if (!root || !have("apt-get")) return missing;
  const packages = [...new Set(missing.map((b) => CLIENTS[b]))];
  console.log(`installing the test clients' Debian packages (once per machine): ${packages.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  execFileSync("apt-get", ["update", "-qq"], { stdio: ["ignore", "ignore", "inherit"], env });
  execFileSync("apt-get", ["install", "-y", "-qq", ...packages], { stdio: ["ignore", "ignore", "inherit"], env });
  for (const service of SERVICES) {
    try {
      execFileSync("sh", ["-c", `(systemctl disable --now ${service} || service ${service.replace(/\.(service|socket)$/, "")} stop) >/dev/null 2>&1`], { stdio: "ignore" });
    } catch {}
  }
  return missingClients();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) ensureClients();
