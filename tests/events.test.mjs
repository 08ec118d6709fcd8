// Events on the emulator: pushes, pulls, deletes and mirror fills go to the EVENTS queue after
// the response, and the queue's consumer (the same worker) POSTs each batch to WEBHOOK_URL in
// distribution's envelope, signed with WEBHOOK_SECRET (the test receiver checks the HMAC), and
// retries a batch the receiver refuses. Pulls are sampled unless NOTIFY_PULLS.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { createHmac, timingSafeEqual } from "node:crypto";
import { registry, sha256, pushBlob, imageManifest, putManifest } from "./helpers.mjs";

const SECRET = "webhook-secret";

// A webhook receiver: records every delivery (raw body, headers, whether the signature is
// right), answers `failures` of them with 500 first.
function receiver() {
  const deliveries = [];
  const waiters = [];
  const state = { failures: 0 };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const want = "sha256=" + createHmac("sha256", SECRET).update(body).digest("hex");
      const got = req.headers["x-registry-signature"] ?? "";
      const signed = got.length === want.length && timingSafeEqual(Buffer.from(got), Buffer.from(want));
      const refused = state.failures > 0;
      if (refused) state.failures--;
      deliveries.push({ body: JSON.parse(body), headers: req.headers, signed, refused });
      res.writeHead(refused ? 500 : 204).end();
      for (const w of waiters.splice(0)) w();
    });
  });
  return {
    state,
    deliveries,
    url: () => `http://127.0.0.1:${server.address().port}/hook`,
    listen: () => new Promise((r) => server.listen(0, "127.0.0.1", r)),
    close: () => new Promise((r) => server.close(r)),
    // Every event delivered and accepted so far.
    accepted: () => deliveries.filter((d) => !d.refused).flatMap((d) => d.body.events),
    // Waits until `pred` holds of the accepted events (the consumer batches for a second).
    async until(pred, what, ms = 30000) {
      const end = Date.now() + ms;
      while (!pred(this.accepted())) {
        if (Date.now() > end) throw new Error(`no ${what} within ${ms} ms: ${JSON.stringify(this.accepted().map((e) => [e.action, e.target.tag]))}`);
        await new Promise((r) => { waiters.push(r); setTimeout(r, 200); });
      }
      return this.accepted();
    },
  };
}

let hook, reg;
before(async () => {
  hook = receiver();
  await hook.listen();
  reg = await registry({ WEBHOOK_URL: hook.url(), WEBHOOK_SECRET: SECRET, NOTIFY_PULLS: "true" });
});
after(async () => {
  await reg?.close();
  await hook?.close();
});

async function pushImage(r, name, tag, n) {
  const config = await pushBlob(r, name, Buffer.from(`{"architecture":"amd64","os":"linux","n":${n}}`));
  const manifest = imageManifest(config, []);
  const res = await putManifest(r, name, tag, manifest);
  assert.equal(res.status, 201);
  return { digest: sha256(manifest), size: manifest.length };
}

test("push, pull and delete are delivered, signed, in distribution's envelope", async () => {
  const m = await pushImage(reg, "team/app", "v1", 1);
  const pushed = (await hook.until((es) => es.some((e) => e.action === "push"), "push event")).find((e) => e.action === "push");
  assert.deepEqual(pushed.target, {
    mediaType: "application/vnd.oci.image.manifest.v1+json", digest: m.digest, size: m.size, length: m.size,
    repository: "team/app", url: `${reg.url}/v2/team/app/manifests/${m.digest}`, tag: "v1",
  });
  assert.equal(pushed.request.method, "PUT");
  assert.equal(pushed.request.host, new URL(reg.url).host);
  assert.match(pushed.id, /^[0-9a-f-]{36}$/);
  assert.ok(!Number.isNaN(Date.parse(pushed.timestamp)));
  assert.deepEqual(pushed.actor, {}, "an open registry has no user");

  assert.equal((await reg.fetch("/v2/team/app/manifests/v1", { method: "HEAD" })).status, 200);
  const got = await reg.fetch("/v2/team/app/manifests/v1", { headers: { "user-agent": "events-test/1" } });
  assert.equal(got.status, 200);
  await got.arrayBuffer();
  assert.equal((await reg.fetch("/v2/team/app/manifests/v1", { method: "DELETE" })).status, 202);
  const all = await hook.until((es) => es.some((e) => e.action === "delete"), "delete event");
  const pulls = all.filter((e) => e.action === "pull");
  assert.equal(pulls.length, 1, "a GET is a pull, a HEAD is not");
  assert.equal(pulls[0].request.useragent, "events-test/1");
  assert.equal(pulls[0].target.digest, m.digest);
  const deleted = all.find((e) => e.action === "delete");
  assert.equal(deleted.target.digest, m.digest, "a tag delete names what the tag pointed at");
  assert.equal(deleted.target.tag, "v1");
  for (const d of hook.deliveries) {
    assert.ok(d.signed, "every delivery carries the HMAC of its body");
    assert.equal(d.headers["content-type"], "application/vnd.docker.distribution.events.v1+json");
  }
});

