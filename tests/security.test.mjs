// The registry as an attacker meets it, over real HTTP against the emulator with access control
// on: alice owns alice/* (and public/*), bob may push bob/*, anonymous callers may pull public/*
// and the mirrored names. One test per attack of SECURITY.md's table (each failed on the main of
// 2026-12-04), then what held before and must keep holding. The memory rows read the registry's
// own workerd process (peak resident memory, /proc).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, request } from "node:http";
import { randomBytes, createHmac } from "node:crypto";
import { registry, sha256, errorCode, imageManifest, HTPASSWD, basicAuth, storageOps, streamOf, OCI_MANIFEST } from "./helpers.mjs";
import { workerdPeaks } from "../miniflare/procstat.mjs";

// carol's hash has bcrypt's usual cost (10), the others cost 5.
const CAROL = "carol:$2b$10$W0DwZ0vxWUvyW0DwZ0vxWORHpQ3tO9GjIN9VRNKCFm1Jta7ZRHmuK";
const RULES = JSON.stringify([
  { user: "alice", repos: ["alice/*", "public/*"], actions: ["pull", "push", "delete"] },
  { user: "bob", repos: ["bob/*"], actions: ["pull", "push", "delete"] },
  { user: "anonymous", repos: ["public/*", "mirror/*", "trusted/*", "creds/*"], actions: ["pull"] },
]);

const alice = { authorization: basicAuth("alice") };
const bob = { authorization: basicAuth("bob") };

// A hostile upstream (answers 200 to every blob HEAD, junk to every GET, a tags Link to another
// origin, a token realm elsewhere over http) and the other origin it points at, which logs what
// reaches it.
function hostileServers() {
  const state = { redirect: false, otherLog: [] };
  const other = createServer((req, res) => {
    state.otherLog.push(`${req.method} ${req.url} ${req.headers.authorization ? "with" : "without"} authorization`);
    if (req.url.startsWith("/token")) return res.writeHead(200, { "content-type": "application/json" }).end('{"token":"t"}');
    if (req.url.includes("/tags/list")) return res.writeHead(200, { "content-type": "application/json" }).end('{"tags":["evil"]}');
    res.writeHead(200, { "content-length": 11 }).end("other bytes");
  });
  const hostile = createServer((req, res) => {
    if (req.url.startsWith("/v2/locked/")) {
      return res.writeHead(401, { "www-authenticate": `Bearer realm="${state.otherUrl}/token",service="x"` }).end();
    }
    const tags = req.url.match(/^\/v2\/(.+)\/tags\/list/);
    if (tags) {
      const link = `<${state.otherUrl}/v2/${tags[1]}/tags/list?last=a>; rel="next"`;
      return res.writeHead(200, { "content-type": "application/json", link }).end(JSON.stringify({ name: tags[1], tags: ["a"] }));
    }
    const blob = req.url.match(/^\/v2\/.+\/blobs\/(sha256:[0-9a-f]{64})$/);
    if (!blob) return res.writeHead(404).end();
    if (state.redirect) return res.writeHead(307, { location: `${state.otherUrl}/cdn/${blob[1]}` }).end();
    res.writeHead(200, { "content-length": 5, "content-type": "application/octet-stream" });
    res.end(req.method === "HEAD" ? undefined : "junk!");
  });
  return { state, other, hostile };
}

const listen = (server) => new Promise((r) => server.listen(0, "127.0.0.1", () => r(`http://127.0.0.1:${server.address().port}`)));

let reg, pids, servers, hostileUrl, otherUrl;
// alice's private layer, config and manifest in alice/secret.
const secret = { layer: randomBytes(3000), config: Buffer.from('{"architecture":"amd64","os":"linux","secret":true}') };

