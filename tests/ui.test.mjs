// The web UI in a real browser (headless Chromium) against the emulator: what the pages show
// of pushed images, an index with a signature referrer, deleting a tag, signing in and out with
// access control on, and what an anonymous visitor may see. Screenshots: test-output/screenshots.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { registry, sha256, HTPASSWD, basicAuth, OCI_INDEX, OCI_MANIFEST } from "./helpers.mjs";
import { launch, open, screenshot, texts } from "./browser.mjs";
import { skipClients as skip } from "./tools.mjs";

// Pushes over the API (with `auth`, an Authorization value, when access control is on).
async function blob(reg, name, bytes, auth) {
  const digest = sha256(bytes);
  const headers = { "content-type": "application/octet-stream", ...(auth ? { authorization: auth } : {}) };
  const res = await reg.fetch(`/v2/${name}/blobs/uploads/?digest=${digest}`, { method: "POST", body: bytes, headers });
  assert.equal(res.status, 201, `push blob to ${name}`);
  return { digest, size: bytes.length };
}

// `ref` null: by its own digest.
async function manifest(reg, name, ref, value, auth) {
  const bytes = Buffer.from(JSON.stringify(value));
  ref ??= sha256(bytes);
  const headers = { "content-type": value.mediaType, ...(auth ? { authorization: auth } : {}) };
  const res = await reg.fetch(`/v2/${name}/manifests/${ref}`, { method: "PUT", body: bytes, headers });
  assert.equal(res.status, 201, `put manifest ${name}:${ref}: ${await res.text()}`);
  return { digest: sha256(bytes), size: bytes.length, mediaType: value.mediaType };
}

// An image of `layerSizes` (bytes) whose config says it was created at `created`.
async function image(reg, name, ref, { created, arch = "amd64", layerSizes, seed = 1, config = {}, configType = "application/vnd.oci.image.config.v1+json" }, auth) {
  const cfg = await blob(reg, name, Buffer.from(JSON.stringify({
    created, architecture: arch, os: "linux", config,
    history: [{ created, created_by: `/bin/sh -c #(nop) seed ${seed}` }],
  })), auth);
  const layers = [];
  for (const [i, size] of layerSizes.entries()) layers.push(await blob(reg, name, Buffer.alloc(size, seed * 16 + i), auth));
  return manifest(reg, name, ref, {
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: configType, ...cfg },
    layers: layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...l })),
  }, auth);
}

const SIGNATURE_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json";

let browser;
before(async () => {
  if (!skip) browser = await launch();
});
after(async () => browser?.close());