test("a refused delivery is tried again until the receiver takes it; the push did not wait", async () => {
  hook.state.failures = 1;
  const before = hook.deliveries.length;
  const m = await pushImage(reg, "team/app", "v2", 2);
  assert.equal(hook.deliveries.length, before, "the push answered before any delivery");
  const events = await hook.until((es) => es.some((e) => e.target.tag === "v2"), "the retried push event", 60000);
  const refused = hook.deliveries.slice(before).filter((d) => d.refused);
  assert.equal(refused.length, 1);
  const retried = events.find((e) => e.target.tag === "v2");
  assert.equal(retried.target.digest, m.digest);
  assert.ok(refused[0].body.events.some((e) => e.id === retried.id), "the same event, delivered again");
});

test("without NOTIFY_PULLS, pulls are sampled: one event per manifest per hour", async () => {
  const quiet = receiver();
  await quiet.listen();
  const r = await registry({ WEBHOOK_URL: quiet.url(), WEBHOOK_SECRET: SECRET });
  try {
    await pushImage(r, "busy/app", "v1", 3);
    for (let i = 0; i < 5; i++) await (await r.fetch("/v2/busy/app/manifests/v1")).arrayBuffer();
    await pushImage(r, "busy/app", "v2", 4);
    const events = await quiet.until((es) => es.filter((e) => e.action === "push").length === 2, "both pushes");
    assert.equal(events.filter((e) => e.action === "pull").length, 1);
  } finally {
    await r.close();
    await quiet.close();
  }
});

test("a mirror fill is an event of its own", async () => {
  const upstream = await registry();
  const m = await pushImage(upstream, "library/alpine", "3", 5);
  const mirror = await registry({ WEBHOOK_URL: hook.url(), WEBHOOK_SECRET: SECRET, UPSTREAMS: JSON.stringify([{ prefix: "hub/", url: upstream.url }]) });
  try {
    const res = await mirror.fetch("/v2/hub/library/alpine/manifests/3");
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    const events = await hook.until((es) => es.some((e) => e.action === "mirror"), "mirror event");
    const fill = events.find((e) => e.action === "mirror");
    assert.equal(fill.target.repository, "hub/library/alpine");
    assert.equal(fill.target.digest, m.digest);
    assert.equal(fill.target.tag, "3");
  } finally {
    await mirror.close();
    await upstream.close();
  }
});

test("retention's deletions are announced as a client's are: delete events and log lines, by the lifecycle", async () => {
  const r = await registry({
    WEBHOOK_URL: hook.url(),
    WEBHOOK_SECRET: SECRET,
    RETENTION: JSON.stringify([{ repos: ["ci/*"], keep_last: 1, untagged_after_days: 0 }]),
  });
  try {
    const old = await pushImage(r, "ci/app", "build-1", 11);
    await new Promise((w) => setTimeout(w, 20));
    await pushImage(r, "ci/app", "build-2", 12);
    const run = await (await r.fetch("/admin/lifecycle", { method: "POST" })).json();
    assert.deepEqual([...run.retention.deleted].sort(), ["ci/app:build-1", `ci/app@${old.digest}`]);
    const events = await hook.until((es) => es.filter((e) => e.actor?.name === "lifecycle:retention").length === 2, "retention's delete events");
    const mine = events.filter((e) => e.actor?.name === "lifecycle:retention");
    assert.deepEqual(mine.map((e) => [e.action, e.target.repository, e.target.digest, e.target.tag ?? null]).sort(), [
      ["delete", "ci/app", old.digest, "build-1"],
      ["delete", "ci/app", old.digest, null],
    ].sort());
    assert.equal(mine[0].request.method, "DELETE");
    const lines = r.requestLogs.filter((l) => l.user === "lifecycle:retention");
    assert.deepEqual(lines.map((l) => [l.method, l.route, l.repository, l.status]), [
      ["DELETE", "manifest", "ci/app", 202],
      ["DELETE", "manifest", "ci/app", 202],
    ]);
  } finally {
    await r.close();
  }
});
