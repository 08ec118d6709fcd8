// The emulator's plain-HTTP front. workerd answers a TLS ClientHello on its HTTP port with
// silence, and podman, skopeo and buildah with --tls-verify=false try HTTPS first
// (containers/image pings https:// and falls back to http:// only when that fails), so every
// such command waited for Go's TLS handshake timeout, 10 s, before its first request (measured:
// each skopeo or podman command against the emulator took 10.0-10.4 s, curl 20-60 ms). The front
// closes a connection whose first byte opens a TLS handshake record, so the client falls back at
// once, and passes every other connection through to workerd byte for byte, each direction
// closed on its own (half-close kept); a client that resets resets workerd's side.
//
// It runs in a thread of its own: the tests run the clients with execFileSync, which blocks
// the main thread's event loop for as long as the client runs.
import net from "node:net";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";

/// The first byte of a TLS record carrying a handshake (RFC 8446, 5.1: ContentType 22).
const TLS_HANDSHAKE = 0x16;

/// Listens on `host:port` (0: a free port) in front of workerd at `target` (a URL); resolves to
/// the port it listens on and a `close()` that ends every connection.
export async function startFront(target, port, host = "127.0.0.1") {
  const worker = new Worker(new URL(import.meta.url), { workerData: { target: target.toString(), port, host } });
  const listening = await new Promise((ok, fail) => {
    worker.once("message", ok);
    worker.once("error", fail);
  });
  if (listening.error) throw new Error(`front: ${listening.error}`);
  return {
    port: listening.port,
    close: async () => {
      const exited = new Promise((ok) => worker.once("exit", ok));
      worker.postMessage("close");
      await exited;
    },
  };
}

function serve({ target, port, host }) {
  const upstreamAt = new URL(target);
  const open = new Set();
  const track = (s) => {
    open.add(s);
    s.on("close", () => open.delete(s));
  };
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    track(client);
    client.on("error", () => client.destroy());
    client.once("data", (first) => {
      if (first[0] === TLS_HANDSHAKE) {
        client.destroy();
        return;
      }
      const upstream = net.connect({ host: upstreamAt.hostname, port: Number(upstreamAt.port), allowHalfOpen: true, noDelay: true });
      track(upstream);
      // workerd failing: the client still gets what workerd sent before. The client failing
      // (gone mid-body): workerd sees the connection reset, as it would without the front.
      upstream.on("error", () => {
        upstream.destroy();
        client.destroySoon();
      });
      client.removeAllListeners("error");
      client.on("error", () => {
        client.destroy();
        upstream.resetAndDestroy();
      });
      // Whatever one side still sends once the other is gone has nowhere to go.
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroySoon());
      upstream.write(first);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  });
  server.once("error", (e) => parentPort.postMessage({ error: e.message }));
  server.listen(port, host, () => parentPort.postMessage({ port: server.address().port }));
  parentPort.on("message", (m) => {
    if (m !== "close") return;
    server.close(() => process.exit(0));
    for (const s of open) s.destroy();
  });
}

if (!isMainThread && workerData?.target) serve(workerData);