describe("an open registry", { skip }, () => {
  let reg, page;
  let amd, arm, index, signature;
  before(async () => {
    reg = await registry();
    await image(reg, "team/app", "v1", {
      created: "2026-01-02T03:04:05Z", layerSizes: [1500, 2500], seed: 1,
      config: { Entrypoint: ["/app"], Env: ["PATH=/usr/bin", "MODE=prod"], Labels: { "org.opencontainers.image.source": "https://example.com/app" } },
    });
    amd = await image(reg, "team/app", "amd64-only", { created: "2026-02-01T00:00:00Z", layerSizes: [3000], seed: 2 });
    await image(reg, "other/tool", "docker", { created: "2026-02-03T00:00:00Z", layerSizes: [100], seed: 9, configType: "application/vnd.docker.container.image.v1+json", config: { Entrypoint: ["/docker"] } });
    arm = await image(reg, "team/app", "arm64-only", { created: "2026-02-02T00:00:00Z", arch: "arm64", layerSizes: [1000, 1000], seed: 3 });
    index = await manifest(reg, "team/app", "multi", {
      schemaVersion: 2, mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: amd.digest, size: amd.size, platform: { os: "linux", architecture: "amd64" } },
        { mediaType: OCI_MANIFEST, digest: arm.digest, size: arm.size, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
      ],
    });
    const empty = await blob(reg, "team/app", Buffer.from("{}"));
    const sig = await blob(reg, "team/app", Buffer.from("signature bytes"));
    signature = await manifest(reg, "team/app", null, {
      schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: SIGNATURE_TYPE,
      config: { mediaType: "application/vnd.oci.empty.v1+json", ...empty },
      layers: [{ mediaType: "application/vnd.dev.cosign.simplesigning.v1+json", ...sig }],
      subject: { mediaType: OCI_INDEX, digest: index.digest, size: index.size },
    });
    await image(reg, "other/tool", "latest", { created: "2025-12-31T23:59:00Z", layerSizes: [10], seed: 4 });
    page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 900 });
  });
  after(async () => {
    await page?.close();
    await reg?.close();
  });

  test("the repository list, filtered as you type", async () => {
    await open(page, reg.url, "#/", "ul.repos li a");
    assert.deepEqual(await texts(page, "ul.repos li a"), ["other/tool", "team/app"]);
    assert.equal(await page.$eval("label[for=filter]", (l) => l.textContent), "Filter by name");
    // Keyboard: each page moves focus to its content; the first tab stop skips to it.
    assert.equal(await page.evaluate(() => document.activeElement.id), "main");
    const first = await page.evaluate(() => document.querySelector("a[href], button, input, [tabindex='0']").textContent);
    assert.equal(first, "Skip to content");
    await page.focus("a.skip");
    assert.ok(await page.$eval("a.skip", (a) => a.getBoundingClientRect().left >= 0), "visible when focused");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.activeElement.id === "main");
    assert.equal(new URL(page.url()).hash, "#/", "the route stays");
    await page.type("#filter", "team");
    assert.deepEqual(await texts(page, "ul.repos li a"), ["team/app"]);
    assert.match(await page.$eval("#repo-count", (e) => e.textContent), /1 of 2 repositories/);
    await screenshot(page, "repositories");
  });

  test("a repository's tags: newest push first, digest, type, compressed size, created time, pull line", async () => {
    await open(page, reg.url, "#/r/team/app", "tr[data-tag]");
    const tags = await page.$$eval("tr[data-tag]", (rows) => rows.map((r) => r.dataset.tag));
    // By push time, newest first (the signature was pushed by digest: no tag).
    assert.deepEqual(tags, ["multi", "arm64-only", "amd64-only", "v1"]);
    const cells = async (tag) => page.$$eval(`tr[data-tag="${tag}"] td`, (tds) => tds.map((td) => td.textContent.trim()));
    const v1 = await cells("v1");
    assert.equal(v1[3], "4.0 kB", "1500 + 2500 bytes of layers");
    assert.equal(v1[4], "2026-01-02 03:04 UTC");
    assert.equal(v1[2], "image");
    const multi = await cells("multi");
    assert.equal(multi[2], "index · 2 platforms");
    assert.equal(multi[3], "5.0 kB", "both platforms' layers");
    assert.equal(multi[1], `${index.digest.slice(0, 19)}…`);
    const copy = await page.$eval('tr[data-tag="v1"] button[aria-label^="Copy"]', (b) => b.getAttribute("aria-label"));
    assert.equal(copy, `Copy: docker pull ${new URL(reg.url).host}/team/app:v1`);
    // The header says the same command the buttons copy.
    assert.equal(await page.$eval("#pull-command", (e) => e.textContent), `docker pull ${new URL(reg.url).host}/team/app:<tag>`);
    assert.ok(await page.$('tr[data-tag="v1"] button[aria-label="Delete tag v1"]'), "open registry: delete offered");
    await screenshot(page, "repository");
  });

  test("an index: its platforms, each linking to its manifest, and its signature grouped by artifact type", async () => {
    await open(page, reg.url, "#/r/team/app/-/multi", "#referrers");
    assert.deepEqual(await texts(page, "td.platform a"), ["linux/amd64", "linux/arm64/v8"]);
    const links = await page.$$eval("td.platform a", (as) => as.map((a) => a.getAttribute("href")));
    assert.deepEqual(links, [`#/r/team/app/-/${amd.digest}`, `#/r/team/app/-/${arm.digest}`]);
    assert.equal(await page.$eval("#digest", (e) => e.textContent), index.digest);
    assert.deepEqual(await texts(page, "#referrers h3"), [SIGNATURE_TYPE]);
    const referrers = await page.$$eval(`#referrers ul[data-artifact-type="${SIGNATURE_TYPE}"] a`, (as) => as.map((a) => a.getAttribute("href")));
    assert.deepEqual(referrers, [`#/r/team/app/-/${signature.digest}`]);
    const raw = JSON.parse(await page.$eval("#raw", (e) => e.textContent));
    assert.equal(raw.manifests.length, 2);
    await screenshot(page, "index");
    // Following a platform opens its image.
    await page.click("td.platform a");
    await page.waitForFunction((d) => document.querySelector("#digest")?.textContent === d, {}, amd.digest);
    assert.match(await page.$eval("h2", (e) => e.textContent), /Config/);
  });

  test("an image: config summary, layers with sizes, raw manifest", async () => {
    await open(page, reg.url, "#/r/team/app/-/v1", "#config");
    const config = await page.$$eval("#config dt, #config dd", (els) => els.map((e) => e.textContent));
    assert.deepEqual(config.slice(0, 6), ["Created", "2026-01-02 03:04 UTC", "Platform", "linux/amd64", "Entrypoint", '["/app"]']);
    assert.deepEqual(await texts(page, "#env li"), ["PATH=/usr/bin", "MODE=prod"]);
    assert.deepEqual(await texts(page, "#labels dt"), ["org.opencontainers.image.source"]);
    assert.deepEqual(await texts(page, "#history li"), ["/bin/sh -c #(nop) seed 1"]);
    assert.deepEqual(await texts(page, "td.size"), ["1.5 kB", "2.5 kB"]);
    assert.match(await page.$eval("main", (m) => m.textContent), /Layers \(2, 4\.0 kB\)/);
    assert.equal(JSON.parse(await page.$eval("#raw", (e) => e.textContent)).layers.length, 2);
    assert.match(await page.$eval("#referrers", (e) => e.textContent), /None/);
    await screenshot(page, "image");
  });

  test("a repository that does not exist says so, not \"No tags.\"", async () => {
    await open(page, reg.url, "#/r/no/such", "main .error");
    assert.equal(await page.$eval("main .error", (e) => e.textContent), "Repository no/such not found.");
    const res = await reg.fetch("/v2/no/such/_ui/tags");
    assert.equal(res.status, 404);
    assert.equal((await res.json()).errors[0].code, "NAME_UNKNOWN");
  });

  test("an image pushed by Docker (its own config type) shows its config too", async () => {
    await open(page, reg.url, "#/r/other/tool/-/docker", "#config");
    const config = await page.$$eval("#config dt, #config dd", (els) => els.map((e) => e.textContent));
    assert.deepEqual(config.slice(0, 6), ["Created", "2026-02-03 00:00 UTC", "Platform", "linux/amd64", "Entrypoint", '["/docker"]']);
  });

  test("deleting a tag through the UI asks first, then the tag is gone from the page and the API", async () => {
    await open(page, reg.url, "#/r/team/app", 'tr[data-tag="amd64-only"]');
    let asked = null;
    const decline = (d) => { asked = d.message(); d.dismiss(); };
    page.once("dialog", decline);
    await page.click('button[aria-label="Delete tag amd64-only"]');
    assert.match(asked ?? "", /Delete tag amd64-only of team\/app\?/);
    assert.equal((await reg.fetch("/v2/team/app/manifests/amd64-only", { method: "HEAD" })).status, 200, "declined: nothing deleted");
    page.once("dialog", (d) => d.accept());
    await page.click('button[aria-label="Delete tag amd64-only"]');
    await page.waitForFunction(() => !document.querySelector('tr[data-tag="amd64-only"]'), { timeout: 10000 });
    assert.equal((await reg.fetch("/v2/team/app/manifests/amd64-only", { method: "HEAD" })).status, 404);
    assert.equal((await reg.fetch(`/v2/team/app/manifests/${amd.digest}`, { method: "HEAD" })).status, 200, "a tag delete keeps the manifest");
  });

  test("a repository's tags page by 20, newest first", async () => {
    const cfg = await blob(reg, "many/tags", Buffer.from('{"architecture":"amd64","os":"linux"}'));
    for (let i = 0; i < 23; i++) {
      await manifest(reg, "many/tags", `t${i}`, {
        schemaVersion: 2, mediaType: OCI_MANIFEST,
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...cfg }, layers: [], annotations: { i: String(i) },
      });
    }
    await open(page, reg.url, "#/r/many/tags", "tr[data-tag]");
    const shown = () => page.$$eval("tr[data-tag]", (rows) => rows.map((r) => r.dataset.tag));
    assert.deepEqual(await shown(), Array.from({ length: 20 }, (_, i) => `t${22 - i}`));
    assert.match(await page.$eval(".pager", (e) => e.textContent), /1–20 of 23 tags/);
    const [next] = await page.$$("xpath/.//button[text()='Next']");
    await next.click();
    await page.waitForFunction(() => document.querySelectorAll("tr[data-tag]").length === 3);
    assert.deepEqual(await shown(), ["t2", "t1", "t0"]);
    assert.ok((await page.$$("xpath/.//button[text()='Previous']")).length === 1);
  });

  test("phone width: the page does not scroll sideways; wide tables scroll inside their region", async () => {
    await page.setViewport({ width: 375, height: 740, isMobile: true });
    try {
      await open(page, reg.url, "#/r/team/app", "tr[data-tag]");
      const { page: pageWidth, viewport } = await page.evaluate(() => ({ page: document.documentElement.scrollWidth, viewport: window.innerWidth }));
      assert.ok(pageWidth <= viewport, `page ${pageWidth}px wide in a ${viewport}px viewport`);
      await screenshot(page, "repository-phone");
    } finally {
      await page.setViewport({ width: 1200, height: 900 });
    }
  });
});

