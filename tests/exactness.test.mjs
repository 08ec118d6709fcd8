// Exact to the spec's last case, over real HTTP on the emulator: digests of either registered
// algorithm without a hint, every manifest the spec lets a registry accept, tag parameters,
// garbage in (always a 4xx with the JSON body), a manifest that tries to fan out, and an upload
// whose worker died mid-chunk.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { registry, sha256, sha512, errorCode, pushBlob, imageManifest, putManifest, streamOf, OCI_MANIFEST, OCI_INDEX } from "./helpers.mjs";

let reg;
// A 10 s upload lease: long enough to outlive an emulator restart, short enough to wait out.
before(async () => (reg = await registry({ UPLOAD_LEASE_SECONDS: "10" })));
after(async () => reg.close());

const post = async (name) => {
  const res = await reg.fetch(`/v2/${name}/blobs/uploads/`, { method: "POST" });
  assert.equal(res.status, 202);
  return res.headers.get("location");
};
const withDigest = (loc, digest) => `${loc}${loc.includes("?") ? "&" : "?"}digest=${digest}`;

async function readBlob(name, digest) {
  const res = await reg.fetch(`/v2/${name}/blobs/${digest}`);
  assert.equal(res.status, 200, `GET ${name}@${digest}`);
  assert.equal(res.headers.get("docker-content-digest"), digest);
  return Buffer.from(await res.arrayBuffer());
}

test("sha512 without a hint: monolithic, chunked, streamed, empty and {} blobs, then a mount", async () => {
  const name = "exact/sha512";
  const cases = {
    monolithic: async (data) => {
      const res = await reg.fetch(withDigest(await post(name), sha512(data)), { method: "PUT", body: data });
      return res;
    },
    chunked: async (data) => {
      let loc = await post(name);
      const cut = 6 * 1024 * 1024;
      let res = await reg.fetch(loc, { method: "PATCH", body: data.subarray(0, cut), headers: { "content-range": `0-${cut - 1}` } });
      assert.equal(res.status, 202);
      res = await reg.fetch(res.headers.get("location"), { method: "PATCH", body: data.subarray(cut), headers: { "content-range": `${cut}-${data.length - 1}` } });
      assert.equal(res.status, 202);
      loc = res.headers.get("location");
      return reg.fetch(withDigest(loc, sha512(data)), { method: "PUT" });
    },
    streamed: async (data) => {
      let res = await reg.fetch(await post(name), { method: "PATCH", body: streamOf(data), duplex: "half" });
      assert.equal(res.status, 202);
      assert.equal(res.headers.get("range"), `0-${data.length - 1}`);
      return reg.fetch(withDigest(res.headers.get("location"), sha512(data)), { method: "PUT" });
    },
    empty: async (data) => reg.fetch(withDigest(await post(name), sha512(data)), { method: "PUT" }),
  };
  const inputs = { monolithic: randomBytes(300_000), chunked: randomBytes(6 * 1024 * 1024 + 12345), streamed: randomBytes(2_000_000), empty: Buffer.alloc(0) };
  for (const [kind, send] of Object.entries(cases)) {
    const data = inputs[kind];
    const res = await send(data);
    assert.equal(res.status, 201, `${kind}: ${await res.clone().text()}`);
    assert.equal(res.headers.get("docker-content-digest"), sha512(data), kind);
    assert.deepEqual(await readBlob(name, sha512(data)), data, kind);
  }
  // The empty JSON blob, as artifacts use for their config.
  const emptyJson = Buffer.from("{}");
  assert.equal((await cases.monolithic(emptyJson)).status, 201);
  assert.deepEqual(await readBlob(name, sha512(emptyJson)), emptyJson);
  // A wrong sha512 is DIGEST_INVALID, and the upload is gone.
  const loc = await post(name);
  let res = await reg.fetch(withDigest(loc, sha512(Buffer.from("other"))), { method: "PUT", body: Buffer.from("content") });
  assert.equal(res.status, 400);
  assert.equal(await errorCode(res), "DIGEST_INVALID");
  assert.equal((await reg.fetch(loc)).status, 404);
  // Cross-repository mount of a sha512 blob.
  const d = sha512(inputs.monolithic);
  res = await reg.fetch(`/v2/exact/mounted/blobs/uploads/?mount=${d}&from=${name}`, { method: "POST" });
  assert.equal(res.status, 201);
  assert.deepEqual(await readBlob("exact/mounted", d), inputs.monolithic);
});

