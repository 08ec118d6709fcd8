// "First writer wins" under real concurrency on the emulator: writes racing on one upload URL
// keep exactly one body, uploads of the same content that commit at the same moment leave one
// stored copy, and a cron run racing an admin run never both hold the collection.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import http from "node:http";
import { registry, sha256 } from "./helpers.mjs";

let reg;
before(async () => {
  reg = await registry({ ADMIN_USERS: "" });
});
after(async () => {
  await reg.close();
});

// A chunked upload of `bytes` to `name`, stopping before the commit; returns the commit URL.
async function uploadUncommitted(name, bytes) {
  let res = await reg.fetch(`/v2/${name}/blobs/uploads/`, { method: "POST" });
  assert.equal(res.status, 202);
  res = await reg.fetch(res.headers.get("location"), { method: "PATCH", body: bytes, headers: { "content-range": `0-${bytes.length - 1}` } });
  assert.equal(res.status, 202);
  const url = new URL(res.headers.get("location"), reg.url);
  url.searchParams.set("digest", sha256(bytes));
  return url.toString();
}

// Commits 8 uploads of `bytes` at once; returns the data objects left and the descriptor's.
async function commitTogether(bytes, round) {
  const digest = sha256(bytes);
  const names = Array.from({ length: 8 }, (_, i) => `race/r${round}/repo${i % 3}`);
  // The uploads one after another (the emulator resets some connections when several 12 MB
  // bodies arrive at once, with or without this registry's code); the commits all at once.
  const commits = [];
  for (const n of names) commits.push(await uploadUncommitted(n, bytes));
  // Each upload holds its own copy (a multipart upload or a piece, completed in place on commit).
  assert.equal((await reg.keys("uploads/")).length, 8);
  const results = await Promise.all(commits.map((url) => reg.fetch(url, { method: "PUT" })));
  for (const res of results) assert.equal(res.status, 201);
  for (const n of new Set(names)) {
    const res = await reg.fetch(`/v2/${n}/blobs/${digest}`);
    assert.equal(res.status, 200);
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), digest);
  }
  const hex = digest.slice("sha256:".length);
  const descriptor = JSON.parse(await (await (await reg.bucket()).get(`blobs/sha256/${hex.slice(0, 2)}/${hex}/descriptor`)).text());
  const data = [...(await reg.keys("objects/")), ...(await reg.keys("blobs/"))].filter((k) => !k.endsWith("/descriptor"));
  return { data, object: descriptor.object };
}

test("8 uploads of one blob committed at once leave exactly one copy of the bytes (12 MB, then 1 MB twice)", async () => {
  const sizes = [12 * 1024 * 1024, 1024 * 1024, 1024 * 1024];
  for (const [round, size] of sizes.entries()) {
    const { data, object } = await commitTogether(randomBytes(size), round);
    assert.deepEqual(data, [object], `round ${round}: one stored copy, the one the descriptor names`);
    // The winner's state is gone; each of the 7 that kept no bytes of its own left a closed
    // state (its first URL is refused from now on) and nothing else.
    const states = await reg.keys("uploads/");
    assert.equal(states.length, 7, "a closed state per upload that kept no bytes");
    for (const key of states) assert.equal(JSON.parse(await (await (await reg.bucket()).get(key)).text()).closed, true, key);
    // The next round starts from an empty bucket of data objects and states.
    await (await reg.bucket()).delete([...data, ...states]);
  }
});

// Sends `requests` ({ url, method, body, headers }, each with its Content-Length) at once:
// each sends the first half of its body, and the second halves follow once every request is
// in flight, so the writes truly overlap. Returns the responses ({ status, location }).
async function together(requests) {
  let release;
  const gate = new Promise((r) => (release = r));
  const sent = [];
  const responses = requests.map(({ url, method, body, headers = {} }) => {
    let halfSent;
    sent.push(new Promise((r) => (halfSent = r)));
    return new Promise((ok, no) => {
      const req = http.request(new URL(url, reg.url), { method, headers: { ...headers, "content-length": body.length } }, (res) => {
        res.resume();
        res.on("end", () => ok({ status: res.statusCode, location: res.headers.location }));
      });
      req.on("error", no);
      const half = Math.floor(body.length / 2);
      req.write(body.subarray(0, half), () => halfSent());
      gate.then(() => req.end(body.subarray(half)));
    });
  });
  await Promise.all(sent);
  await new Promise((r) => setTimeout(r, 300)); // every request has reached the worker
  release();
  return Promise.all(responses);
}

// PATCHes of `bodies` to `url`, all starting at `offset`, at once.
const patchTogether = (url, bodies, offset) =>
  together(bodies.map((body) => ({ url, method: "PATCH", body, headers: { "content-range": `${offset}-${offset + body.length - 1}` } })));

// Exactly one of racing writes is kept (answered `ok`): its index. The others were refused as
// racing (429), as stale (416, arriving after it was saved) or as used (404).
async function theOneKept(results, ok = 202) {
  const kept = results.flatMap((res, i) => (res.status === ok ? [i] : []));
  assert.equal(kept.length, 1, `statuses ${results.map((r) => r.status)}`);
  for (const res of results) if (res.status !== ok) assert.ok([404, 416, 429].includes(res.status), `status ${res.status}`);
  return kept[0];
}