describe("with access control", { skip }, () => {
  let reg, page;
  before(async () => {
    reg = await registry({
      AUTH_HTPASSWD: HTPASSWD,
      AUTH_RULES: JSON.stringify([
        { user: "alice", repos: ["alice/*", "public/*"], actions: ["pull", "push", "delete"] },
        { user: "bob", repos: ["alice/*"], actions: ["pull"] },
        { user: "anonymous", repos: ["public/*"], actions: ["pull"] },
      ]),
    });
    const alice = basicAuth("alice");
    await image(reg, "alice/private", "v1", { created: "2026-03-01T00:00:00Z", layerSizes: [100], seed: 5 }, alice);
    await image(reg, "public/app", "v1", { created: "2026-03-02T00:00:00Z", layerSizes: [200], seed: 6 }, alice);
    page = await browser.newPage();
  });
  after(async () => {
    await page?.close();
    await reg?.close();
  });

  test("anonymous: only what anonymous pulls allow, no delete button, a way to sign in", async () => {
    await open(page, reg.url, "#/", "ul.repos li a");
    assert.deepEqual(await texts(page, "ul.repos li a"), ["public/app"]);
    assert.ok(await page.$("#signin"));
    await open(page, reg.url, "#/r/public/app", 'tr[data-tag="v1"]');
    assert.equal(await page.$('button[aria-label^="Delete"]'), null);
    await open(page, reg.url, "#/r/public/app/-/v1", "#raw");
    assert.equal(await page.$("#delete-manifest"), null);
    await open(page, reg.url, "#/r/alice/private", "main .error");
    assert.equal(await page.$('tr[data-tag]'), null);
    assert.ok(await page.$('main a[href="#/signin"]'), "offers to sign in");
    await screenshot(page, "anonymous");
  });

  test("signing in obtains a token as a Docker client does; a wrong password is said so", async () => {
    const tokenRequests = [];
    const watch = (req) => { if (new URL(req.url()).pathname === "/token") tokenRequests.push(req.headers().authorization ?? ""); };
    page.on("request", watch);
    try {
      await open(page, reg.url, "#/signin", "#username");
      await page.type("#username", "alice");
      await page.type("#password", "wrong");
      await page.click("button[type=submit]");
      await page.waitForFunction(() => document.querySelector("[role=alert]")?.textContent);
      assert.equal(await page.$eval("[role=alert]", (e) => e.textContent), "Wrong username or password.");
      await screenshot(page, "signin-refused");
      await page.$eval("#password", (e) => (e.value = ""));
      await page.type("#password", "alice-pw");
      await page.click("button[type=submit]");
      await page.waitForSelector("#user");
      assert.equal(await page.$eval("#user", (e) => e.textContent), "Signed in as alice");
      await page.waitForFunction(() => document.querySelectorAll("ul.repos li a").length === 2);
      assert.deepEqual(await texts(page, "ul.repos li a"), ["alice/private", "public/app"]);
      // The password goes to /token twice (the wrong one, then the sign-in); every later token is
      // bought with the session's refresh token, and the page keeps no password.
      assert.deepEqual(tokenRequests.slice(0, 2).map((a) => a.split(" ")[0]), ["Basic", "Basic"]);
      assert.ok(tokenRequests.length > 2 && tokenRequests.slice(2).every((a) => a.startsWith("Bearer ")), JSON.stringify(tokenRequests.map((a) => a.split(" ")[0])));
      const stored = await page.evaluate(() => JSON.stringify(sessionStorage));
      assert.ok(!stored.includes("alice-pw") && !stored.includes(Buffer.from("alice:alice-pw").toString("base64")), stored);
      assert.ok(stored.includes("registry.session"));
      await page.click('a[href="#/r/alice/private"]');
      await page.waitForSelector('button[aria-label="Delete tag v1"]');
      await screenshot(page, "signed-in");
      await page.click("#signout");
      await page.waitForSelector("#signin");
      await page.click('a[href="#/"]');
      await page.waitForFunction(() => [...document.querySelectorAll("ul.repos li a")].map((a) => a.textContent).join() === "public/app");
    } finally {
      page.off("request", watch);
    }
  });

  test("a user who may only pull sees the repository without a delete button", async () => {
    await open(page, reg.url, "#/signin", "#username");
    await page.type("#username", "bob");
    await page.type("#password", "bob-pw");
    await page.click("button[type=submit]");
    await page.waitForSelector("#user");
    await open(page, reg.url, "#/r/alice/private", 'tr[data-tag="v1"]');
    assert.equal(await page.$('button[aria-label^="Delete"]'), null);
    await page.click("#signout");
  });
});