test("manifests by sha512: PUT, GET by digest, tag parameters, referrers of a sha512 subject", async () => {
  const name = "exact/m512";
  const config = await pushBlob(reg, name, Buffer.from('{"architecture":"amd64","os":"linux"}'));
  const layer = await pushBlob(reg, name, randomBytes(1000));
  const m = imageManifest(config, [layer]);
  const d = sha512(m);
  let res = await reg.fetch(`/v2/${name}/manifests/${d}?tag=v1&tag=stable`, { method: "PUT", body: m, headers: { "content-type": OCI_MANIFEST } });
  assert.equal(res.status, 201);
  assert.equal(res.headers.get("docker-content-digest"), d);
  assert.equal(res.headers.get("oci-tag"), "v1, stable");
  for (const ref of [d, "v1", "stable"]) {
    res = await reg.fetch(`/v2/${name}/manifests/${ref}`);
    assert.equal(res.status, 200, ref);
    assert.equal(res.headers.get("docker-content-digest"), d);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), m);
  }
  assert.deepEqual((await (await reg.fetch(`/v2/${name}/tags/list`)).json()).tags, ["stable", "v1"]);
  // A referrer of the sha512 manifest.
  const sig = imageManifest(config, [layer], { artifactType: "application/x.sig", subject: { mediaType: OCI_MANIFEST, digest: d, size: m.length } });
  res = await putManifest(reg, name, sha256(sig), sig);
  assert.equal(res.status, 201);
  assert.equal(res.headers.get("oci-subject"), d);
  const index = await (await reg.fetch(`/v2/${name}/referrers/${d}`)).json();
  assert.deepEqual(index.manifests.map((x) => x.digest), [sha256(sig)]);
});

test("tag parameters: every tag points at the manifest; one invalid tag refuses the PUT and writes nothing", async () => {
  const name = "exact/tagparams";
  const config = await pushBlob(reg, name, Buffer.from('{"os":"linux"}'));
  const m = imageManifest(config, []);
  let res = await reg.fetch(`/v2/${name}/manifests/${sha256(m)}?tag=a&tag=b&tag=c`, { method: "PUT", body: m, headers: { "content-type": OCI_MANIFEST } });
  assert.equal(res.status, 201);
  for (const t of ["a", "b", "c"]) assert.equal((await reg.fetch(`/v2/${name}/manifests/${t}`)).headers.get("docker-content-digest"), sha256(m));
  const m2 = imageManifest(config, [], { annotations: { v: "2" } });
  res = await reg.fetch(`/v2/${name}/manifests/${sha256(m2)}?tag=d&tag=.bad`, { method: "PUT", body: m2, headers: { "content-type": OCI_MANIFEST } });
  assert.equal(res.status, 400);
  assert.equal(await errorCode(res), "TAG_INVALID");
  assert.equal((await reg.fetch(`/v2/${name}/manifests/${sha256(m2)}`)).status, 404);
  assert.deepEqual((await (await reg.fetch(`/v2/${name}/tags/list`)).json()).tags, ["a", "b", "c"]);
});

test("a reference that is neither tag nor digest: 404 MANIFEST_UNKNOWN to GET/HEAD/DELETE, 400 TAG_INVALID to PUT", async () => {
  for (const method of ["GET", "HEAD", "DELETE"]) {
    const res = await reg.fetch("/v2/exact/refs/manifests/.INVALID_MANIFEST_NAME", { method });
    assert.equal(res.status, 404, method);
    if (method !== "HEAD") assert.equal(await errorCode(res), "MANIFEST_UNKNOWN");
  }
  const res = await putManifest(reg, "exact/refs", ".INVALID_MANIFEST_NAME", Buffer.from("{}"));
  assert.equal(res.status, 400);
  assert.equal(await errorCode(res), "TAG_INVALID");
});

