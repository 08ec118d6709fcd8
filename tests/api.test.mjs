// The OCI distribution API over real HTTP on the emulator: every endpoint and its errors.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  registry, sha256, sha512, errorCode, startUpload, pushBlob, imageManifest, putManifest, streamOf, storageOps, OCI_MANIFEST, OCI_INDEX,
} from "./helpers.mjs";

let reg;
before(async () => (reg = await registry()));
after(async () => reg.close());

test("GET /v2/ answers with the API version", async () => {
  const res = await reg.fetch("/v2/");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("docker-distribution-api-version"), "registry/2.0");
  assert.deepEqual(await res.json(), {});
});

test("chunked upload of 22+20 bytes, out-of-order chunk and stale location get 416", async () => {
  const data = Buffer.from("0123456789abcdefghijklmnopqrstuvwxyzABCDEF"); // 42 bytes
  const loc0 = await startUpload(reg, "chunked");
  let res = await reg.fetch(loc0, {
    method: "PATCH", body: data.subarray(0, 22),
    headers: { "content-type": "application/octet-stream", "content-range": "0-21" },
  });
  assert.equal(res.status, 202);
  assert.equal(res.headers.get("range"), "0-21");
  const loc1 = res.headers.get("location");
  // Retry of the first chunk at the stale location.
  res = await reg.fetch(loc0, { method: "PATCH", body: data.subarray(0, 22), headers: { "content-range": "0-21" } });
  assert.equal(res.status, 416);
  assert.equal(await errorCode(res), "RANGE_INVALID");
  assert.equal(res.headers.get("range"), "0-21");
  // Out of order chunk at the current location.
  res = await reg.fetch(loc1, { method: "PATCH", body: data.subarray(30, 42), headers: { "content-range": "30-41" } });
  assert.equal(res.status, 416);
  // Status.
  res = await reg.fetch(loc1);
  assert.equal(res.status, 204);
  assert.equal(res.headers.get("range"), "0-21");
  assert.ok(res.headers.get("docker-upload-uuid"));
  res = await reg.fetch(loc1, { method: "PATCH", body: data.subarray(22), headers: { "content-range": "22-41" } });
  assert.equal(res.status, 202);
  const loc2 = res.headers.get("location");
  res = await reg.fetch(`${loc2}&digest=${sha256(data)}`, { method: "PUT" });
  assert.equal(res.status, 201);
  assert.equal(res.headers.get("docker-content-digest"), sha256(data));
  res = await reg.fetch(`/v2/chunked/blobs/${sha256(data)}`);
  assert.equal(res.status, 200);
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
});

test("streamed PATCH and streamed final PUT (no Content-Length, no Content-Range), read back byte-exact", async () => {
  const data = randomBytes(3 * 1024 * 1024 + 17);
  const loc = await startUpload(reg, "streamed");
  let res = await reg.fetch(loc, { method: "PATCH", body: streamOf(data.subarray(0, 1000000)), duplex: "half" });
  assert.equal(res.status, 202);
  assert.equal(res.headers.get("range"), "0-999999");
  res = await reg.fetch(`${res.headers.get("location")}&digest=${sha256(data)}`, { method: "PUT", body: streamOf(data.subarray(1000000)), duplex: "half" });
  assert.equal(res.status, 201);
  res = await reg.fetch(`/v2/streamed/blobs/${sha256(data)}`);
  assert.equal(res.status, 200);
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
});

