// A registry upstream the tests control: serves manifests and blobs from memory and can be
// told to misbehave (answer a status, never answer, lie about content), to want Basic
// credentials, or to redirect blob requests elsewhere (as Docker Hub sends them to a CDN);
// `/cdn/<digest>` serves a blob to anyone. Every request is logged with whether it carried an
// Authorization header.
import { createServer } from "node:http";
import { createHash } from "node:crypto";

const sha256 = (b) => "sha256:" + createHash("sha256").update(b).digest("hex");

export async function fakeUpstream() {
  const manifests = new Map(); // "<name>:<ref>" -> { bytes, type }
  const blobs = new Map(); // digest -> bytes
  const state = { mode: "normal", status: 503, lies: new Map(), log: [], basic: null, redirect: null, chunked: false };
  const hanging = new Set();
  const server = createServer((req, res) => {
    state.log.push(`${req.method} ${req.url} ${req.headers.authorization ? "with" : "without"} authorization`);
    if (state.mode === "hang") {
      hanging.add(res);
      return;
    }
    if (state.mode === "status") {
      res.writeHead(state.status, { "content-type": "text/plain" }).end("upstream trouble");
      return;
    }
    const cdn = req.url.match(/^\/cdn\/([^/?]+)$/);
    if (cdn) {
      const bytes = blobs.get(cdn[1]);
      if (!bytes) return res.writeHead(404).end();
      res.writeHead(200, { "content-length": bytes.length });
      return res.end(req.method === "HEAD" ? undefined : bytes);
    }
    if (state.basic && req.headers.authorization !== "Basic " + Buffer.from(state.basic).toString("base64")) {
      return res.writeHead(401, { "www-authenticate": 'Basic realm="fake"' }).end();
    }
    const list = req.url.match(/^\/v2\/(.+)\/tags\/list$/);
    if (list) {
      const tags = [...manifests.keys()].filter((k) => k.startsWith(`${list[1]}:`) && !k.includes("sha256:")).map((k) => k.slice(list[1].length + 1));
      if (!tags.length) return res.writeHead(404).end();
      return res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ name: list[1], tags }));
    }
    const m = req.url.match(/^\/v2\/(.+)\/(manifests|blobs)\/([^/?]+)$/);
    if (!m) return res.writeHead(404).end();
    const [, name, kind, ref] = m;
    if (kind === "manifests") {
      const found = manifests.get(`${name}:${ref}`);
      if (!found) return res.writeHead(404).end();
      const body = state.lies.get(`${name}:${ref}`) ?? found.bytes;
      res.writeHead(200, { "content-type": found.type, "docker-content-digest": sha256(found.bytes), "content-length": body.length });
      return res.end(req.method === "HEAD" ? undefined : body);
    }
    const bytes = blobs.get(ref);
    if (!bytes) return res.writeHead(404).end();
    if (state.redirect) return res.writeHead(307, { location: `${state.redirect}/cdn/${ref}` }).end();
    const body = state.lies.get(ref) ?? bytes;
    if (state.chunked) {
      // No Content-Length: the body goes out in chunks of unknown total length.
      res.writeHead(200, { "content-type": "application/octet-stream" });
      if (req.method === "HEAD") return res.end();
      for (let at = 0; at < body.length; at += 1 << 20) res.write(body.subarray(at, at + (1 << 20)));
      return res.end();
    }
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
    res.end(req.method === "HEAD" ? undefined : body);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    log: state.log,
    // Serves `bytes` as manifest `name:tag` (and by its digest); returns the digest.
    manifest(name, tag, bytes, type = "application/vnd.oci.image.manifest.v1+json") {
      const digest = sha256(bytes);
      manifests.set(`${name}:${tag}`, { bytes, type });
      manifests.set(`${name}:${digest}`, { bytes, type });
      return digest;
    },
    blob(bytes) {
      const digest = sha256(bytes);
      blobs.set(digest, bytes);
      return digest;
    },
    // Serves `bytes` instead of what `key` ("<name>:<ref>" or a blob digest) names.
    lie(key, bytes) {
      state.lies.set(key, bytes);
    },
    // Wants these `user:password` as Basic credentials on /v2/ (null: anyone).
    requireBasic(credentials) {
      state.basic = credentials;
    },
    // Sends blobs without Content-Length (chunked), or with it (the default).
    sendChunked(chunked) {
      state.chunked = chunked;
    },
    // Answers blob requests with 307 to `/cdn/<digest>` at `origin` (null: serves them).
    redirectBlobsTo(origin) {
      state.redirect = origin;
    },
    // "normal", "status" (answer `status` to everything) or "hang" (never answer).
    set(mode, status = 503) {
      state.mode = mode;
      state.status = status;
      if (mode !== "hang") {
        for (const res of hanging) res.destroy();
        hanging.clear();
      }
    },
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
