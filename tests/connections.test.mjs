// Every error answer leaves a keep-alive connection usable: for each refusal the registry makes
// before (or without) reading a request body, a client that sends the whole body and then reads
// receives the full answer, and its next request on the same connection is answered.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { registry, sha256, HTPASSWD, basicAuth } from "./helpers.mjs";
import { Connection } from "./keepalive.mjs";

const RULES = JSON.stringify([
  { user: "bob", repos: ["alice/*"], actions: ["pull"] },
  { user: "admin", repos: ["*"], actions: ["pull", "push", "delete"] },
]);
const basic = basicAuth;

let open, guarded;
before(async () => {
  open = await registry();
  // Access control on, and a request-body ceiling below every body sent here (413).
  guarded = await registry({ AUTH_HTPASSWD: HTPASSWD, AUTH_RULES: RULES, TOKEN_SECRET: "t", MAX_BODY_BYTES: "10000" });
});
after(async () => {
  await open.close();
  await guarded.close();
});

// A fresh upload's URL path (with its state token) in `name` on the open registry.
async function uploadPath(name) {
  const res = await open.fetch(`/v2/${name}/blobs/uploads/`, { method: "POST" });
  assert.equal(res.status, 202);
  return res.headers.get("location").replace(open.url, "");
}

// Each refusal: the registry, the request (built per body), and the answer expected.
const CASES = [
  ["400 bad repository name", () => open, async () => ({ method: "PUT", path: "/v2/Bad..Name/manifests/latest", headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } }), 400, "NAME_INVALID"],
  ["400 bad digest", () => open, async () => ({ method: "POST", path: "/v2/conn/a/blobs/uploads/?digest=sha256:nothex" }), 400, "DIGEST_INVALID"],
  ["400 bad Content-Range", () => open, async (len) => ({ method: "PATCH", path: await uploadPath("conn/b"), headers: { "content-range": `0-${len - 1}/xyz` } }), 400, "BLOB_UPLOAD_INVALID"],
  ["404 unknown upload", () => open, async () => ({ method: "PATCH", path: `/v2/conn/c/blobs/uploads/${randomUUID()}?_state=forged` }), 404, "BLOB_UPLOAD_UNKNOWN"],
  ["404 unknown repository route", () => open, async () => ({ method: "PUT", path: "/v2/conn/d/unknown/thing" }), 404, "NAME_UNKNOWN"],
  ["405 method not allowed", () => open, async () => ({ method: "POST", path: "/v2/conn/e/manifests/latest" }), 405, "UNSUPPORTED"],
  ["416 chunk out of order", () => open, async (len) => ({ method: "PATCH", path: await uploadPath("conn/f"), headers: { "content-range": `100-${100 + len - 1}` } }), 416, "RANGE_INVALID"],
  ["401 no credentials", () => guarded, async () => ({ method: "POST", path: "/v2/alice/app/blobs/uploads/?digest=" + sha256(Buffer.from("x")) }), 401, "UNAUTHORIZED"],
  ["403 no push right", () => guarded, async () => ({ method: "POST", path: "/v2/alice/app/blobs/uploads/?digest=" + sha256(Buffer.from("x")), headers: { authorization: basic("bob") } }), 403, "DENIED"],
  ["413 body over MAX_BODY_BYTES", () => guarded, async () => ({ method: "POST", path: "/v2/alice/app/blobs/uploads/?digest=" + sha256(Buffer.from("x")), headers: { authorization: basic("admin") } }), 413, "SIZE_INVALID"],
];

// The second request on the connection: the registry's base endpoint.
async function followUp(conn, reg) {
  const headers = reg === guarded ? { authorization: basic("admin") } : {};
  const res = await conn.request("GET", "/v2/", { headers });
  assert.equal(res.status, 200, "the next request on the same connection is answered");
}

for (const size of [20_000, 1_000_000, 10_000_000]) {
  for (const [label, reg, make, status, code] of CASES) {
    test(`${label}, ${size} byte body: whole answer, then the connection still works`, async () => {
      const body = randomBytes(size);
      const { method, path, headers } = await make(size);
      const conn = await Connection.open(reg().url);
      try {
        const res = await conn.request(method, path, { headers, body });
        assert.equal(res.sendError, null, "the whole body was sent");
        assert.equal(res.status, status);
        assert.equal(res.headers["content-type"], "application/json");
        assert.equal(JSON.parse(res.body).errors[0].code, code);
        await followUp(conn, reg());
      } finally {
        conn.close();
      }
    });
  }
}

test("a body just over the default 100 MB ceiling: 413 is read, the connection still works", async () => {
  const body = Buffer.alloc(120_000_000, 7);
  const conn = await Connection.open(open.url);
  try {
    const res = await conn.request("POST", "/v2/conn/big/blobs/uploads/?digest=" + sha256(Buffer.from("x")), { body });
    assert.equal(res.sendError, null);
    assert.equal(res.status, 413);
    assert.equal(JSON.parse(res.body).errors[0].code, "SIZE_INVALID");
    await followUp(conn, open);
  } finally {
    conn.close();
  }
});

test("a successful PATCH and a HEAD keep the connection too", async () => {
  const conn = await Connection.open(open.url);
  try {
    const body = randomBytes(1_000_000);
    const res = await conn.request("PATCH", await uploadPath("conn/ok"), { body, headers: { "content-range": `0-${body.length - 1}` } });
    assert.equal(res.status, 202);
    assert.equal(res.headers.range, `0-${body.length - 1}`);
    const head = await conn.request("HEAD", "/v2/conn/ok/blobs/" + sha256(body));
    assert.equal(head.status, 404);
    await followUp(conn, open);
  } finally {
    conn.close();
  }
});