test("monolithic POST ?digest=, digest mismatch stores nothing", async () => {
  const data = Buffer.from("monolithic blob");
  const { digest } = await pushBlob(reg, "mono", data);
  let res = await reg.fetch(`/v2/mono/blobs/${digest}`);
  assert.equal(await res.text(), "monolithic blob");
  const wrong = sha256(Buffer.from("something else"));
  const stored = async () => (await (await reg.bucket()).list()).objects.map((o) => o.key).sort();
  const before = await stored();
  res = await reg.fetch(`/v2/mono/blobs/uploads/?digest=${wrong}`, { method: "POST", body: data });
  assert.equal(res.status, 400);
  assert.equal(await errorCode(res), "DIGEST_INVALID");
  assert.deepEqual(await stored(), before, "the refused body left no object in the bucket");
  // Chunked upload committed with the wrong digest: DIGEST_INVALID, upload gone.
  const loc = await startUpload(reg, "mono");
  res = await reg.fetch(loc, { method: "PATCH", body: data });
  const loc2 = res.headers.get("location");
  res = await reg.fetch(`${loc2}&digest=${wrong}`, { method: "PUT" });
  assert.equal(res.status, 400);
  assert.equal(await errorCode(res), "DIGEST_INVALID");
  res = await reg.fetch(loc2);
  assert.equal(res.status, 404);
  assert.equal(await errorCode(res), "BLOB_UPLOAD_UNKNOWN");
});

test("POST then PUT with the whole blob: written once, verified by R2, no hashing or parts; a mismatch ends the upload", async () => {
  const data = randomBytes(3_000_000);
  const before = await reg.keys();
  let res = await reg.fetch("/v2/whole/blobs/uploads/", { method: "POST" });
  assert.equal(res.status, 202);
  assert.equal(storageOps(res)["r2-a"], 0, "starting an upload writes nothing");
  assert.deepEqual(await reg.keys(), before);
  let loc = res.headers.get("location");
  assert.equal((await reg.fetch(loc)).status, 204, "the fresh upload is there for a status request");
  res = await reg.fetch(`${loc}&digest=${sha256(data)}`, { method: "PUT", body: data });
  assert.equal(res.status, 201);
  assert.equal(res.headers.get("location"), `/v2/whole/blobs/${sha256(data)}`);
  // The one write, the descriptor and the link: nothing else is written.
  assert.equal(storageOps(res)["r2-a"], 3);
  assert.deepEqual(Buffer.from(await (await reg.fetch(`/v2/whole/blobs/${sha256(data)}`)).arrayBuffer()), data);
  assert.equal((await reg.fetch(loc)).status, 404, "the upload is over");
  assert.equal((await reg.fetch(`${loc}&digest=${sha256(data)}`, { method: "PUT", body: data })).status, 404, "its URL cannot start it again");
  // The bytes are the upload's single piece, named by the descriptor; no upload state.
  const hex = sha256(data).slice(7);
  const id = loc.match(/uploads\/([0-9a-f-]+)/)[1];
  assert.deepEqual(await reg.keys(`blobs/sha256/${hex.slice(0, 2)}/${hex}/`), [`blobs/sha256/${hex.slice(0, 2)}/${hex}/descriptor`]);
  assert.deepEqual(await reg.keys(`objects/${id}/`), [`objects/${id}/${"0".padStart(20, "0")}`], "the piece at offset 0");
  assert.deepEqual(await reg.keys(`uploads/${id}/`), []);
  // The same bytes again, into another upload: linked, and that upload closed (its URL refused).
  loc = await startUpload(reg, "whole2");
  res = await reg.fetch(`${loc}&digest=${sha256(data)}`, { method: "PUT", body: data });
  assert.equal(res.status, 201);
  assert.equal((await reg.fetch(loc)).status, 404);
  assert.deepEqual(Buffer.from(await (await reg.fetch(`/v2/whole2/blobs/${sha256(data)}`)).arrayBuffer()), data);

  // Any algorithm R2 can check: sha512 into an upload started without a hint.
  const other = randomBytes(100_000);
  loc = await startUpload(reg, "whole");
  res = await reg.fetch(`${loc}&digest=${sha512(other)}`, { method: "PUT", body: other });
  assert.equal(res.status, 201);
  assert.deepEqual(Buffer.from(await (await reg.fetch(`/v2/whole/blobs/${sha512(other)}`)).arrayBuffer()), other);

  // A mismatch: DIGEST_INVALID, nothing stored, the upload gone (a closed state is all that is
  // left of it, until the purge).
  const stored = await reg.keys();
  loc = await startUpload(reg, "whole");
  const wrong = sha256(Buffer.from("not these bytes"));
  res = await reg.fetch(`${loc}&digest=${wrong}`, { method: "PUT", body: randomBytes(200_000) });
  assert.equal(res.status, 400);
  assert.equal(await errorCode(res), "DIGEST_INVALID");
  assert.equal((await reg.fetch(loc)).status, 404);
  const closed = `uploads/${loc.match(/uploads\/([0-9a-f-]+)/)[1]}/state`;
  assert.deepEqual(await reg.keys(), [...stored, closed].sort());
  assert.equal(JSON.parse(await (await (await reg.bucket()).get(closed)).text()).closed, true);
});

