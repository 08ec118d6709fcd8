//! The events' wasm side (see `events`): building an event from a request and sending it to
//! the queue after the response, and the queue consumer that delivers batches to the webhook.

use std::cell::RefCell;

use wasm_bindgen::prelude::*;
use worker::{Env, MessageBatch, MessageExt, QueueRetryOptionsBuilder};

use crate::app::{new_id, App, Context};
use crate::events::log::RequestLog;
use crate::storage::Removal;
use crate::auth::rules::Identity;
use crate::events::delivery::{self, SIGNATURE_HEADER};
use crate::events::envelope::{batch_body, Action, Actor, Event, RequestInfo, Source, Target, MEDIA_TYPE};
use crate::events::PullSampler;
use crate::oci::digest::Digest;
use crate::oci::name::RepoName;
use crate::routes::manifest_url;

thread_local! {
    static PULLS: RefCell<PullSampler> = RefCell::new(PullSampler::default());
}

/// What happened to a manifest, for [`emit`].
pub struct Happened<'a> {
    pub action: Action,
    pub name: &'a RepoName,
    pub digest: &'a Digest,
    pub media_type: &'a str,
    pub size: u64,
    pub tag: Option<&'a str>,
}

/// Sends the event of `what` to the queue after the response (nothing when events are off;
/// pulls sampled unless `NOTIFY_PULLS`).
pub fn emit(cx: &Context<'_>, what: Happened<'_>) {
    let Some(events) = &cx.app.events else { return };
    let now = cx.now_ms();
    if what.action == Action::Pull && !events.notify_pulls && !PULLS.with(|p| p.borrow_mut().admit(&format!("{}@{}", what.name, what.digest), now)) {
        return;
    }
    let header = |name: &str| cx.header(name).unwrap_or_default();
    let request = RequestInfo {
        id: cx.header("cf-ray").unwrap_or_else(|| cx.new_id()),
        addr: header("cf-connecting-ip"),
        host: cx.app.host().to_string(),
        method: format!("{:?}", cx.req.method()).to_uppercase(),
        useragent: header("user-agent"),
    };
    let actor = match cx.caller.identity() {
        Identity::User(u) => Some(u),
        Identity::Anonymous => None,
    };
    send(cx.app, event(cx.app, &what, now, request, actor));
}

/// The event of `what`, at `now`, for `request` by `actor`.
fn event(app: &App, what: &Happened<'_>, now: u64, request: RequestInfo, actor: Option<String>) -> Event {
    Event {
        id: new_id(),
        timestamp: String::from(js_sys::Date::new(&JsValue::from_f64(now as f64)).to_iso_string()),
        action: what.action,
        target: Target {
            media_type: what.media_type.to_string(),
            digest: what.digest.to_string(),
            size: what.size,
            length: what.size,
            repository: what.name.to_string(),
            url: format!("{}{}", app.origin, manifest_url(what.name, &what.digest.to_string())),
            tag: what.tag.map(str::to_string),
        },
        request,
        actor: Actor { name: actor },
        source: Source { addr: app.host().to_string() },
    }
}

/// Queues `event` after the response.
fn send(app: &App, event: Event) {
    let Some(events) = &app.events else { return };
    let queue = events.queue.clone();
    app.edge.after_response(wasm_bindgen_futures::future_to_promise(async move {
        if let Err(e) = queue.send(&event).await {
            worker::console_error!("event {} of {}: not queued: {e}", event.id, event.target.repository);
        }
        Ok(JsValue::UNDEFINED)
    }));
}