before(async () => {
  servers = hostileServers();
  hostileUrl = await listen(servers.hostile);
  otherUrl = await listen(servers.other);
  servers.state.otherUrl = otherUrl;
  const running = new Set(Object.keys(workerdPeaks()));
  reg = await registry({
    AUTH_HTPASSWD: `${HTPASSWD}\n${CAROL}`,
    AUTH_RULES: RULES,
    ADMIN_USERS: "alice",
    UPSTREAMS: JSON.stringify([
      { prefix: "mirror/", url: hostileUrl, tag_ttl_seconds: 0 },
      { prefix: "trusted/", url: hostileUrl, redirect_origins: [otherUrl] },
      { prefix: "creds/", url: hostileUrl, credentials: "HOSTILE_CREDENTIALS" },
    ]),
    HOSTILE_CREDENTIALS: "mirror:mirror-pw",
    UPSTREAM_TIMEOUT_SECONDS: "3",
  });
  pids = Object.keys(workerdPeaks()).filter((p) => !running.has(p));
  assert.ok(pids.length > 0, "the registry's workerd process is found");
  for (const b of [secret.layer, secret.config]) {
    const res = await reg.fetch(`/v2/alice/secret/blobs/uploads/?digest=${sha256(b)}`, { method: "POST", body: b, headers: alice });
    assert.equal(res.status, 201);
  }
  secret.manifest = imageManifest({ digest: sha256(secret.config), size: secret.config.length }, [{ digest: sha256(secret.layer), size: secret.layer.length }]);
  assert.equal((await reg.fetch("/v2/alice/secret/manifests/v1", { method: "PUT", body: secret.manifest, headers: { ...alice, "content-type": OCI_MANIFEST } })).status, 201);
});

after(async () => {
  await reg.close();
  servers.hostile.close();
  servers.other.close();
});

// The registry's peak resident memory (MB) so far.
const peak = () => Math.max(...pids.map((p) => workerdPeaks()[p] ?? 0));

async function pushBlobAs(headers, name, bytes) {
  const res = await reg.fetch(`/v2/${name}/blobs/uploads/?digest=${sha256(bytes)}`, { method: "POST", body: bytes, headers });
  assert.equal(res.status, 201, `push to ${name}`);
}

// --- memory first: the peak is the process's own, and later rows must not have raised it ---

test("row 4: a chunked manifest body is read against its 4 MiB ceiling: 413, and memory stays flat", async () => {
  const before = peak();
  const huge = Buffer.alloc(150 * 1024 * 1024, 0x20);
  const res = await reg.fetch("/v2/bob/x/manifests/big", {
    method: "PUT",
    body: streamOf(huge, 1 << 20),
    duplex: "half",
    headers: { ...bob, "content-type": OCI_MANIFEST },
  });
  assert.equal(res.status, 413);
  assert.equal(await errorCode(res), "SIZE_INVALID");
  const growth = peak() - before;
  console.log(`chunked 150 MiB manifest PUT: workerd peak ${before.toFixed(0)} → ${peak().toFixed(0)} MB (+${growth.toFixed(0)})`);
  assert.ok(growth < 64, `peak memory grew by ${growth} MB`);
});

test("row 5: the UI's tag page summarizes a few manifests at a time, whatever their size", async () => {
  const layer = randomBytes(100);
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  await pushBlobAs(bob, "bob/big", layer);
  await pushBlobAs(bob, "bob/big", config);
  const filler = "x".repeat(4_000_000);
  const count = 48;
  for (let i = 0; i < count; i++) {
    const m = imageManifest({ digest: sha256(config), size: config.length }, [{ digest: sha256(layer), size: 100 }], { annotations: { i: String(i), filler } });
    const res = await reg.fetch(`/v2/bob/big/manifests/t${i}`, { method: "PUT", body: m, headers: { ...bob, "content-type": OCI_MANIFEST } });
    assert.equal(res.status, 201);
  }
  const before = peak();
  const res = await reg.fetch("/v2/bob/big/_ui/tags?n=100", { headers: bob });
  assert.equal(res.status, 200);
  const page = await res.json();
  assert.equal(page.tags.length, count);
  const growth = peak() - before;
  console.log(`UI page of ${count} manifests of 4 MB: workerd peak ${before.toFixed(0)} → ${peak().toFixed(0)} MB (+${growth.toFixed(0)})`);
  // Less than the page's manifests held once (192 MB); all at once, it grew by 570 MB.
  assert.ok(growth < 4 * count, `peak memory grew by ${growth} MB`);
});

// --- tenants ---