test("POST, PATCH, PUT (as skopeo, podman and docker push): the PATCH writes the piece and the state, no lease; chunks below a part likewise", async () => {
  const data = randomBytes(2_000_000);
  let res = await reg.fetch("/v2/chunked-ops/blobs/uploads/", { method: "POST" });
  assert.equal(storageOps(res)["r2-a"], 0);
  const id = res.headers.get("location").match(/uploads\/([0-9a-f-]+)/)[1];
  res = await reg.fetch(res.headers.get("location"), { method: "PATCH", body: data });
  assert.equal(res.status, 202);
  assert.equal(storageOps(res)["r2-a"], 2, "the piece and the state");
  const state = JSON.parse(await (await (await reg.bucket()).get(`uploads/${id}/state`)).text());
  assert.equal(state.lease_until, 0);
  res = await reg.fetch(`${res.headers.get("location")}&digest=${sha256(data)}`, { method: "PUT" });
  assert.equal(res.status, 201);
  assert.equal(storageOps(res)["r2-a"], 3, "the lease, the descriptor and the link");

  // 1 MiB chunks: each writes a piece of its own (its request's tag in the key) and the state.
  const blob = randomBytes(3 * 1024 * 1024 + 5);
  let loc = await startUpload(reg, "chunked-ops");
  const counts = [];
  for (let at = 0; at < blob.length; at += 1024 * 1024) {
    const chunk = blob.subarray(at, at + 1024 * 1024);
    res = await reg.fetch(loc, { method: "PATCH", body: chunk, headers: { "content-range": `${at}-${at + chunk.length - 1}` } });
    assert.equal(res.status, 202);
    counts.push(storageOps(res)["r2-a"]);
    loc = res.headers.get("location");
  }
  assert.deepEqual(counts, [2, 2, 2, 2]);
  const upload = loc.match(/uploads\/([0-9a-f-]+)/)[1];
  const pieces = await reg.keys(`objects/${upload}/`);
  assert.equal(pieces.length, 4);
  assert.equal(pieces[0], `objects/${upload}/${"0".padStart(20, "0")}`);
  for (const key of pieces.slice(1)) assert.match(key, /\/\d{20}\.[0-9a-f]{12}$/);
  res = await reg.fetch(`${loc}&digest=${sha256(blob)}`, { method: "PUT" });
  assert.equal(res.status, 201);
  assert.deepEqual(Buffer.from(await (await reg.fetch(`/v2/chunked-ops/blobs/${sha256(blob)}`)).arrayBuffer()), blob);
  assert.deepEqual(await reg.keys(`objects/${upload}/`), [`objects/${upload}/data`], "joined into one object; the pieces are gone");
});

test("sha512 blobs: monolithic, and chunked with digest-algorithm", async () => {
  const data = Buffer.from("sha512 content");
  let res = await reg.fetch(`/v2/s512/blobs/uploads/?digest=${sha512(data)}`, { method: "POST", body: data });
  assert.equal(res.status, 201);
  res = await reg.fetch(`/v2/s512/blobs/${sha512(data)}`);
  assert.equal(await res.text(), "sha512 content");
  const other = Buffer.from("chunked sha512");
  res = await reg.fetch(`/v2/s512/blobs/uploads/?digest-algorithm=sha512`, { method: "POST" });
  assert.equal(res.status, 202);
  res = await reg.fetch(res.headers.get("location"), { method: "PATCH", body: other });
  assert.equal(res.status, 202);
  res = await reg.fetch(`${res.headers.get("location")}&digest=${sha512(other)}`, { method: "PUT" });
  assert.equal(res.status, 201);
  res = await reg.fetch(`/v2/s512/blobs/${sha512(other)}`);
  assert.equal(res.status, 200);
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), other);
});

