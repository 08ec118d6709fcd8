// The optional offload of huge blob downloads: with R2's S3 credentials configured, a GET of a
// blob past OFFLOAD_MIN_BYTES answers 307 to a presigned URL of R2's S3 API for that object
// (checked here by computing the SigV4 signature independently), after the repository link and
// the access checks; smaller blobs and HEADs are served as always. The emulator has no S3
// endpoint, so the URL itself is not followed.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { registry, sha256, HTPASSWD, basicAuth, assertFailsClosed } from "./helpers.mjs";

const SECRET = "r2-secret-access-key";
const settings = {
  OFFLOAD_MIN_BYTES: "1000000",
  OFFLOAD_TTL_SECONDS: "120",
  R2_S3_ENDPOINT: "https://acct.r2.cloudflarestorage.com",
  R2_BUCKET_NAME: "edge-registry-blobs",
  R2_ACCESS_KEY_ID: "AKIDTEST",
  R2_SECRET_ACCESS_KEY: SECRET,
};

let reg;
before(async () => {
  reg = await registry({
    ...settings,
    AUTH_HTPASSWD: HTPASSWD,
    AUTH_RULES: JSON.stringify([{ user: "alice", repos: ["alice/*"], actions: ["pull", "push", "delete"] }]),
  });
});
after(async () => reg?.close());

const alice = { authorization: basicAuth("alice") };

async function push(name, bytes) {
  const digest = sha256(bytes);
  const res = await reg.fetch(`/v2/${name}/blobs/uploads/?digest=${digest}`, { method: "POST", body: bytes, headers: alice });
  assert.equal(res.status, 201);
  return digest;
}

// SigV4 of a presigned GET, computed from the URL's own parameters with the secret.
function expectedSignature(url) {
  const u = new URL(url);
  const params = [...u.searchParams].filter(([k]) => k !== "X-Amz-Signature").sort(([a], [b]) => (a < b ? -1 : 1));
  const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  const query = params.map(([k, v]) => `${enc(k)}=${enc(v)}`).join("&");
  const canonical = `GET\n${u.pathname}\n${query}\nhost:${u.host}\n\nhost\nUNSIGNED-PAYLOAD`;
  const date = u.searchParams.get("X-Amz-Date");
  const scope = u.searchParams.get("X-Amz-Credential").split("/").slice(1).join("/");
  const toSign = `AWS4-HMAC-SHA256\n${date}\n${scope}\n${createHash("sha256").update(canonical).digest("hex")}`;
  let key = createHmac("sha256", `AWS4${SECRET}`).update(date.slice(0, 8)).digest();
  for (const part of ["auto", "s3", "aws4_request"]) key = createHmac("sha256", key).update(part).digest();
  return createHmac("sha256", key).update(toSign).digest("hex");
}

test("a huge blob's GET is a 307 to a presigned URL of its own object; small ones and HEADs are served", async () => {
  const big = Buffer.alloc(1_200_000, 7);
  const bigDigest = await push("alice/app", big);
  const small = Buffer.from("small blob");
  const smallDigest = await push("alice/app", small);

  const res = await reg.fetch(`/v2/alice/app/blobs/${bigDigest}`, { headers: alice });
  assert.equal(res.status, 307);
  assert.equal(res.headers.get("docker-content-digest"), bigDigest);
  assert.equal(res.headers.get("cache-control"), "no-store");
  const url = new URL(res.headers.get("location"));
  assert.equal(url.origin, "https://acct.r2.cloudflarestorage.com");
  const [, bucket, ...key] = url.pathname.split("/");
  assert.equal(bucket, "edge-registry-blobs");
  assert.ok((await reg.keys()).includes(key.join("/")), `${key.join("/")} is the blob's object`);
  assert.equal(url.searchParams.get("X-Amz-Expires"), "120");
  assert.equal(url.searchParams.get("X-Amz-SignedHeaders"), "host");
  assert.match(url.searchParams.get("X-Amz-Credential"), /^AKIDTEST\/\d{8}\/auto\/s3\/aws4_request$/);
  assert.equal(url.searchParams.get("X-Amz-Signature"), expectedSignature(url.href));

  const head = await reg.fetch(`/v2/alice/app/blobs/${bigDigest}`, { method: "HEAD", headers: alice });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-length"), String(big.length));
  const got = await reg.fetch(`/v2/alice/app/blobs/${smallDigest}`, { headers: alice });
  assert.equal(got.status, 200);
  assert.equal(await got.text(), "small blob");
});

test("never a URL for a blob the caller may not pull, or that the repository does not hold", async () => {
  const digest = await push("alice/secret", Buffer.alloc(1_100_000, 9));
  const anonymous = await reg.fetch(`/v2/alice/secret/blobs/${digest}`);
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.headers.get("location"), null);
  const bob = await reg.fetch(`/v2/alice/secret/blobs/${digest}`, { headers: { authorization: basicAuth("bob") } });
  assert.equal(bob.status, 403);
  assert.equal(bob.headers.get("location"), null);
  const elsewhere = await reg.fetch(`/v2/alice/other/blobs/${digest}`, { headers: alice });
  assert.equal(elsewhere.status, 404);
  assert.equal((await elsewhere.json()).errors[0].code, "BLOB_UNKNOWN");
});

test("an offload set up halfway fails closed", async () => {
  const { R2_SECRET_ACCESS_KEY, ...partial } = settings;
  await assertFailsClosed(partial);
});