test("row 1: a digest is not a proof: a wrong body never links a stored blob, and says nothing of what exists", async () => {
  const stored = sha256(secret.layer);
  const absent = sha256(randomBytes(3000));
  for (const body of [Buffer.from("x"), Buffer.alloc(0)]) {
    for (const digest of [stored, absent]) {
      const res = await reg.fetch(`/v2/bob/x/blobs/uploads/?digest=${digest}`, { method: "POST", body, headers: bob });
      assert.equal(res.status, 400, `POST ?digest= with ${body.length} bytes`);
      assert.equal(await errorCode(res), "DIGEST_INVALID");
    }
    // POST, then PUT the wrong bytes with the digest.
    const start = await reg.fetch("/v2/bob/x/blobs/uploads/", { method: "POST", headers: bob });
    const location = start.headers.get("location");
    const put = await reg.fetch(`${location}&digest=${stored}`, { method: "PUT", body, headers: bob });
    assert.equal(put.status, 400);
    assert.equal(await errorCode(put), "DIGEST_INVALID");
  }
  for (const d of [stored, sha256(secret.config), sha256(secret.manifest)]) {
    assert.equal((await reg.fetch(`/v2/bob/x/blobs/${d}`, { headers: bob })).status, 404, "alice's bytes are not bob's");
  }
  assert.deepEqual(await reg.keys("repositories/bob/x/"), []);
  // With the bytes, the blob stored before is linked, not written again: as many writes as before.
  const res = await reg.fetch(`/v2/bob/x/blobs/uploads/?digest=${stored}`, { method: "POST", body: secret.layer, headers: bob });
  assert.equal(res.status, 201);
  assert.equal(storageOps(res)["r2-a"], 1, "the link (the descriptor was touched just now)");
  const got = await reg.fetch(`/v2/bob/x/blobs/${stored}`, { headers: bob });
  assert.deepEqual(Buffer.from(await got.arrayBuffer()), secret.layer);
});

test("row 2: with access control on, a missing TOKEN_SECRET or UPLOAD_SECRET fails every request, saying why", async () => {
  for (const [missing, settings] of [
    ["TOKEN_SECRET", { TOKEN_SECRET: "" }],
    ["UPLOAD_SECRET", { UPLOAD_SECRET: "" }],
  ]) {
    const bad = await registry({ AUTH_HTPASSWD: HTPASSWD, AUTH_RULES: RULES, ...settings });
    try {
      // A token signed with what the key used to be derived from is worthless now: nothing is served.
      const forged = forgeToken("edge-registry-development-secret/token", "alice", bad.url.replace("http://", ""));
      for (const [path, init] of [
        ["/v2/", {}],
        ["/v2/alice/secret/manifests/v1", { headers: { authorization: `Bearer ${forged}` } }],
        ["/token", { headers: alice }],
      ]) {
        const res = await bad.fetch(path, init);
        assert.equal(res.status, 500, path);
        const body = await res.json();
        assert.equal(body.errors[0].code, "UNKNOWN");
        assert.match(body.errors[0].detail, new RegExp(`registry misconfigured: .*${missing} is not set`));
      }
    } finally {
      await bad.close();
    }
  }
  // An open registry may run on the development key, and says so.
  const open = await registry({ UPLOAD_SECRET: "", TOKEN_SECRET: "" });
  try {
    assert.equal((await open.fetch("/v2/")).status, 200);
    assert.ok(open.workerLogs.some((l) => l.includes("development key")), "the development key is announced");
  } finally {
    await open.close();
  }
});

function forgeToken(key, sub, aud) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const head = b64({ alg: "HS256", typ: "JWT" });
  const body = b64({ iss: "edge-registry", sub, aud, exp: now + 300, nbf: now, iat: now, access: [{ type: "repository", name: "alice/secret", actions: ["pull", "push"] }] });
  return `${head}.${body}.${createHmac("sha256", key).update(`${head}.${body}`).digest("base64url")}`;
}