/// Announces what a lifecycle run removed (`by`: `retention` or `eviction`) as a client's
/// delete is announced: a `delete` event (with the actor `lifecycle:<by>`) when events are on,
/// and a request-log line (`DELETE`, route `manifest`, status 202, user `lifecycle:<by>`).
pub fn announce_removals(app: &App, removed: &[Removal], by: &str, now: u64) {
    let actor = format!("lifecycle:{by}");
    for r in removed {
        let (Ok(name), Ok(digest)) = (RepoName::parse(&r.repository), Digest::parse(&r.digest)) else { continue };
        let log = RequestLog { method: "DELETE".into(), route: "manifest", repository: Some(r.repository.clone()), status: 202, user: Some(actor.clone()), ..Default::default() };
        worker::console_log!("{}", log.line());
        if app.events.is_none() {
            continue;
        }
        let what = Happened { action: Action::Delete, name: &name, digest: &digest, media_type: "", size: 0, tag: r.tag.as_deref() };
        let request = RequestInfo { id: new_id(), host: app.host().to_string(), method: "DELETE".into(), ..Default::default() };
        send(app, event(app, &what, now, request, Some(actor.clone())));
    }
}

#[wasm_bindgen(inline_js = r#"
// POSTs one batch to the webhook; the status, or 0 when no answer came within `timeoutMs`.
export async function postWebhook(url, body, headers, timeoutMs) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const response = await fetch(url, { method: "POST", body, headers, signal: controller.signal });
    await response.body?.cancel();
    return response.status;
  } catch {
    return 0;
  } finally {
    clearTimeout(timer);
  }
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = postWebhook)]
    async fn post_webhook(url: &str, body: js_sys::Uint8Array, headers: js_sys::Object, timeout_ms: u32) -> JsValue;
}

/// Whether the missing `WEBHOOK_SECRET` was logged (once per isolate).
static UNSIGNED_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How long the webhook may take to answer.
const WEBHOOK_TIMEOUT_MS: u32 = 10_000;

/// The queue consumer: delivers a batch to `WEBHOOK_URL` (signed with `WEBHOOK_SECRET`), acks it
/// on 2xx, else retries it with backoff. Without a webhook the events stay with the queue's
/// other consumers, if any: this one acks them.
pub async fn deliver(batch: MessageBatch<Event>, env: &Env) -> worker::Result<()> {
    let Some(url) = env.var("WEBHOOK_URL").ok().map(|v| v.to_string()).filter(|v| !v.is_empty()) else {
        batch.ack_all();
        return Ok(());
    };
    let messages = batch.messages()?;
    let events: Vec<Event> = messages.iter().map(|m| m.body().clone()).collect();
    if events.is_empty() {
        return Ok(());
    }
    let body = batch_body(&events);
    let headers = js_sys::Object::new();
    let set = |k: &str, v: &str| js_sys::Reflect::set(&headers, &JsValue::from_str(k), &JsValue::from_str(v));
    set("Content-Type", MEDIA_TYPE)?;
    set("X-Registry-Delivery", &events[0].id)?;
    let secret = env.secret("WEBHOOK_SECRET").ok().map(|s| s.to_string()).or_else(|| env.var("WEBHOOK_SECRET").ok().map(|v| v.to_string()));
    match secret.filter(|s| !s.is_empty()) {
        Some(secret) => {
            set(SIGNATURE_HEADER, &delivery::signature(secret.as_bytes(), &body))?;
        }
        None => {
            if !UNSIGNED_WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                worker::console_warn!("WEBHOOK_SECRET is not set: events go to WEBHOOK_URL unsigned, and a receiver cannot tell them from forged ones");
            }
        }
    }
    let status = post_webhook(&url, js_sys::Uint8Array::from(body.as_slice()), headers, WEBHOOK_TIMEOUT_MS).await.as_f64().unwrap_or(0.0) as u16;
    if delivery::delivered(status) {
        batch.ack_all();
        return Ok(());
    }
    let oldest = messages.iter().map(|m| m.timestamp().as_millis()).min().unwrap_or(0);
    let delay = delivery::retry_delay_s((js_sys::Date::now() as u64).saturating_sub(oldest));
    worker::console_warn!("webhook answered {status} to {} events: retrying in {delay} s", events.len());
    batch.retry_all_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(delay).build());
    Ok(())
}