test("blob GET: Range, 416, multi-range, If-None-Match, HEAD, DELETE", async () => {
  const data = Buffer.from("0123456789");
  const { digest } = await pushBlob(reg, "ranges", data);
  let res = await reg.fetch(`/v2/ranges/blobs/${digest}`, { headers: { range: "bytes=2-5" } });
  assert.equal(res.status, 206);
  assert.equal(res.headers.get("content-range"), "bytes 2-5/10");
  assert.equal(await res.text(), "2345");
  res = await reg.fetch(`/v2/ranges/blobs/${digest}`, { headers: { range: "bytes=-3" } });
  assert.equal(await res.text(), "789");
  res = await reg.fetch(`/v2/ranges/blobs/${digest}`, { headers: { range: "bytes=20-" } });
  assert.equal(res.status, 416);
  assert.equal(res.headers.get("content-range"), "bytes */10");
  res = await reg.fetch(`/v2/ranges/blobs/${digest}`, { headers: { range: "bytes=0-1,4-5" } });
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "0123456789");
  res = await reg.fetch(`/v2/ranges/blobs/${digest}`, { headers: { "if-none-match": `"${digest}"` } });
  assert.equal(res.status, 304);
  res = await reg.fetch(`/v2/ranges/blobs/${digest}`, { method: "HEAD" });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("etag"), `"${digest}"`);
  assert.equal(res.headers.get("docker-content-digest"), digest);
  // Not linked in another repository.
  res = await reg.fetch(`/v2/other/blobs/${digest}`);
  assert.equal(res.status, 404);
  assert.equal(await errorCode(res), "BLOB_UNKNOWN");
  res = await reg.fetch(`/v2/ranges/blobs/${digest}`, { method: "DELETE" });
  assert.equal(res.status, 202);
  res = await reg.fetch(`/v2/ranges/blobs/${digest}`);
  assert.equal(res.status, 404);
});

test("cross-repository mount: 201 when visible, 202 fallback otherwise", async () => {
  const { digest } = await pushBlob(reg, "src", Buffer.from("mount me"));
  let res = await reg.fetch(`/v2/dst/blobs/uploads/?mount=${digest}&from=src`, { method: "POST" });
  assert.equal(res.status, 201);
  assert.equal(res.headers.get("location"), `/v2/dst/blobs/${digest}`);
  res = await reg.fetch(`/v2/dst/blobs/${digest}`);
  assert.equal(await res.text(), "mount me");
  res = await reg.fetch(`/v2/dst2/blobs/uploads/?mount=${digest}&from=nowhere`, { method: "POST" });
  assert.equal(res.status, 202);
  assert.ok(res.headers.get("location").includes("/v2/dst2/blobs/uploads/"));
});

test("upload cancel and unknown uploads", async () => {
  const loc = await startUpload(reg, "cancel");
  let res = await reg.fetch(loc, { method: "DELETE" });
  assert.equal(res.status, 204);
  res = await reg.fetch(loc);
  assert.equal(res.status, 404);
  assert.equal(await errorCode(res), "BLOB_UPLOAD_UNKNOWN");
  res = await reg.fetch(loc.replace(/_state=[^&]+/, "_state=0.forged"), { method: "PATCH", body: "x" });
  assert.equal(res.status, 404);
});

test("over-ceiling PATCH gets 413", async () => {
  const small = await registry({ MAX_BODY_BYTES: "1000" });
  try {
    const loc = await startUpload(small, "big");
    const res = await small.fetch(loc, { method: "PATCH", body: Buffer.alloc(1001) });
    assert.equal(res.status, 413);
    assert.equal(await errorCode(res), "SIZE_INVALID");
    const status = await small.fetch(loc);
    assert.equal(status.headers.get("range"), "0-0");
  } finally {
    await small.close();
  }
});