test("row 3: the catalog names only what the caller may pull: bodies, Link headers and page sizes", async () => {
  const config = Buffer.from('{"architecture":"amd64","os":"linux","public":true}');
  const m = imageManifest({ digest: sha256(config), size: config.length }, []);
  for (const name of ["public/a", "public/b"]) {
    await pushBlobAs(alice, name, config);
    const res = await reg.fetch(`/v2/${name}/manifests/v1`, { method: "PUT", body: m, headers: { ...alice, "content-type": OCI_MANIFEST } });
    assert.equal(res.status, 201);
  }
  const seen = [];
  let path = "/v2/_catalog?n=1";
  for (let i = 0; path && i < 10; i++) {
    const res = await reg.fetch(path);
    assert.equal(res.status, 200);
    const link = res.headers.get("link");
    const { repositories } = await res.json();
    assert.equal(repositories.length, 1, `page ${i} is full: ${JSON.stringify(repositories)}`);
    seen.push(...repositories);
    for (const hidden of ["alice/", "bob/"]) assert.ok(!(link ?? "").includes(encodeURIComponent(hidden)) && !(link ?? "").includes(hidden), link);
    path = link && link.match(/<([^>]+)>/)[1];
  }
  assert.deepEqual(seen, ["public/a", "public/b"]);
  // bob sees his own; a page of 10 holds exactly what he may pull.
  const mine = await (await reg.fetch("/v2/_catalog?n=10", { headers: bob })).json();
  assert.ok(mine.repositories.every((n) => n.startsWith("bob/")), JSON.stringify(mine));
});

// --- the mirror trusts no upstream ---

test("row 6: a blob stored for a tenant is never linked into a mirrored repository on an upstream's 200", async () => {
  const digest = sha256(secret.layer);
  for (let i = 0; i < 2; i++) {
    const res = await reg.fetch(`/v2/mirror/anything/blobs/${digest}`);
    const bytes = await res.arrayBuffer().then(Buffer.from, () => null);
    assert.ok(!bytes || !bytes.equals(secret.layer), "alice's bytes never leave through the mirror");
    assert.ok(!bytes || bytes.length < 5, "nor the upstream's wrong bytes, whole");
  }
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(await reg.keys("repositories/mirror/"), [], "nothing linked");
});

test("row 7: redirects only to https or trusted origins, streamed bytes verified, pages on the upstream's origin", async () => {
  servers.state.redirect = true;
  const digest = sha256(randomBytes(11));
  try {
    // To plain http on another origin, not listed: refused, the other origin never asked.
    const before = servers.state.otherLog.length;
    const refused = await reg.fetch(`/v2/mirror/r/blobs/${digest}`);
    assert.equal(refused.status, 503);
    assert.equal(await errorCode(refused), "UNAVAILABLE");
    assert.deepEqual(servers.state.otherLog.slice(before), []);
    // A listed origin is followed; its bytes are not the digest's: the response is cut short.
    const res = await reg.fetch(`/v2/trusted/r/blobs/${digest}`);
    assert.equal(res.status, 200);
    await assert.rejects(res.arrayBuffer(), "never a complete body of other bytes");
  } finally {
    servers.state.redirect = false;
  }
  // The upstream's tags Link names another origin: not followed.
  const before = servers.state.otherLog.length;
  const tags = await reg.fetch("/v2/mirror/r/tags/list");
  assert.equal(tags.status, 200);
  assert.deepEqual((await tags.json()).tags, ["a"]);
  assert.deepEqual(servers.state.otherLog.slice(before), []);
});

test("row 8: the upstream's credentials never go to a realm on another origin over plain http", async () => {
  const before = servers.state.otherLog.length;
  const res = await reg.fetch("/v2/creds/locked/manifests/latest");
  assert.equal(res.status, 503);
  assert.deepEqual(servers.state.otherLog.slice(before), [], "the realm elsewhere was not asked at all");
});

// --- authentication ---

async function tokenFor(headers, ...scopes) {
  const q = new URLSearchParams(scopes.map((s) => ["scope", s]));
  const res = await reg.fetch(`/token?${q}`, { headers });
  assert.equal(res.status, 200);
  return (await res.json()).token;
}

