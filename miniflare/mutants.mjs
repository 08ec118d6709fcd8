// `npm run mutants`: a mutation check of the pure modules with cargo-mutants (installed once,
// pinned). By hand, not in CI: it rebuilds and runs the native tests once per mutant (about 500
// mutants, hours on 2 cores). Extra arguments go to cargo-mutants (e.g. `-- -f src/http.rs`
// for one file; a mutant that loops forever times out at cargo-mutants' default, a multiple of
// the unmutated run). The slowest native test (200,000 blobs through the GC) is skipped per mutant:
// it checks scale, and the GC has tests of its own logic.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const VERSION = "27.1.0";
const bin = join(process.env.CARGO_HOME || join(homedir(), ".cargo"), "bin", "cargo-mutants");
const version = (() => {
  try {
    return execFileSync(bin, ["mutants", "--version"], { encoding: "utf8" });
  } catch {
    return "";
  }
})();
if (!existsSync(bin) || !version.includes(VERSION)) {
  execFileSync("cargo", ["install", "cargo-mutants", "--version", VERSION, "--locked"], { stdio: "inherit" });
}
const PURE = [
  "src/oci/*.rs", "src/auth/*.rs", "src/routes.rs", "src/http.rs", "src/policy/*.rs", "src/events/*.rs",
  "src/storage/paths.rs", "src/storage/chunking.rs", "src/storage/upload_state.rs", "src/storage/presign.rs",
  "src/storage/summaries.rs", "src/storage/retention.rs",
];
const extra = process.argv.slice(2);
const files = extra.some((a) => a === "-f" || a.startsWith("--file")) ? [] : PURE.flatMap((f) => ["-f", f]);
execFileSync("cargo", ["mutants", ...files, ...extra, "--", "--lib", "--", "--skip", "state_between_runs"], { stdio: "inherit", cwd: root });