test("mirrored repositories are marked as such, and offer no delete", { skip }, async () => {
  const upstream = await registry();
  const mirror = await registry({ UPSTREAMS: JSON.stringify([{ prefix: "hub/", url: upstream.url }]) });
  const page = await browser.newPage();
  try {
    await image(upstream, "library/alpine", "3", { created: "2026-04-01T00:00:00Z", layerSizes: [300], seed: 7 });
    await image(mirror, "local/app", "v1", { created: "2026-04-02T00:00:00Z", layerSizes: [300], seed: 8 });
    assert.equal((await mirror.fetch("/v2/hub/library/alpine/manifests/3")).status, 200, "a pull through the mirror");
    await open(page, mirror.url, "#/", "ul.repos li a");
    const rows = await page.$$eval("ul.repos li", (lis) => lis.map((li) => [li.querySelector("a").textContent, li.querySelector(".badge")?.textContent ?? null]));
    assert.deepEqual(rows, [["hub/library/alpine", `mirror of ${new URL(upstream.url).host}`], ["local/app", null]]);
    await open(page, mirror.url, "#/r/hub/library/alpine", 'tr[data-tag="3"]');
    assert.equal(await page.$('button[aria-label^="Delete"]'), null);
    assert.match(await page.$eval("h1", (e) => e.textContent), /mirror of/);
  } finally {
    await page.close();
    await mirror.close();
    await upstream.close();
  }
});