test("non-distributable layers need not be pushed: by tag, by digest, listed", async () => {
  const name = "exact/foreign";
  const config = await pushBlob(reg, name, Buffer.from('{"os":"windows"}'));
  const own = await pushBlob(reg, name, randomBytes(500));
  const types = [
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  ];
  const foreign = types.map((mediaType, i) => ({ mediaType, digest: sha256(Buffer.from(`never pushed ${i}`)), size: 1000, urls: [`https://example.com/${i}`] }));
  const m = imageManifest(config, [...foreign, own]);
  let res = await putManifest(reg, name, "win", m);
  assert.equal(res.status, 201, await res.clone().text());
  for (const ref of ["win", sha256(m)]) {
    res = await reg.fetch(`/v2/${name}/manifests/${ref}`);
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), m);
  }
  assert.deepEqual((await (await reg.fetch(`/v2/${name}/tags/list`)).json()).tags, ["win"]);
  // An ordinary layer that was never pushed is still refused.
  const missing = imageManifest(config, [{ digest: sha256(Buffer.from("nope")), size: 4 }]);
  res = await putManifest(reg, name, "bad", missing);
  assert.equal(await errorCode(res), "MANIFEST_BLOB_UNKNOWN");
});

test("a sparse index (one platform copied): accepted by tag and digest, byte-exact, listed; the rest may follow", async () => {
  const name = "exact/sparse";
  const config = await pushBlob(reg, name, Buffer.from('{"architecture":"arm64","os":"linux"}'));
  const layer = await pushBlob(reg, name, randomBytes(800));
  const arm = imageManifest(config, [layer]);
  const amd = imageManifest(config, [layer], { annotations: { platform: "amd64" } });
  assert.equal((await putManifest(reg, name, sha256(arm), arm)).status, 201);
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: sha256(arm), size: arm.length, platform: { architecture: "arm64", os: "linux" } },
        { mediaType: OCI_MANIFEST, digest: sha256(amd), size: amd.length, platform: { architecture: "amd64", os: "linux" } },
      ],
    }),
  );
  assert.equal((await putManifest(reg, name, "multi", index, OCI_INDEX)).status, 201);
  assert.equal((await putManifest(reg, name, sha256(index), index, OCI_INDEX)).status, 201);
  for (const ref of ["multi", sha256(index)]) {
    const res = await reg.fetch(`/v2/${name}/manifests/${ref}`, { headers: { accept: OCI_INDEX } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), OCI_INDEX);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), index);
  }
  assert.deepEqual((await (await reg.fetch(`/v2/${name}/tags/list`)).json()).tags, ["multi"]);
  assert.equal((await reg.fetch(`/v2/${name}/manifests/${sha256(amd)}`)).status, 404);
  assert.equal((await putManifest(reg, name, sha256(amd), amd)).status, 201);
  assert.deepEqual(Buffer.from(await (await reg.fetch(`/v2/${name}/manifests/${sha256(amd)}`)).arrayBuffer()), amd);
});

test("garbage in gets a 4xx and the spec's JSON body, never a 500 or a hang", async () => {
  const name = "exact/garbage";
  const config = await pushBlob(reg, name, Buffer.from('{"os":"linux"}'));
  const layer = (i) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256(Buffer.from(String(i))), size: 1 });
  const manifests = {
    "5 MB": Buffer.alloc(5 * 1024 * 1024, 32),
    "100,000 nested [": Buffer.from("[".repeat(100_000)),
    "100,000 layers": imageManifest(config, Array.from({ length: 100_000 }, (_, i) => layer(i))),
    "duplicate keys": Buffer.from(`{"schemaVersion":2,"mediaType":"${OCI_MANIFEST}","config":${JSON.stringify({ ...config, mediaType: "application/vnd.oci.image.config.v1+json" })},"layers":[],"layers":[]}`),
    "not JSON": Buffer.from("\u0000\u0001"),
  };
  for (const [label, body] of Object.entries(manifests)) {
    const res = await putManifest(reg, name, "t", body);
    assert.ok(res.status >= 400 && res.status < 500, `${label}: ${res.status}`);
    assert.match(await errorCode(res), /^(MANIFEST_INVALID|SIZE_INVALID)$/, label);
  }
  const loc = await post(name);
  const requests = [
    ["/v2/a/../../etc/passwd", "GET"],
    ["/v2/%00/tags/list", "GET"],
    ["/v2/" + "a/".repeat(200) + "tags/list", "GET"],
    ["/v2/a/blobs/sha256:" + "z".repeat(64), "GET"],
    ["/v2/a/blobs/sha256:" + "0".repeat(65), "HEAD"],
    ["/v2/a/manifests/sha999:abc", "GET"],
    ["/v2/a/tags/list?n=" + "9".repeat(16 * 1024), "GET"],
    ["/v2/a/tags/list?n=-1", "GET"],
    ["/v2/_catalog?n=x", "GET"],
    ["/v2/a/blobs/uploads/" + "f".repeat(36), "PATCH"],
  ];
  for (const [path, method] of requests) {
    const res = await reg.fetch(path, { method, body: method === "PATCH" ? "x" : undefined });
    assert.ok(res.status >= 400 && res.status < 500, `${method} ${path.slice(0, 60)}: ${res.status}`);
    if (method !== "HEAD") assert.ok((await res.json()).errors[0].code, path.slice(0, 60));
  }
  for (const range of ["0-2/xyz", "2-0", "a-b", "0-9999999999999999999999", "-"]) {
    const res = await reg.fetch(loc, { method: "PATCH", body: "abc", headers: { "content-range": range } });
    assert.equal(res.status, 400, range);
    assert.equal(await errorCode(res), "BLOB_UPLOAD_INVALID", range);
  }
  for (const range of ["bytes=zz", "bytes=5-1", "bytes=-", "pages=1-2", "bytes=99999999999999999999999-"]) {
    const res = await reg.fetch(`/v2/${name}/blobs/${config.digest}`, { headers: { range } });
    assert.ok([200, 206, 416].includes(res.status), `${range}: ${res.status}`);
    await res.arrayBuffer();
  }
});

