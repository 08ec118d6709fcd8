// The request log: one JSON line per request with method, route, repository, status, bytes,
// duration, storage operations, upstream answer and user, and never a credential, a token or
// an upload URL's signed state.
import { test } from "node:test";
import assert from "node:assert/strict";
import { registry, HTPASSWD, basicAuth, sha256, imageManifest } from "./helpers.mjs";

test("one line per request, with what happened and who asked, and no secret", async () => {
  const reg = await registry({ AUTH_HTPASSWD: HTPASSWD, AUTH_RULES: JSON.stringify([{ user: "alice", repos: ["alice/*"], actions: ["pull", "push", "delete"] }]) });
  try {
    const auth = { authorization: basicAuth("alice") };
    const config = Buffer.from('{"os":"linux"}');
    const post = await reg.fetch("/v2/alice/app/blobs/uploads/", { method: "POST", headers: auth });
    const location = post.headers.get("location");
    assert.match(location, /_state=/);
    const put = await reg.fetch(`${location}&digest=${sha256(config)}`, { method: "PUT", body: config, headers: auth });
    assert.equal(put.status, 201);
    const manifest = imageManifest({ digest: sha256(config), size: config.length }, []);
    const res = await reg.fetch("/v2/alice/app/manifests/v1", { method: "PUT", body: manifest, headers: { ...auth, "content-type": "application/vnd.oci.image.manifest.v1+json" } });
    assert.equal(res.status, 201);
    const token = await (await reg.fetch(`/token?service=${new URL(reg.url).host}&scope=repository:alice/app:pull`, { headers: auth })).json();
    assert.equal((await reg.fetch("/v2/alice/app/manifests/v1", { headers: { authorization: `Bearer ${token.token}` } })).status, 200);
    assert.equal((await reg.fetch("/v2/alice/app/manifests/nope", { headers: auth })).status, 404);
    assert.equal((await reg.fetch("/v2/alice/app/tags/list", { headers: { authorization: basicAuth("bob").replace(/.{4}$/, "AAAA") } })).status, 401);

    // Lines are written as responses go out; give the last one a moment to arrive.
    for (let i = 0; i < 50 && reg.requestLogs.length < 7; i++) await new Promise((r) => setTimeout(r, 20));
    const logs = reg.requestLogs;
    assert.equal(logs.length, 7, JSON.stringify(logs));
    const pushed = logs.find((l) => l.method === "PUT" && l.route === "manifest");
    assert.equal(pushed.repository, "alice/app");
    assert.equal(pushed.status, 201);
    assert.equal(pushed.user, "alice");
    assert.equal(pushed.bytes_in, manifest.length);
    assert.match(pushed.ops, /r2-a=\d+/);
    assert.equal(typeof pushed.duration_ms, "number");
    const pulled = logs.find((l) => l.method === "GET" && l.route === "manifest" && l.status === 200);
    assert.equal(pulled.user, "alice", "the token's user");
    assert.equal(pulled.bytes_out, manifest.length);
    const missing = logs.find((l) => l.status === 404);
    assert.equal(missing.error, "MANIFEST_UNKNOWN");
    const refused = logs.find((l) => l.status === 401);
    assert.equal(refused.error, "UNAUTHORIZED");
    assert.equal(refused.user, undefined);
    assert.deepEqual(logs.map((l) => l.route).sort(), ["manifest", "manifest", "manifest", "tags", "token", "upload", "upload"]);
    const text = JSON.stringify(logs);
    for (const secret of ["alice-pw", basicAuth("alice").slice(6), token.token, "_state", new URL(location, reg.url).searchParams.get("_state")]) {
      assert.ok(!text.includes(secret), `the log holds no ${secret.slice(0, 12)}…`);
    }
  } finally {
    await reg.close();
  }
});

test("with a metrics dataset bound, every request writes its data point without a failure", async () => {
  const reg = await registry({ METRICS_DATASET: "registry_requests" });
  try {
    assert.equal((await reg.fetch("/v2/")).status, 200);
    assert.equal((await reg.fetch("/v2/none/manifests/v1")).status, 404);
    for (let i = 0; i < 50 && reg.requestLogs.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(reg.requestLogs.length, 2);
    assert.deepEqual(reg.workerLogs.filter((l) => l.startsWith("metrics:")), [], "no write failed");
  } finally {
    await reg.close();
  }
});