test("UI=false: no pages at /, the API as before", async () => {
  const reg = await registry({ UI: "false" });
  try {
    const root = await reg.fetch("/");
    assert.equal(root.status, 404);
    assert.equal((await root.json()).errors[0].code, "NAME_UNKNOWN");
    assert.equal((await reg.fetch("/v2/")).status, 200);
  } finally {
    await reg.close();
  }
});

test("the UI's files: hashed assets are immutable, pages revalidated, guarded by a strict policy", async () => {
  const reg = await registry();
  try {
    const page = await reg.fetch("/");
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("cache-control"), "no-cache");
    assert.match(page.headers.get("content-security-policy"), /script-src 'self'/);
    const html = await page.text();
    const assets = [...html.matchAll(/"(\/assets\/[^"]+)"/g)].map((m) => m[1]);
    assert.equal(assets.length, 2, "one script, one style");
    for (const path of assets) {
      const res = await reg.fetch(path);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get("cache-control"), "public, max-age=31536000, immutable", path);
      await res.arrayBuffer();
    }
    const missing = await reg.fetch("/no/such/page");
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).errors[0].code, "NAME_UNKNOWN", "no such file: the registry's JSON 404");
    const summary = await reg.fetch("/v2/team/app/_ui/tags?n=x");
    assert.equal(summary.status, 400);
    assert.equal((await summary.json()).errors[0].code, "PAGINATION_NUMBER_INVALID");
  } finally {
    await reg.close();
  }
});
