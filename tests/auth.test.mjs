// Access control on the emulator: the 401 challenge, the token endpoint, Basic on every request,
// per-repository rules (403 DENIED), anonymous pull, catalog filtering, mount checks, read-only
// mode; then real clients: podman login/push/pull and skopeo --creds, with a pull-only user
// whose push is refused.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes, createHmac } from "node:crypto";
import { registry, sha256, errorCode, imageManifest, HTPASSWD, basicAuth } from "./helpers.mjs";
import { skipClients, sh, buildImage } from "./tools.mjs";

const RULES = JSON.stringify([
  { user: "alice", repos: ["alice/*", "public/*"], actions: ["pull", "push", "delete"] },
  { user: "bob", repos: ["alice/*", "public/*"], actions: ["pull"] },
  { user: "admin", repos: ["*"], actions: ["pull", "push", "delete"] },
  { user: "anonymous", repos: ["public/*"], actions: ["pull"] },
]);

let reg, service;
before(async () => {
  reg = await registry({ AUTH_HTPASSWD: HTPASSWD, AUTH_RULES: RULES, TOKEN_SECRET: "token-test-secret", ADMIN_USERS: "admin" });
  service = reg.url.replace("http://", "");
});
after(async () => {
  await reg.close();
});

const basic = (user) => ({ authorization: basicAuth(user) });
const bearer = (token) => ({ authorization: `Bearer ${token}` });

async function token(user, ...scopes) {
  const q = new URLSearchParams([["service", service], ...scopes.map((s) => ["scope", s])]);
  const res = await reg.fetch(`/token?${q}`, { headers: user ? basic(user) : {} });
  assert.equal(res.status, 200, `token for ${user}`);
  return res.json();
}

const claims = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString());

// Pushes a one-layer image to `name:tag` with the given auth headers; returns the last response.
async function pushImage(name, tag, headers) {
  const blobs = [randomBytes(1000), Buffer.from('{"architecture":"amd64","os":"linux"}')];
  for (const b of blobs) {
    const res = await reg.fetch(`/v2/${name}/blobs/uploads/?digest=${sha256(b)}`, { method: "POST", body: b, headers });
    if (res.status !== 201) return res;
  }
  const m = imageManifest({ digest: sha256(blobs[1]), size: blobs[1].length }, [{ digest: sha256(blobs[0]), size: 1000 }]);
  return reg.fetch(`/v2/${name}/manifests/${tag}`, { method: "PUT", body: m, headers: { ...headers, "content-type": "application/vnd.oci.image.manifest.v1+json" } });
}

test("anonymous /v2/ gets the Bearer challenge; Basic is accepted; bad credentials are 401", async () => {
  const res = await reg.fetch("/v2/");
  assert.equal(res.status, 401);
  assert.equal(await errorCode(res), "UNAUTHORIZED");
  assert.equal(res.headers.get("www-authenticate"), `Bearer realm="${reg.url}/token",service="${service}"`);
  assert.equal((await reg.fetch("/v2/", { headers: basic("alice") })).status, 200);
  const wrong = await reg.fetch("/v2/", { headers: { authorization: "Basic " + Buffer.from("alice:nope").toString("base64") } });
  assert.equal(wrong.status, 401);
  assert.equal(await errorCode(wrong), "UNAUTHORIZED");
  const unknown = await reg.fetch("/v2/", { headers: { authorization: "Basic " + Buffer.from("mallory:x").toString("base64") } });
  assert.equal(unknown.status, 401);
  assert.equal((await reg.fetch("/v2/", { headers: { authorization: "Digest x" } })).status, 401);
});

test("token endpoint grants the requested scopes narrowed by the rules", async () => {
  const t = await token("alice", "repository:alice/app:pull,push", "repository:secret/x:pull");
  assert.equal(t.token, t.access_token);
  assert.equal(t.expires_in, 300);
  assert.ok(!Number.isNaN(Date.parse(t.issued_at)));
  const c = claims(t.token);
  assert.equal(c.sub, "alice");
  assert.equal(c.aud, service);
  assert.deepEqual(c.access, [{ type: "repository", name: "alice/app", actions: ["pull", "push"] }]);
  const b = claims((await token("bob", "repository:alice/app:pull,push,delete")).token);
  assert.deepEqual(b.access, [{ type: "repository", name: "alice/app", actions: ["pull"] }]);
  const anon = claims((await token(null, "repository:public/x:pull,push", "repository:alice/app:pull")).token);
  assert.equal(anon.sub, "");
  assert.deepEqual(anon.access, [{ type: "repository", name: "public/x", actions: ["pull"] }]);
  const bad = await reg.fetch(`/token?service=${service}`, { headers: { authorization: "Basic " + Buffer.from("alice:nope").toString("base64") } });
  assert.equal(bad.status, 401);
  assert.equal(await errorCode(bad), "UNAUTHORIZED");
});