test("row 9: administration needs the admin scope; an anonymous token is not a login", async () => {
  const pullOnly = await tokenFor(alice, "repository:public/app:pull");
  for (const [method, path] of [["POST", "/admin/lifecycle?dry_run=true"], ["GET", "/admin/stats"]]) {
    const res = await reg.fetch(path, { method, headers: { authorization: `Bearer ${pullOnly}` } });
    assert.equal(res.status, 401, path);
    assert.match(res.headers.get("www-authenticate"), /scope="registry:admin:\*"/);
  }
  const admin = await tokenFor(alice, "registry:admin:*");
  assert.equal((await reg.fetch("/admin/stats", { headers: { authorization: `Bearer ${admin}` } })).status, 200);
  // bob asks for it and is not granted it.
  const bobs = await tokenFor(bob, "registry:admin:*");
  assert.equal((await reg.fetch("/admin/stats", { headers: { authorization: `Bearer ${bobs}` } })).status, 403);
  const anonymous = await tokenFor({}, "repository:public/a:pull");
  const login = await reg.fetch("/v2/", { headers: { authorization: `Bearer ${anonymous}` } });
  assert.equal(login.status, 401);
  assert.equal((await reg.fetch("/v2/", { headers: { authorization: `Bearer ${await tokenFor(bob)}` } })).status, 200);
});

test("row 10: an unknown user costs as much bcrypt as a known one with a wrong password", async () => {
  const attempt = async (user) => {
    const started = process.hrtime.bigint();
    const res = await reg.fetch("/v2/", { headers: { authorization: "Basic " + Buffer.from(`${user}:wrong`).toString("base64") } });
    assert.equal(res.status, 401);
    return Number(process.hrtime.bigint() - started) / 1e6;
  };
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const known = [], unknown = [];
  for (let i = 0; i < 7; i++) {
    known.push(await attempt("carol"));
    unknown.push(await attempt(`mallory${i}`));
  }
  console.log(`wrong password: known user ${median(known).toFixed(0)} ms, unknown user ${median(unknown).toFixed(0)} ms`);
  // Both pay carol's cost-10 bcrypt (tens of ms); a cost-5 decoy was 8x cheaper.
  assert.ok(median(unknown) > median(known) * 0.6, `${median(unknown)} vs ${median(known)} ms`);
});

test("row 11: ?tag= is capped at 50: past it, 400 TAG_INVALID and nothing written", async () => {
  const config = Buffer.from('{"architecture":"arm64","os":"linux"}');
  await pushBlobAs(bob, "bob/tags", config);
  const m = imageManifest({ digest: sha256(config), size: config.length }, []);
  const tags = (n) => Array.from({ length: n }, (_, i) => `tag=t${i}`).join("&");
  const res = await reg.fetch(`/v2/bob/tags/manifests/${sha256(m)}?${tags(51)}`, { method: "PUT", body: m, headers: { ...bob, "content-type": OCI_MANIFEST } });
  assert.equal(res.status, 400);
  assert.equal(await errorCode(res), "TAG_INVALID");
  assert.equal(storageOps(res)["r2-a"], 0);
  assert.equal((await reg.fetch(`/v2/bob/tags/manifests/${sha256(m)}`, { headers: bob })).status, 404);
  const ok = await reg.fetch(`/v2/bob/tags/manifests/${sha256(m)}?${tags(50)}`, { method: "PUT", body: m, headers: { ...bob, "content-type": OCI_MANIFEST } });
  assert.equal(ok.status, 201);
  assert.equal(ok.headers.get("oci-tag").split(",").length, 50);
});

