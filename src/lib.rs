//! An OCI Distribution registry for the edge.
//!
//! Layers, top to bottom: the wasm entry point (below, wasm only) builds an `App` from the
//! worker's bindings and hands each request to [`routes`] (URL → typed route) → `api` handlers
//! → [`mirror`] (the pull-through cache of upstream registries, for mirrored names) →
//! [`storage`] (path mapper, stores, bucket adapters) → [`oci`] (the spec's vocabulary); [`auth`]
//! decides who may do what, [`policy`] what a push, delete or lifecycle run may change
//! (immutable tags, retention), [`events`] what other systems are told (events, request logs).
//! Everything but the entry, `app`, `api` and the adapters over the platform (`storage::r2`,
//! `storage::edge`, `mirror::web`) is target-independent and tested natively with `cargo test`.

pub mod auth;
pub mod events;
pub mod http;
pub mod mirror;
pub mod oci;
pub mod policy;
pub mod routes;
pub mod storage;

#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
mod app;

#[cfg(target_arch = "wasm32")]
mod entry {
    use worker::{event, Context as WorkerContext, Env, Request, Response, Result, ScheduleContext, ScheduledEvent};

    use crate::api;
    use crate::app::App;
    use crate::events::log::RequestLog;
    use crate::oci::error::RegistryError;
    use crate::routes::{query_pairs, Route};
    use crate::storage::meter;

    #[event(fetch)]
    async fn fetch(req: Request, env: Env, ctx: WorkerContext) -> Result<Response> {
        let started = js_sys::Date::now() as u64;
        let url = req.url()?;
        let path = url.path().to_string();
        let method = req.method();
        let mut log = RequestLog { method: format!("{method:?}").to_uppercase(), route: "none", ..Default::default() };
        if !crate::routes::is_api_path(&path) && crate::app::ui_enabled(&env) {
            if let Some(resp) = api::ui::asset(&env, req.clone()?, &path).await {
                log.route = "ui";
                report(&env, log, &resp, started);
                return Ok(resp);
            }
        }
        // The same JS request, kept to read what the handler leaves of its body (api::drain).
        let raw = <web_sys::Request as Clone>::clone(req.inner()); // a second handle, not JS clone()
        let mut drain_limit = api::drain::limit(crate::app::DEFAULT_MAX_BODY);
        let mut finish = None;
        log.bytes_in = req.headers().get("content-length").ok().flatten().and_then(|v| v.trim().parse().ok());
        let outcome = async {
            let route = Route::parse(&path)?;
            log.route = route.kind();
            log.repository = route.name().map(|n| n.to_string());
            let app = App::from_env(&env, &crate::app::public_origin(&env, &url.origin().ascii_serialization()))?;
            drain_limit = api::drain::limit(app.config.max_body);
            let query = query_pairs(url.query().unwrap_or(""));
            let resp = api::handle(route, &app, req, query).await;
            log.user = app.caller_name.take();
            finish = Some((app.meter.clone(), app.edge.take_pending(), app.stats.clone().map(|s| (s, app.ledger.clone()))));
            resp
        }
        .await;
        let mut resp = match outcome {
            Ok(resp) => resp,
            Err(e) => {
                if e.status() >= 500 {
                    worker::console_error!("{method:?} {path}: {e}");
                }
                log.error = Some(e.code.as_str().to_string());
                api::error_reply(&e).or_else(|e: RegistryError| Response::error(e.to_string(), 500))?
            }
        };
        // Before the answer goes out: an unread body would cost the client its connection.
        api::drain::unread_body(&raw, drain_limit).await;
        if let Some((meter, pending, stats)) = finish {
            log.ops = meter.summary();
            resp.headers_mut().set(meter::HEADER, &log.ops)?;
            // Cache fills and mirror commits finish after the response; then the storage totals
            // take every change the request made, theirs included.
            ctx.wait_until(async move {
                for p in pending {
                    let _ = wasm_bindgen_futures::JsFuture::from(p).await;
                }
                if let Some((store, ledger)) = stats {
                    send_changes(&store, &ledger).await;
                }
            });
        }
        report(&env, log, &resp, started);
        Ok(resp)
    }

    /// Completes the request's log line from its response and writes it, and its data point to
    /// the `METRICS` dataset when one is bound (a failed write never fails the request).
    fn report(env: &Env, mut log: RequestLog, resp: &Response, started: u64) {
        log.status = resp.status_code();
        log.bytes_out = resp.headers().get("content-length").ok().flatten().and_then(|v| v.parse().ok());
        log.upstream = resp.headers().get(crate::mirror::freshness::HEADER).ok().flatten();
        log.duration_ms = (js_sys::Date::now() as u64).saturating_sub(started);
        worker::console_log!("{}", log.line());
        let Ok(dataset) = env.analytics_engine("METRICS") else { return };
        let m = log.metric();
        let point = worker::AnalyticsEngineDataPointBuilder::new().indexes([m.index.as_str()]).blobs(m.blobs).doubles(m.doubles);
        if let Err(e) = point.write_to(&dataset) {
            worker::console_warn!("metrics: {e}");
        }
    }

    /// Sends the changes noted in `ledger` to the storage totals (`storage::stats`); a failure
    /// is logged with how many changes the totals missed (the daily recount repairs them).
    async fn send_changes(store: &crate::storage::stats_object::StatsStore, ledger: &crate::storage::stats::Ledger) {
        use crate::storage::stats::TallyStore;
        let changes = ledger.take();
        if let Err(e) = store.apply(&changes).await {
            worker::console_error!("stats: {} changes not recorded: {e}", changes.len());
        }
    }

    /// The queue consumer: delivers events to the webhook (`api::events::deliver`).
    #[event(queue)]
    async fn queue(batch: worker::MessageBatch<crate::events::envelope::Event>, env: Env, _ctx: WorkerContext) -> Result<()> {
        api::events::deliver(batch, &env).await
    }

    /// The cron trigger: one lifecycle run (see `storage::lifecycle`). Cache keys need the
    /// public origin (`REGISTRY_ORIGIN`), which a scheduled event does not carry.
    #[event(scheduled)]
    async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
        let origin = crate::app::public_origin(&env, "http://localhost");
        let outcome = async {
            let app = App::from_env(&env, &origin)?;
            let run = api::admin::run(&app, js_sys::Date::now() as u64, false, None).await;
            // What the run left to finish (its events queued, cache entries forgotten) finishes
            // before the scheduled event ends.
            for p in app.edge.take_pending() {
                let _ = wasm_bindgen_futures::JsFuture::from(p).await;
            }
            if let Some(store) = &app.stats {
                send_changes(store, &app.ledger).await;
            }
            run
        }
        .await;
        if let Err(e) = outcome {
            worker::console_error!("lifecycle run failed: {e}");
        }
    }
}