test("bearer tokens: push with the granted scope, 401 to widen a narrow token, 403 beyond the rules", async () => {
  const push = (await token("alice", "repository:alice/app:pull,push")).token;
  const res = await pushImage("alice/app", "v1", bearer(push));
  assert.equal(res.status, 201);
  assert.equal((await reg.fetch("/v2/alice/app/manifests/v1", { headers: bearer(push) })).status, 200);
  // A pull-only token of a user who may push: 401 with the scope to ask for.
  const pullOnly = (await token("alice", "repository:alice/app:pull")).token;
  const narrow = await pushImage("alice/app", "v2", bearer(pullOnly));
  assert.equal(narrow.status, 401);
  assert.equal(narrow.headers.get("www-authenticate"), `Bearer realm="${reg.url}/token",service="${service}",scope="repository:alice/app:pull,push"`);
  // Bob may only pull: his token cannot push, and asking again would not help.
  const bobs = (await token("bob", "repository:alice/app:pull,push")).token;
  assert.equal((await reg.fetch("/v2/alice/app/manifests/v1", { headers: bearer(bobs) })).status, 200);
  const denied = await pushImage("alice/app", "v3", bearer(bobs));
  assert.equal(denied.status, 403);
  assert.equal(await errorCode(denied), "DENIED");
  // Not only the first blob POST: a manifest PUT of blobs that are there is refused too.
  const existing = await (await reg.fetch("/v2/alice/app/manifests/v1", { headers: bearer(push) })).arrayBuffer();
  const put = await reg.fetch("/v2/alice/app/manifests/bobs", { method: "PUT", body: existing, headers: { ...bearer(bobs), "content-type": "application/vnd.oci.image.manifest.v1+json" } });
  assert.equal(put.status, 403);
  assert.equal(await errorCode(put), "DENIED");
  assert.equal((await reg.fetch("/v2/alice/app/manifests/bobs", { headers: bearer(push) })).status, 404);
  // A token for one repository does not open another.
  assert.equal((await reg.fetch("/v2/public/x/tags/list", { headers: bearer(push) })).status, 401);
  // Forged, tampered and foreign tokens.
  const [h, p, s] = push.split(".");
  const widened = Buffer.from(JSON.stringify({ ...claims(push), access: [{ type: "repository", name: "secret/x", actions: ["pull", "push"] }] })).toString("base64url");
  for (const bad of ["garbage", `${h}.${widened}.${s}`, `${h}.${p}.${"A".repeat(s.length)}`]) {
    const r = await reg.fetch("/v2/alice/app/manifests/v1", { headers: bearer(bad) });
    assert.equal(r.status, 401, bad.slice(0, 20));
    assert.equal(await errorCode(r), "UNAUTHORIZED");
  }
});