test("a manifest naming 36,000 layers is refused at once, and the registry keeps serving", async () => {
  const name = "exact/fanout";
  const config = await pushBlob(reg, name, Buffer.from('{"os":"linux"}'));
  // Descriptors kept small (no media type) so 36,000 of them fit under the 4 MiB size limit.
  const layers = Array.from({ length: 36_000 }, (_, i) => JSON.stringify({ digest: sha256(Buffer.from(`l${i}`)), size: i }));
  const cfg = JSON.stringify({ mediaType: "application/vnd.oci.image.config.v1+json", ...config });
  const m = Buffer.from(`{"schemaVersion":2,"mediaType":"${OCI_MANIFEST}","config":${cfg},"layers":[${layers.join(",")}]}`);
  assert.ok(m.length < 4 * 1024 * 1024, `${m.length} bytes, under the size limit`);
  const res = await putManifest(reg, name, "huge", m);
  assert.equal(res.status, 400);
  assert.equal(await errorCode(res), "MANIFEST_INVALID");
  // A valid manifest near the limit: 399 layers over 100 distinct blobs, each checked once.
  const blobs = [];
  for (let i = 0; i < 100; i += 25) blobs.push(...(await Promise.all(Array.from({ length: 25 }, () => pushBlob(reg, name, randomBytes(64))))));
  const near = imageManifest(config, Array.from({ length: 399 }, (_, i) => blobs[i % 100]));
  const ok = await putManifest(reg, name, "near", near);
  assert.equal(ok.status, 201, await ok.clone().text());
  const ops = Object.fromEntries(ok.headers.get("registry-storage-ops").split(", ").map((kv) => kv.split("=")));
  assert.ok(Number(ops["r2-a"]) + Number(ops["r2-b"]) < 300, `storage operations of the PUT: ${JSON.stringify(ops)}`);
  // A normal pull still works.
  const pulled = await reg.fetch(`/v2/${name}/manifests/near`);
  assert.equal(pulled.status, 200);
  assert.deepEqual(Buffer.from(await pulled.arrayBuffer()), near);
  assert.equal((await reg.fetch(`/v2/${name}/blobs/${blobs[7].digest}`)).status, 200);
});