test("manifests: put by tag and digest, get, head, errors, delete", async () => {
  const name = "app/web";
  const config = await pushBlob(reg, name, Buffer.from("{}"));
  const layer = await pushBlob(reg, name, Buffer.from("layer"));
  const m = imageManifest(config, [layer]);
  let res = await putManifest(reg, name, "v1", m);
  assert.equal(res.status, 201);
  const digest = res.headers.get("docker-content-digest");
  assert.equal(digest, sha256(m));
  assert.equal(res.headers.get("location"), `/v2/${name}/manifests/${digest}`);
  for (const ref of ["v1", digest]) {
    res = await reg.fetch(`/v2/${name}/manifests/${ref}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), OCI_MANIFEST);
    assert.equal(res.headers.get("docker-content-digest"), digest);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), m);
    res = await reg.fetch(`/v2/${name}/manifests/${ref}`, { method: "HEAD" });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-length"), String(m.length));
  }
  const missing = imageManifest(config, [{ digest: sha256(Buffer.from("nope")), size: 4 }]);
  res = await putManifest(reg, name, "bad", missing);
  assert.equal(res.status, 400);
  assert.equal(await errorCode(res), "MANIFEST_BLOB_UNKNOWN");
  res = await putManifest(reg, name, "bad", Buffer.from("{not json"));
  assert.equal(await errorCode(res), "MANIFEST_INVALID");
  res = await putManifest(reg, name, sha256(Buffer.from("x")), m);
  assert.equal(await errorCode(res), "DIGEST_INVALID");
  res = await putManifest(reg, name, "huge", Buffer.alloc(4 * 1024 * 1024 + 1, 32));
  assert.equal(res.status, 413);
  res = await reg.fetch(`/v2/${name}/manifests/nope`);
  assert.equal(res.status, 404);
  assert.equal(await errorCode(res), "MANIFEST_UNKNOWN");
  // Index referencing the manifest.
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest, size: m.length }] }));
  res = await putManifest(reg, name, "multi", index, OCI_INDEX);
  assert.equal(res.status, 201);
  res = await reg.fetch(`/v2/${name}/manifests/v1`, { method: "DELETE" });
  assert.equal(res.status, 202);
  res = await reg.fetch(`/v2/${name}/manifests/v1`);
  assert.equal(res.status, 404);
  res = await reg.fetch(`/v2/${name}/manifests/${digest}`, { method: "DELETE" });
  assert.equal(res.status, 202);
  res = await reg.fetch(`/v2/${name}/manifests/${digest}`);
  assert.equal(res.status, 404);
});

test("tags list pagination, catalog, NAME_UNKNOWN", async () => {
  const name = "paged";
  const config = await pushBlob(reg, name, Buffer.from("{}"));
  const m = imageManifest(config, []);
  for (const t of ["b", "a", "c", "d"]) assert.equal((await putManifest(reg, name, t, m)).status, 201);
  let res = await reg.fetch(`/v2/${name}/tags/list`);
  assert.deepEqual(await res.json(), { name, tags: ["a", "b", "c", "d"] });
  res = await reg.fetch(`/v2/${name}/tags/list?n=2`);
  assert.deepEqual((await res.json()).tags, ["a", "b"]);
  assert.equal(res.headers.get("link"), `</v2/${name}/tags/list?n=2&last=b>; rel="next"`);
  res = await reg.fetch(`/v2/${name}/tags/list?n=2&last=b`);
  assert.deepEqual((await res.json()).tags, ["c", "d"]);
  res = await reg.fetch(`/v2/${name}/tags/list?n=0`);
  assert.deepEqual((await res.json()).tags, []);
  assert.equal(res.headers.get("link"), null);
  res = await reg.fetch(`/v2/never/pushed/tags/list`);
  assert.equal(res.status, 404);
  assert.equal(await errorCode(res), "NAME_UNKNOWN");
  // A second repository of this test's own, so the catalog has more than one page of one.
  assert.equal((await putManifest(reg, `${name}/second`, "v1", imageManifest(await pushBlob(reg, `${name}/second`, Buffer.from("{}")), []))).status, 201);
  res = await reg.fetch(`/v2/_catalog`);
  const all = (await res.json()).repositories;
  assert.ok(all.includes(name) && all.includes(`${name}/second`));
  assert.deepEqual(all, [...all].sort(), "lexical order");
  res = await reg.fetch(`/v2/_catalog?n=1`);
  assert.equal((await res.json()).repositories.length, 1);
  assert.match(res.headers.get("link"), /rel="next"/);
});

test("referrers: subject accepted before it exists, filter, annotations", async () => {
  const name = "refs";
  const config = await pushBlob(reg, name, Buffer.from("{}"));
  const subject = sha256(Buffer.from("the subject"));
  const sig = imageManifest(config, [], {
    artifactType: "application/x.sig",
    subject: { mediaType: OCI_MANIFEST, digest: subject, size: 11 },
    annotations: { "org.example": "yes" },
  });
  let res = await putManifest(reg, name, sha256(sig), sig);
  assert.equal(res.status, 201);
  assert.equal(res.headers.get("oci-subject"), subject);
  res = await reg.fetch(`/v2/${name}/referrers/${subject}`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), OCI_INDEX);
  let idx = await res.json();
  assert.equal(idx.manifests.length, 1);
  assert.equal(idx.manifests[0].artifactType, "application/x.sig");
  assert.equal(idx.manifests[0].annotations["org.example"], "yes");
  res = await reg.fetch(`/v2/${name}/referrers/${subject}?artifactType=application/x.other`);
  assert.equal(res.headers.get("oci-filters-applied"), "artifactType");
  assert.equal((await res.json()).manifests.length, 0);
  const sbom = imageManifest(config, [], { artifactType: "application/x.sbom", subject: { mediaType: OCI_MANIFEST, digest: subject, size: 11 } });
  assert.equal((await putManifest(reg, name, "sbom", sbom)).status, 201);
  res = await reg.fetch(`/v2/${name}/referrers/${subject}?n=1`);
  const first = (await res.json()).manifests;
  assert.equal(first.length, 1);
  const link = res.headers.get("link");
  assert.match(link, /rel="next"/);
  res = await reg.fetch(link.slice(1, link.indexOf(">")));
  const second = (await res.json()).manifests;
  assert.equal(second.length, 1);
  assert.notEqual(first[0].digest, second[0].digest);
  assert.equal(res.headers.get("link"), null);
  res = await reg.fetch(`/v2/${name}/referrers/${sha256(Buffer.from("none"))}`);
  assert.equal(res.status, 200);
  assert.deepEqual((await res.json()).manifests, []);
});

test("bad input gets spec error codes, never a 500", async () => {
  const cases = [
    ["/v2/UPPER/tags/list", "GET", 400, "NAME_INVALID"],
    ["/v2/a/blobs/sha256:short", "GET", 400, "DIGEST_INVALID"],
    ["/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", "GET", 400, "DIGEST_INVALID"],
    ["/v2/a/blobs/uploads/not-a-uuid", "GET", 404, "BLOB_UPLOAD_UNKNOWN"],
    ["/v2/a/blobs/uploads/00000000-0000-0000-0000-000000000000", "GET", 404, "BLOB_UPLOAD_UNKNOWN"],
    ["/v2/a/manifests/latest", "POST", 405, "UNSUPPORTED"],
    ["/v2/a/nothing/here", "GET", 404, "NAME_UNKNOWN"],
    ["/v2/a/blobs/uploads/?digest=sha256:zz", "POST", 400, "DIGEST_INVALID"],
    ["/v2/a/tags/list?n=abc", "GET", 400, "PAGINATION_NUMBER_INVALID"],
  ];
  for (const [path, method, status, code] of cases) {
    const res = await reg.fetch(path, { method });
    assert.equal(res.status, status, `${method} ${path}`);
    assert.equal(await errorCode(res), code, `${method} ${path}`);
  }
});