// The token the registry would have signed with `change` applied to `jwt`'s claims
// (HS256 with the TOKEN_SECRET above): a token as it will be once it has expired.
function resigned(jwt, change) {
  const header = jwt.split(".")[0];
  const c = claims(jwt);
  change(c);
  const payload = Buffer.from(JSON.stringify(c)).toString("base64url");
  const signature = createHmac("sha256", "token-test-secret").update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${signature}`;
}

test("a token that expires between two requests of one push: 401 with the scope, a new token, the upload goes on", async () => {
  const scope = "repository:alice/expiring:pull,push";
  const { token: fresh } = await token("alice", scope);
  const expired = resigned(fresh, (c) => {
    c.exp = Math.floor(Date.now() / 1000) - 3600;
    c.nbf = c.iat = c.exp - 300;
  });
  assert.equal((await reg.fetch("/v2/", { headers: bearer(expired) })).status, 401, "the re-signed token is expired, not malformed");
  const blob = randomBytes(300_000);
  const start = await reg.fetch("/v2/alice/expiring/blobs/uploads/", { method: "POST", headers: bearer(fresh) });
  assert.equal(start.status, 202);
  const first = await reg.fetch(start.headers.get("location"), {
    method: "PATCH",
    body: blob.subarray(0, 100_000),
    headers: { ...bearer(fresh), "content-range": "0-99999" },
  });
  assert.equal(first.status, 202);
  const next = first.headers.get("location");
  // The token ran out: the chunk is refused with the challenge naming what to ask for.
  const refused = await reg.fetch(next, { method: "PATCH", body: blob.subarray(100_000), headers: { ...bearer(expired), "content-range": "100000-299999" } });
  assert.equal(refused.status, 401);
  assert.equal(await errorCode(refused), "UNAUTHORIZED");
  assert.equal(
    refused.headers.get("www-authenticate"),
    `Bearer realm="${reg.url}/token",service="${service}",scope="repository:alice/expiring:pull,push",error="invalid_token"`,
  );
  // A new token: the same upload carries on from where it was.
  const { token: renewed } = await token("alice", scope);
  const status = await reg.fetch(next, { headers: bearer(renewed) });
  assert.equal(status.status, 204);
  assert.equal(status.headers.get("range"), "0-99999");
  const second = await reg.fetch(next, { method: "PATCH", body: blob.subarray(100_000), headers: { ...bearer(renewed), "content-range": "100000-299999" } });
  assert.equal(second.status, 202);
  const done = await reg.fetch(`${second.headers.get("location")}&digest=${sha256(blob)}`, { method: "PUT", headers: bearer(renewed) });
  assert.equal(done.status, 201);
  const back = await reg.fetch(`/v2/alice/expiring/blobs/${sha256(blob)}`, { headers: bearer(renewed) });
  assert.ok(Buffer.from(await back.arrayBuffer()).equals(blob));
});

test("Basic on every request, per-repository rules, anonymous pull of public repositories", async () => {
  assert.equal((await pushImage("public/x", "v1", basic("alice"))).status, 201);
  assert.equal((await pushImage("secret/x", "v1", basic("admin"))).status, 201);
  assert.equal((await pushImage("alice/app", "v1", basic("alice"))).status, 201);
  // Bob: pull where allowed, 403 to push or delete, 403 to pull elsewhere.
  assert.equal((await reg.fetch("/v2/public/x/manifests/v1", { headers: basic("bob") })).status, 200);
  const bobPush = await pushImage("public/x", "v2", basic("bob"));
  assert.equal(bobPush.status, 403);
  assert.equal(await errorCode(bobPush), "DENIED");
  assert.equal((await reg.fetch("/v2/public/x/manifests/v1", { method: "DELETE", headers: basic("bob") })).status, 403);
  assert.equal((await reg.fetch("/v2/secret/x/tags/list", { headers: basic("bob") })).status, 403);
  // Anonymous: pull public, 401 with a scope elsewhere and for pushes.
  const anonPull = await reg.fetch("/v2/public/x/manifests/v1");
  assert.equal(anonPull.status, 200);
  const anonSecret = await reg.fetch("/v2/secret/x/manifests/v1");
  assert.equal(anonSecret.status, 401);
  assert.match(anonSecret.headers.get("www-authenticate"), /scope="repository:secret\/x:pull"$/);
  const anonPush = await reg.fetch("/v2/public/x/blobs/uploads/", { method: "POST" });
  assert.equal(anonPush.status, 401);
  assert.match(anonPush.headers.get("www-authenticate"), /scope="repository:public\/x:pull,push"$/);
  // Catalog: only what the caller may pull.
  // (Other tests may add repositories: check what each caller may and may not see.)
  const catalog = async (headers) => (await (await reg.fetch("/v2/_catalog", { headers })).json()).repositories;
  const admins = await catalog(basic("admin"));
  for (const r of ["alice/app", "public/x", "secret/x"]) assert.ok(admins.includes(r), r);
  const bobs = await catalog(basic("bob"));
  assert.ok(bobs.includes("alice/app") && bobs.includes("public/x"));
  assert.ok(bobs.every((r) => r.startsWith("alice/") || r.startsWith("public/")), `bob sees only his: ${bobs}`);
  const anons = await catalog({});
  assert.ok(anons.includes("public/x"));
  assert.ok(anons.every((r) => r.startsWith("public/")), `anonymous sees only public/*: ${anons}`);
  const bobToken = (await token("bob", "registry:catalog:*")).token;
  assert.deepEqual(await catalog(bearer(bobToken)), bobs);
  // Mount: alice may push to alice/*, but not read secret/x, so she gets an upload, not a mount.
  const layer = (await (await reg.fetch("/v2/secret/x/manifests/v1", { headers: basic("admin") })).json()).layers[0].digest;
  const mount = await reg.fetch(`/v2/alice/app/blobs/uploads/?mount=${layer}&from=secret/x`, { method: "POST", headers: basic("alice") });
  assert.equal(mount.status, 202);
  const allowed = await reg.fetch(`/v2/alice/other/blobs/uploads/?mount=${layer}&from=secret/x`, { method: "POST", headers: basic("admin") });
  assert.equal(allowed.status, 201);
});

test("the lifecycle endpoint is for administrators only", async () => {
  const run = (headers) => reg.fetch("/admin/lifecycle?dry_run=true", { method: "POST", headers });
  const anon = await run({});
  assert.equal(anon.status, 401);
  assert.equal(await errorCode(anon), "UNAUTHORIZED");
  const bob = await run(basic("bob"));
  assert.equal(bob.status, 403);
  assert.equal(await errorCode(bob), "DENIED");
  const admin = await run(basic("admin"));
  assert.equal(admin.status, 200);
  assert.equal((await admin.json()).dry_run, true);
});

test("read-only mode refuses every write with 405 UNSUPPORTED and still serves pulls", async () => {
  const ro = await registry({ READ_ONLY: "true" });
  try {
    assert.equal((await ro.fetch("/v2/")).status, 200);
    const post = await ro.fetch("/v2/a/blobs/uploads/", { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal(await errorCode(post), "UNSUPPORTED");
    const put = await ro.fetch("/v2/a/manifests/v1", { method: "PUT", body: "{}", headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } });
    assert.equal(put.status, 405);
    assert.equal((await ro.fetch(`/v2/a/blobs/${sha256(Buffer.from("x"))}`, { method: "DELETE" })).status, 405);
    assert.equal(await errorCode(await ro.fetch("/v2/a/manifests/v1")), "MANIFEST_UNKNOWN");
  } finally {
    await ro.close();
  }
});

test("podman login, push and pull; a pull-only user's push and delete are refused; skopeo --creds and delete", { skip: skipClients }, async () => {
  const work = mkdtempSync(join(tmpdir(), "auth-clients-"));
  try {
    buildImage(work, join(work, "img"), "v1", "auth");
    const storage = ["--root", join(work, "root"), "--runroot", join(work, "run"), "--storage-driver", "vfs"];
    const authfile = (user) => ["--authfile", join(work, `${user}.json`)];
    const podman = (user, ...args) => sh("podman", [...storage, ...args.slice(0, 1), ...authfile(user), ...args.slice(1)]);
    const host = service;
    podman("alice", "login", "--tls-verify=false", "-u", "alice", "-p", "alice-pw", host);
    sh("skopeo", ["copy", "--dest-tls-verify=false", "--dest-creds", "alice:alice-pw", `oci:${join(work, "img")}:v1`, `docker://${host}/alice/podman:v1`]);
    podman("alice", "pull", "--tls-verify=false", `${host}/alice/podman:v1`);
    podman("alice", "push", "--tls-verify=false", `${host}/alice/podman:v1`, `${host}/alice/pushed:v2`);
    const tags = JSON.parse(sh("skopeo", ["list-tags", "--tls-verify=false", "--creds", "alice:alice-pw", `docker://${host}/alice/pushed`]));
    assert.deepEqual(tags.Tags, ["v2"]);
    // Listing tags without credentials is refused.
    assert.throws(() => sh("skopeo", ["list-tags", "--tls-verify=false", "--no-creds", `docker://${host}/alice/pushed`]), (e) => /unauthorized|authentication required/i.test(e.stderr));
    // Bob may pull alice/* but not push there.
    podman("bob", "login", "--tls-verify=false", "-u", "bob", "-p", "bob-pw", host);
    podman("bob", "pull", "--tls-verify=false", `${host}/alice/pushed:v2`);
    // The clients' own report of the registry's answer, on stderr: 403 DENIED to bob's pushes.
    const deniedOnStderr = (e) => /requested access to the resource is denied/i.test(e.stderr);
    assert.throws(() => podman("bob", "push", "--tls-verify=false", `${host}/alice/podman:v1`, `${host}/alice/bob:v1`), deniedOnStderr);
    assert.throws(
      () => sh("skopeo", ["copy", "--dest-tls-verify=false", "--dest-creds", "bob:bob-pw", `oci:${join(work, "img")}:v1`, `docker://${host}/alice/bob2:v1`]),
      deniedOnStderr,
    );
    // Without credentials, skopeo cannot read a private repository: 401.
    assert.throws(() => sh("skopeo", ["inspect", "--tls-verify=false", "--no-creds", `docker://${host}/alice/pushed:v2`]), (e) => /unauthorized|authentication required/i.test(e.stderr));
    // skopeo delete asks /token for `repository:<name>:*`: granted as every right the user
    // holds. Bob (pull only) is refused; alice deletes.
    const skopeoDelete = (user) => sh("skopeo", ["delete", "--tls-verify=false", "--creds", `${user}:${user}-pw`, `docker://${host}/alice/pushed:v2`]);
    assert.throws(() => skopeoDelete("bob"), deniedOnStderr);
    skopeoDelete("alice");
    const gone = sh("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", "admin:admin-pw", `${reg.url}/v2/alice/pushed/manifests/v2`]);
    assert.equal(gone, "404");
    // Nothing of bob's push landed. (curl: the event loop was blocked by the clients, so a
    // pooled connection of fetch may be stale.)
    const status = sh("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", "admin:admin-pw", `${reg.url}/v2/alice/bob/tags/list`]);
    assert.equal(status, "404");
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
