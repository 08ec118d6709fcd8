//! `POST /admin/lifecycle[?dry_run=true][&budget=N]`: runs the lifecycle work (upload purge,
//! mirror eviction, retention, the storage totals' recount, garbage collection step) now and answers its summary as JSON. The cron trigger runs the
//! same [`run`].

use worker::Response;

use super::json_reply;
use crate::app::{App, Context};
use crate::oci::error::{Code, RegistryError, Result};
use crate::oci::name::{RepoName, Tag};
use crate::storage::eviction::DAY_MS;
use crate::storage::lifecycle::{self, Summary};

/// One lifecycle run with the app's configuration; logs its one-line summary.
pub async fn run(app: &App, now: u64, dry_run: bool, budget: Option<u64>) -> Result<Summary> {
    let mut cfg = app.config.lifecycle.clone();
    cfg.dry_run = dry_run;
    if let Some(b) = budget {
        cfg.budget = b.clamp(8, cfg.budget);
    }
    let upstreams = &app.config.upstreams;
    let evict_after = |name: &RepoName| upstreams.resolve(name)?.upstream.evict_after_days.map(|d| d * DAY_MS);
    let evicts = upstreams.entries().iter().any(|u| u.evict_after_days.is_some());
    let retention = &app.config.retention;
    // Mirrored repositories are kept by their eviction, not by retention.
    let rule_for = |name: &RepoName| if upstreams.resolve(name).is_some() { None } else { retention.rule_for(name) };
    let immutable_tags = &app.config.immutable_tags;
    let immutable = |name: &RepoName, tag: &Tag| immutable_tags.rule_for(name, tag);
    let policies = lifecycle::Policies {
        evict_after: if evicts { Some(&evict_after) } else { None },
        retention: if retention.is_empty() { None } else { Some(&rule_for) },
        immutable: &immutable,
    };
    let totals = app.stats.as_deref().map(|s| s as &dyn crate::storage::stats::TallyStore);
    let mut summary = lifecycle::run(&app.r2, &app.edge, &app.r2, now, &cfg, &policies, totals).await?;
    for digest in &summary.deleted {
        app.edge.forget_blob(digest).await;
    }
    summary.finished_ms = js_sys::Date::now() as u64;
    worker::console_log!("{}", summary.line(summary.finished_ms.saturating_sub(now)));
    if let Some(e) = &summary.eviction {
        super::events::announce_removals(app, &e.removed, "eviction", now);
    }
    if let Some(r) = &summary.retention {
        super::events::announce_removals(app, &r.removed, "retention", now);
        let verb = if dry_run { "would delete" } else { "deleted" };
        for what in &r.deleted {
            worker::console_log!("retention: {verb} {what}");
        }
        for what in &r.kept {
            worker::console_log!("retention: kept {what}");
        }
    }
    Ok(summary)
}

pub async fn post(cx: &Context<'_>) -> Result<Response> {
    let dry_run = matches!(cx.query("dry_run"), Some("true" | "1"));
    if cx.app.config.auth.read_only && !dry_run {
        return Err(RegistryError::new(Code::Unsupported, "the registry is in read-only mode"));
    }
    let budget = match cx.query("budget") {
        None => None,
        Some(b) => Some(b.parse().map_err(|_| RegistryError::new(Code::Unsupported, format!("invalid budget {b:?}")))?),
    };
    let summary = run(cx.app, cx.now_ms(), dry_run, budget).await?;
    json_reply(200, &[], &serde_json::to_value(&summary).map_err(RegistryError::internal)?)
}
