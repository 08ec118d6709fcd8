//! The upstream fetch on the worker (wasm only): the runtime's `fetch`, redirects left to the
//! client (`redirect: "manual"`), a bounded wait for the answer's headers, and bounded reads
//! of small bodies. Blob bodies stay JS streams ([`stream_of`]); their bytes never enter wasm.

use async_trait::async_trait;
use js_sys::{Array, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::challenge::TokenCache;
use super::client::{Fetch, UpstreamRequest, UpstreamResponse};

#[wasm_bindgen(inline_js = r#"
// One request to an upstream; gives up when no answer's headers came within `timeoutMs`.
export async function upstreamFetch(url, method, headers, timeoutMs) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const response = await fetch(url, { method, headers, redirect: "manual", signal: controller.signal });
    return { status: response.status, headers: [...response.headers], response };
  } catch (e) {
    throw new Error(controller.signal.aborted ? `no answer within ${timeoutMs} ms` : String((e && e.message) || e));
  } finally {
    clearTimeout(timer);
  }
}

// The body of `response`, refused past `limit` bytes or when it stalls past `timeoutMs`.
export async function readLimited(response, limit, timeoutMs) {
  if (!response.body) return new Uint8Array(0);
  const reader = response.body.getReader();
  let stalled = false;
  const timer = setTimeout(() => {
    stalled = true;
    reader.cancel().catch(() => {});
  }, timeoutMs);
  const parts = [];
  let len = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      len += value.byteLength;
      if (len > limit) {
        reader.cancel().catch(() => {});
        throw new Error(`body over ${limit} bytes`);
      }
      parts.push(value);
    }
  } finally {
    clearTimeout(timer);
  }
  if (stalled) throw new Error(`body not read within ${timeoutMs} ms`);
  const out = new Uint8Array(len);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = upstreamFetch, catch)]
    async fn upstream_fetch(url: &str, method: &str, headers: Array, timeout_ms: f64) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = readLimited, catch)]
    async fn read_limited(response: &JsValue, limit: f64, timeout_ms: f64) -> Result<JsValue, JsValue>;
}

fn message(e: JsValue) -> String {
    e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).unwrap_or_else(|| format!("{e:?}"))
}

/// The runtime's fetch; `timeout_ms` bounds the wait for an answer and for a small body.
pub struct WebFetch {
    pub timeout_ms: u64,
}

#[async_trait(?Send)]
impl Fetch for WebFetch {
    /// The JS `Response`.
    type Body = JsValue;

    async fn send(&self, req: &UpstreamRequest) -> Result<UpstreamResponse<JsValue>, String> {
        let headers: Array = req.headers.iter().map(|(k, v)| Array::of2(&JsValue::from_str(k), &JsValue::from_str(v))).collect();
        let out = upstream_fetch(&req.url, req.method, headers, self.timeout_ms as f64).await.map_err(message)?;
        let get = |k: &str| Reflect::get(&out, &JsValue::from_str(k)).map_err(message);
        let status = get("status")?.as_f64().unwrap_or(0.0) as u16;
        let headers = Array::from(&get("headers")?)
            .iter()
            .filter_map(|pair| {
                let pair = Array::from(&pair);
                Some((pair.get(0).as_string()?, pair.get(1).as_string()?))
            })
            .collect();
        Ok(UpstreamResponse { status, headers, body: get("response")? })
    }

    async fn read(&self, body: JsValue, limit: usize) -> Result<Vec<u8>, String> {
        let bytes = read_limited(&body, limit as f64, self.timeout_ms as f64).await.map_err(message)?;
        Ok(bytes.unchecked_into::<Uint8Array>().to_vec())
    }
}

/// The body stream of an upstream answer, if it has one.
pub fn stream_of(body: &JsValue) -> Option<web_sys::ReadableStream> {
    Reflect::get(body, &JsValue::from_str("body")).ok().filter(|b| !b.is_null() && !b.is_undefined()).map(|b| b.unchecked_into())
}

/// Abandons an upstream answer's body (so the connection is not held for it).
pub fn discard(body: &JsValue) {
    if let Some(stream) = stream_of(body) {
        let _ = stream.cancel();
    }
}

thread_local! {
    static TOKENS: &'static TokenCache = Box::leak(Box::default());
}

/// The isolate's upstream tokens, shared by its requests.
pub fn tokens() -> &'static TokenCache {
    TOKENS.with(|t| *t)
}
