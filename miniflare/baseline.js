// The benchmark baseline: a plain JavaScript worker on the same emulator. PUT /<key> streams
// the body through crypto.DigestStream and into the bucket together (tee), or, with
// `?sha256=<hex>`, straight into R2.put with the checksum option; GET /<key> hands the
// bucket object's stream to the response; POST /<key>?from=<url>&sha256=<hex> streams what
// <url> answers straight into the bucket, R2 verifying the digest (a mirror fill, no client).
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const key = url.pathname.slice(1);
    if (request.method === "POST") {
      const upstream = await fetch(url.searchParams.get("from"));
      await env.BLOBS.put(key, upstream.body, { sha256: url.searchParams.get("sha256") });
      return new Response("stored", { status: 201 });
    }
    if (request.method === "PUT" && url.searchParams.has("sha256")) {
      await env.BLOBS.put(key, request.body, { sha256: url.searchParams.get("sha256") });
      return new Response("stored", { status: 201 });
    }
    if (request.method === "PUT") {
      const len = Number(request.headers.get("content-length"));
      const [a, b] = request.body.tee();
      const digest = new crypto.DigestStream("SHA-256");
      const { readable, writable } = new FixedLengthStream(len);
      const [hex] = await Promise.all([
        a.pipeTo(digest).then(() => digest.digest).then((d) => [...new Uint8Array(d)].map((x) => x.toString(16).padStart(2, "0")).join("")),
        b.pipeTo(writable),
        env.BLOBS.put(key, readable),
      ]);
      return new Response(hex, { status: 201 });
    }
    const obj = await env.BLOBS.get(key);
    return obj ? new Response(obj.body) : new Response("not found", { status: 404 });
  },
};
