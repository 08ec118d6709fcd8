// The plain-HTTP front that `npm start` and the tests serve the emulator through
// (miniflare/front.mjs): podman, skopeo and buildah with --tls-verify=false open with a TLS
// handshake, which workerd leaves unanswered; the front closes such a connection, so the client
// falls back to plain HTTP at once instead of after its handshake timeout.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import tls from "node:tls";
import { registry, sha256 } from "./helpers.mjs";

let reg;
before(async () => {
  reg = await registry();
});
after(async () => {
  await reg.close();
});

// How a TLS handshake with `url`'s host ends: "closed" when the server hangs up, "silent" when
// nothing happens for `patience` ms (what workerd alone does), or the handshake's error code.
function tlsProbe(url, patience = 5000) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = tls.connect({ host: hostname, port: Number(port), rejectUnauthorized: false });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve("silent");
    }, patience);
    const end = (how) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(how);
    };
    socket.on("secureConnect", () => end("handshake completed"));
    socket.on("error", (e) => end(e.code === "ECONNRESET" ? "closed" : e.code));
    socket.on("close", () => end("closed"));
  });
}

test("a TLS handshake on the registry's HTTP port is hung up on, and plain HTTP is served there", async () => {
  assert.equal(await tlsProbe(reg.url), "closed");
  const res = await reg.fetch("/v2/");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("docker-distribution-api-version"), "registry/2.0");
  // Several requests on one connection, and a body both ways, pass through unchanged.
  const body = Buffer.alloc(3 * 1024 * 1024, 7);
  const digest = sha256(body);
  const put = await reg.fetch(`/v2/front/a/blobs/uploads/?digest=${digest}`, { method: "POST", body });
  assert.equal(put.status, 201);
  const got = Buffer.from(await (await reg.fetch(`/v2/front/a/blobs/${digest}`)).arrayBuffer());
  assert.ok(got.equals(body));
});