test("writes racing on one upload URL: exactly one body is kept, the others leave nothing behind", async () => {
  const name = "race/patches";
  const post = await reg.fetch(`/v2/${name}/blobs/uploads/`, { method: "POST" });
  const fresh = post.headers.get("location");
  const id = fresh.match(/uploads\/([0-9a-f-]+)/)[1];
  // First writes, all through the fresh URL (none of them takes a lease).
  const firsts = Array.from({ length: 6 }, () => randomBytes(1024 * 1024));
  let results = await patchTogether(fresh, firsts, 0);
  const first = firsts[await theOneKept(results)];
  let next = results.find((r) => r.status === 202).location;
  assert.deepEqual(await reg.keys(`objects/${id}/`), [`objects/${id}/${"0".padStart(20, "0")}`], "one piece: the kept write's");
  // Then chunks of a started upload at one offset: small ones written without a lease, and one
  // that fills a part, under the lease.
  const seconds = [...Array.from({ length: 5 }, () => randomBytes(512 * 1024)), randomBytes(6 * 1024 * 1024)];
  results = await patchTogether(next, seconds, first.length);
  const second = seconds[await theOneKept(results)];
  next = results.find((r) => r.status === 202).location;
  const blob = Buffer.concat([first, second]);
  const url = new URL(next, reg.url);
  url.searchParams.set("digest", sha256(blob));
  const res = await reg.fetch(url.toString(), { method: "PUT" });
  assert.equal(res.status, 201);
  const pulled = await reg.fetch(`/v2/${name}/blobs/${sha256(blob)}`);
  assert.deepEqual(Buffer.from(await pulled.arrayBuffer()), blob);
  // Of the upload, only the blob's data is left: the losers undid what they wrote.
  const hex = sha256(blob).slice("sha256:".length);
  const descriptor = JSON.parse(await (await (await reg.bucket()).get(`blobs/sha256/${hex.slice(0, 2)}/${hex}/descriptor`)).text());
  assert.deepEqual(await reg.keys(`objects/${id}/`), [descriptor.object]);
  assert.deepEqual(await reg.keys(`uploads/${id}/`), []);
});

test("whole blobs PUT at once through one fresh upload URL: exactly one is stored, under its own digest", async () => {
  const name = "race/whole";
  const post = await reg.fetch(`/v2/${name}/blobs/uploads/`, { method: "POST" });
  const fresh = new URL(post.headers.get("location"), reg.url);
  const bodies = Array.from({ length: 6 }, () => randomBytes(1024 * 1024));
  const results = await together(
    bodies.map((body) => {
      const url = new URL(fresh);
      url.searchParams.set("digest", sha256(body));
      return { url: url.toString(), method: "PUT", body };
    }),
  );
  const kept = await theOneKept(results, 201);
  for (const [i, body] of bodies.entries()) {
    const res = await reg.fetch(`/v2/${name}/blobs/${sha256(body)}`);
    if (i === kept) assert.deepEqual(Buffer.from(await res.arrayBuffer()), body, "the stored blob has its own bytes");
    else assert.equal(res.status, 404, "a refused PUT stored nothing");
  }
});

test("a cron run and admin runs started together: exactly one holds the collection", async () => {
  // Enough blobs that a run holding the collection is still at work when the others try.
  for (let i = 0; i < 120; i += 20) {
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        const layer = randomBytes(100);
        const res = await reg.fetch(`/v2/race/gc/blobs/uploads/?digest=${sha256(layer)}`, { method: "POST", body: layer });
        assert.equal(res.status, 201);
      }),
    );
  }
  for (let round = 0; round < 3; round++) {
    // The collection's state only: the recount's cursor (gc/recount) belongs to another step.
    assert.deepEqual(await reg.keys("gc/state"), [], "no collection state yet");
    const admin = () => reg.fetch("/admin/lifecycle?budget=1000", { method: "POST" }).then((r) => r.json());
    const [, ...answers] = await Promise.all([reg.scheduled(), admin(), admin(), admin()]);
    // Runs that held the collection did so one after another, never at the same time.
    const held = answers.filter((s) => !s.gc_skipped).sort((a, b) => a.started_ms - b.started_ms);
    assert.ok(held.length >= 1 || answers.every((s) => s.gc_skipped), "a run advanced the collection");
    for (let i = 1; i < held.length; i++) {
      assert.ok(held[i].started_ms >= held[i - 1].finished_ms, `runs overlapped: ${JSON.stringify(held)}`);
    }
    // Finish it, so the next round starts from no state again.
    for (let i = 0; i < 50 && (await reg.keys("gc/state")).length; i++) {
      const s = await reg.fetch("/admin/lifecycle?budget=1000", { method: "POST" }).then((r) => r.json());
      if (s.gc_skipped) await new Promise((r) => setTimeout(r, 50));
    }
  }
});