// A raw request with the Host of the caller's choosing.
function withHost(url, path, host, headers = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request({ host: u.hostname, port: u.port, path, headers: { host, ...headers } }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

test("row 12: realm and audience come from REGISTRY_ORIGIN, never from the caller's Host", async () => {
  const origin = "https://registry.example.com";
  const r = await registry({ AUTH_HTPASSWD: HTPASSWD, AUTH_RULES: RULES, REGISTRY_ORIGIN: origin });
  try {
    const challenge = await withHost(r.url, "/v2/", "evil.example");
    assert.equal(challenge.status, 401);
    assert.equal(challenge.headers["www-authenticate"], `Bearer realm="${origin}/token",service="registry.example.com"`);
    const token = await withHost(r.url, "/token?scope=repository:alice/x:pull", "evil.example", alice);
    const claims = JSON.parse(Buffer.from(JSON.parse(token.body).token.split(".")[1], "base64url"));
    assert.equal(claims.aud, "registry.example.com");
  } finally {
    await r.close();
  }
  // Unset, the Host is all there is: said once in the log.
  assert.ok(reg.workerLogs.some((l) => l.includes("REGISTRY_ORIGIN is not set")));
});

test("row 13: an upload's status and cancel need its signed URL", async () => {
  const start = await reg.fetch("/v2/bob/up/blobs/uploads/", { method: "POST", headers: bob });
  const first = Buffer.from("still ");
  const patched = await reg.fetch(start.headers.get("location"), { method: "PATCH", body: first, headers: { ...bob, "content-range": "0-5" } });
  assert.equal(patched.status, 202);
  const location = patched.headers.get("location");
  const bare = location.split("?")[0];
  for (const method of ["GET", "DELETE"]) {
    const res = await reg.fetch(bare, { method, headers: bob });
    assert.equal(res.status, 404, method);
    assert.equal(await errorCode(res), "BLOB_UPLOAD_UNKNOWN");
    assert.equal(res.headers.get("location"), null, "no signed URL handed out");
  }
  const rest = Buffer.from("mine");
  const whole = Buffer.concat([first, rest]);
  const put = await reg.fetch(`${location}&digest=${sha256(whole)}`, { method: "PUT", body: rest, headers: { ...bob, "content-range": "6-9" } });
  assert.equal(put.status, 201, "the upload was neither read nor cancelled");
});

// --- what held, and must keep holding ---

test("held: forged, alg=none, expired and wrong-audience tokens; mounts need pull on from; upload URLs stay put; path tricks", async () => {
  const service = reg.url.replace("http://", "");
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const claims = (over) => ({ iss: "edge-registry", sub: "bob", aud: service, exp: now + 300, nbf: now, iat: now, access: [{ type: "repository", name: "alice/secret", actions: ["pull"] }], ...over });
  const none = `${b64({ alg: "none", typ: "JWT" })}.${b64(claims({}))}.`;
  const forged = forgeToken("guess", "alice", service);
  for (const t of [none, forged]) {
    const res = await reg.fetch(`/v2/alice/secret/manifests/v1`, { headers: { authorization: `Bearer ${t}` } });
    assert.equal(res.status, 401);
  }
  const key = "test-token-secret";
  const sign = (c) => {
    const hp = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(c)}`;
    return `${hp}.${createHmac("sha256", key).update(hp).digest("base64url")}`;
  };
  assert.equal((await reg.fetch("/v2/alice/secret/manifests/v1", { headers: { authorization: `Bearer ${sign(claims({ sub: "alice" }))}` } })).status, 200, "a token we signed works");
  for (const c of [claims({ sub: "alice", exp: now - 3600, nbf: now - 4000 }), claims({ sub: "alice", aud: "elsewhere" })]) {
    assert.equal((await reg.fetch("/v2/alice/secret/manifests/v1", { headers: { authorization: `Bearer ${sign(c)}` } })).status, 401);
  }
  // bob may not mount from alice's repository: an upload starts instead, nothing is linked.
  const mount = await reg.fetch(`/v2/bob/m/blobs/uploads/?mount=${sha256(secret.layer)}&from=alice/secret`, { method: "POST", headers: bob });
  assert.equal(mount.status, 202);
  assert.equal((await reg.fetch(`/v2/bob/m/blobs/${sha256(secret.layer)}`, { headers: bob })).status, 404);
  // An upload URL moved to another repository is refused.
  const start = await reg.fetch("/v2/bob/a/blobs/uploads/", { method: "POST", headers: bob });
  const moved = start.headers.get("location").replace("/v2/bob/a/", "/v2/bob/b/");
  const bytes = Buffer.from("moved");
  assert.equal((await reg.fetch(`${moved}&digest=${sha256(bytes)}`, { method: "PUT", body: bytes, headers: bob })).status, 404);
  for (const path of ["/v2/bob/../alice/secret/manifests/v1", "/v2/bob%2F..%2Falice/secret/manifests/v1", "/v2/alice%2Fsecret/manifests/v1"]) {
    const res = await reg.fetch(path, { headers: bob });
    assert.ok([400, 403, 404].includes(res.status), `${path}: ${res.status}`);
  }
});