test("a PATCH whose worker dies mid-body: the resume gets 429 with Retry-After, then succeeds within one lease", async () => {
  const name = "exact/killed";
  const data = randomBytes(3 * 1024 * 1024);
  const head = data.subarray(0, 1000);
  let loc = await post(name);
  const id = loc.match(/uploads\/([0-9a-f-]+)/)[1];
  // A first write that dies mid-body leaves nothing (it takes no lease; its state would have
  // been saved at its end): the resume from 0 goes ahead at once.
  const dies = async (url, rest) => {
    let sent;
    const sentFirst = new Promise((r) => (sent = r));
    const stalled = new ReadableStream({
      start(c) {
        c.enqueue(rest.subarray(0, 1024 * 1024));
        sent();
      },
    });
    const dying = reg.fetch(url, { method: "PATCH", body: stalled, duplex: "half" }).catch((e) => e);
    await sentFirst;
    return dying;
  };
  let dying = dies(loc, data);
  await new Promise((r) => setTimeout(r, 300));
  await reg.restart(); // the emulator (and the worker in it) dies mid-body
  await dying;
  let path = loc.replace(/^https?:\/\/[^/]+/, "");
  let status = await reg.fetch(path);
  assert.equal(status.status, 204);
  assert.equal(status.headers.get("range"), "0-0");
  assert.deepEqual(await reg.keys(`uploads/${id}/`), [], "no state");
  let res = await reg.fetch(path, { method: "PATCH", body: head, headers: { "content-range": `0-${head.length - 1}` } });
  assert.equal(res.status, 202, "the first write again, at once");
  loc = res.headers.get("location");
  path = loc.replace(/^https?:\/\/[^/]+/, "");

  // A later write of unknown length takes the lease when it arrives; it dies mid-body.
  dying = dies(loc, data.subarray(head.length));
  for (let i = 0; i < 100; i++) {
    const stored = await (await reg.bucket()).get(`uploads/${id}/state`);
    if (stored && JSON.parse(await stored.text()).lease_until > 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  await reg.restart();
  await dying;

  status = await reg.fetch(path);
  assert.equal(status.status, 204);
  assert.equal(status.headers.get("range"), `0-${head.length - 1}`, "nothing of the dead chunk counts");
  const rest = data.subarray(head.length);
  const range = { "content-range": `${head.length}-${data.length - 1}` };
  res = await reg.fetch(path, { method: "PATCH", body: rest, headers: range });
  assert.equal(res.status, 429, "the dead request's lease is still live");
  assert.equal(await errorCode(res), "TOOMANYREQUESTS");
  const wait = Number(res.headers.get("retry-after"));
  assert.ok(wait >= 1 && wait <= 10, `Retry-After ${wait}`);
  await new Promise((r) => setTimeout(r, wait * 1000));
  res = await reg.fetch(path, { method: "PATCH", body: rest, headers: range });
  assert.equal(res.status, 202, "resumed once the lease ran out");
  res = await reg.fetch(withDigest(res.headers.get("location"), sha256(data)), { method: "PUT" });
  assert.equal(res.status, 201);
  assert.deepEqual(await readBlob(name, sha256(data)), data);
});

test("a client that disconnects mid-PATCH resumes from the Range the registry reports", async () => {
  const name = "exact/disconnect";
  const data = randomBytes(2 * 1024 * 1024);
  const first = data.subarray(0, 512 * 1024);
  let loc = await post(name);
  let res = await reg.fetch(loc, { method: "PATCH", body: first, headers: { "content-range": `0-${first.length - 1}` } });
  assert.equal(res.status, 202);
  loc = res.headers.get("location");
  // The next chunk is cut off after 256 KiB: the client goes away.
  const abort = new AbortController();
  const cut = new ReadableStream({
    start(c) {
      c.enqueue(data.subarray(first.length, first.length + 256 * 1024));
      setTimeout(() => abort.abort(), 200);
    },
  });
  await assert.rejects(reg.fetch(loc, { method: "PATCH", body: cut, duplex: "half", signal: abort.signal }), /abort/i);
  // The registry reports what it kept; the resume from there succeeds (retrying on 429 while
  // the request that lost its client is still being wound up).
  let status;
  for (let i = 0; i < 100; i++) {
    status = await reg.fetch(loc);
    if (status.status === 204) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(status.status, 204);
  const kept = Number(status.headers.get("range").split("-")[1]) + 1;
  assert.equal(kept, first.length, "the cut chunk does not count");
  const rest = data.subarray(kept);
  for (let i = 0; ; i++) {
    res = await reg.fetch(loc, { method: "PATCH", body: rest, headers: { "content-range": `${kept}-${data.length - 1}` } });
    if (res.status !== 429 || i > 20) break;
    await new Promise((r) => setTimeout(r, Number(res.headers.get("retry-after")) * 1000));
  }
  assert.equal(res.status, 202);
  res = await reg.fetch(withDigest(res.headers.get("location"), sha256(data)), { method: "PUT" });
  assert.equal(res.status, 201);
  assert.deepEqual(await readBlob(name, sha256(data)), data);
});
