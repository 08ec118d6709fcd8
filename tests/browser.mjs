// A real browser for the web UI tests: Debian's Chromium, headless, driven by puppeteer-core
// (which never downloads a browser of its own). Screenshots go to test-output/screenshots/
// (not committed) for a person to look at.
import { existsSync, mkdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import puppeteer from "puppeteer-core";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const SCREENSHOTS = join(root, "test-output", "screenshots");

const CANDIDATES = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

export function chromiumPath() {
  const found = CANDIDATES.find((p) => p && existsSync(p));
  if (!found) throw new Error("no Chromium: install Debian's chromium package (npm test does, as root) or set CHROMIUM_PATH");
  return found;
}

export async function launch() {
  return puppeteer.launch({
    executablePath: chromiumPath(),
    headless: true,
    // Root in CI containers cannot use Chromium's sandbox; /dev/shm may be small there.
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
  });
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

// The visible text of every element matching `selector`.
export async function texts(page, selector) {
  return page.$$eval(selector, (els) => els.map((e) => e.textContent.trim()));
}

// Goes to `hash` of the UI at `base` and waits until `selector` is on the page.
// (A fresh load each time: the deep link a person would open.)
export async function open(page, base, hash, selector) {
  await page.goto("about:blank");
  await page.goto(`${base}/${hash}`, { waitUntil: "domcontentloaded" });
  await page.waitForSelector(selector, { timeout: 15000 });
}
