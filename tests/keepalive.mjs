// A keep-alive HTTP/1.1 client over one TCP connection, as Python's http.client or Go's net/http
// use one: it sends a request's whole body, then reads the whole answer, then sends the next
// request on the same socket. fetch() would hide a reset behind a new connection; this does not.
import net from "node:net";

export class Connection {
  constructor(baseUrl) {
    const u = new URL(baseUrl);
    this.host = u.host;
    this.socket = net.connect({ host: u.hostname, port: Number(u.port) });
    this.socket.setNoDelay(true);
    this.buffer = Buffer.alloc(0);
    this.closed = null;
    this.wake = () => {};
    this.socket.on("data", (d) => {
      this.buffer = Buffer.concat([this.buffer, d]);
      this.wake();
    });
    const end = (why) => {
      this.closed ??= why;
      this.wake();
    };
    this.socket.on("error", (e) => end(e.code || e.message));
    this.socket.on("end", () => end("closed by the server"));
    this.socket.on("close", () => end("closed"));
  }

  static async open(baseUrl) {
    const c = new Connection(baseUrl);
    await new Promise((resolve, reject) => {
      c.socket.once("connect", resolve);
      c.socket.once("error", reject);
    });
    return c;
  }

  // Sends the request (head, then the body in 64 KiB writes, waiting for each to be flushed, as a
  // blocking client does), then reads one whole answer. Rejects if the connection breaks before the
  // answer is complete; `sendError` tells whether sending the body failed.
  async request(method, path, { headers = {}, body = null } = {}) {
    if (this.closed) throw new Error(`connection already ${this.closed}`);
    const lines = [`${method} ${path} HTTP/1.1`, `Host: ${this.host}`, "Connection: keep-alive"];
    if (body) lines.push(`Content-Length: ${body.length}`);
    for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
    let sendError = null;
    const send = async () => {
      try {
        await this.write(Buffer.from(lines.join("\r\n") + "\r\n\r\n"));
        for (let at = 0; body && at < body.length; at += 65536) {
          await this.write(body.subarray(at, at + 65536));
        }
      } catch (e) {
        sendError = e.code || e.message;
      }
    };
    const sending = send();
    const answer = await this.readAnswer(method);
    // A server that answers without reading the body and keeps the connection open leaves a
    // blocking client stuck in send(): report that instead of hanging the test.
    let timer;
    const stalled = new Promise((resolve) => (timer = setTimeout(() => resolve("stalled"), 30_000)));
    if ((await Promise.race([sending, stalled])) === "stalled") sendError = "send stalled";
    clearTimeout(timer);
    return { ...answer, sendError };
  }

  write(chunk) {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new Error(this.closed));
      this.socket.write(chunk, (e) => (e ? reject(e) : resolve()));
    });
  }

  async until(test) {
    for (;;) {
      const r = test();
      if (r !== undefined) return r;
      if (this.closed) throw new Error(`connection ${this.closed} before the answer was complete`);
      await new Promise((resolve) => (this.wake = resolve));
    }
  }

  async readAnswer(method) {
    const headEnd = await this.until(() => {
      const i = this.buffer.indexOf("\r\n\r\n");
      return i < 0 ? undefined : i;
    });
    const head = this.buffer.subarray(0, headEnd).toString("latin1").split("\r\n");
    this.buffer = this.buffer.subarray(headEnd + 4);
    const status = Number(head[0].split(" ")[1]);
    const headers = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(":");
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    let body = Buffer.alloc(0);
    if (method === "HEAD" || status === 204 || status === 304) {
      // No body.
    } else if (headers["content-length"] !== undefined) {
      const n = Number(headers["content-length"]);
      await this.until(() => (this.buffer.length >= n ? true : undefined));
      body = this.buffer.subarray(0, n);
      this.buffer = this.buffer.subarray(n);
    } else if (/chunked/i.test(headers["transfer-encoding"] || "")) {
      const parts = [];
      for (;;) {
        const lineEnd = await this.until(() => {
          const i = this.buffer.indexOf("\r\n");
          return i < 0 ? undefined : i;
        });
        const size = parseInt(this.buffer.subarray(0, lineEnd).toString(), 16);
        await this.until(() => (this.buffer.length >= lineEnd + 2 + size + 2 ? true : undefined));
        parts.push(this.buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
        this.buffer = this.buffer.subarray(lineEnd + 2 + size + 2);
        if (size === 0) break;
      }
      body = Buffer.concat(parts);
    } else {
      throw new Error(`answer without a length: ${head[0]}`);
    }
    return { status, headers, body };
  }

  close() {
    this.socket.destroy();
  }
}
