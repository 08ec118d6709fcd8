//! The storage totals' store in the worker (wasm only): one Durable Object, `RegistryStats`,
//! bound as `STATS`, keeping the rows of `stats` in its SQLite database, and the worker's side of
//! it, [`StatsStore`]: a request's changes sent after the response, a recount's pages
//! reconciled, a page of totals read.
//!
//! One object for the whole registry: a batch is one request to it, so it takes a few hundred
//! pushing requests a second, and `/admin/stats` is one read. Each batch is applied in one
//! SQLite transaction (`transactionSync`): all of it or nothing.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use worker::{durable_object, DurableObject, Env, Method, ObjectNamespace, Request, RequestInit, Response, SqlStorage, SqlStorageValue, State};

use super::stats::{self, Change, Entry, RecountPage, Reconciled, StatsPage, TallyRows, TallyStore, Totals};
use crate::oci::error::{RegistryError, Result};

/// The binding's name.
pub const BINDING: &str = "STATS";
/// The one object's name.
const OBJECT: &str = "registry";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entries (
  key TEXT PRIMARY KEY, size INTEGER NOT NULL, present INTEGER NOT NULL, at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tombstones ON entries (at) WHERE present = 0;
CREATE TABLE IF NOT EXISTS totals (
  repo TEXT PRIMARY KEY, blobs INTEGER NOT NULL, blob_bytes INTEGER NOT NULL,
  manifests INTEGER NOT NULL, manifest_bytes INTEGER NOT NULL, tags INTEGER NOT NULL) WITHOUT ROWID;
";

fn sql_err(e: worker::Error) -> RegistryError {
    RegistryError::internal(format!("stats sql: {e}"))
}

fn int(n: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(n as i64)
}

/// The rows of `stats` in the object's SQLite database.
struct SqlRows(SqlStorage);

#[derive(serde::Deserialize)]
struct EntryRow {
    key: String,
    size: u64,
    present: u64,
    at: u64,
}

impl EntryRow {
    fn entry(&self) -> Entry {
        Entry { size: self.size, present: self.present != 0, at: self.at }
    }
}

#[derive(serde::Deserialize)]
struct TotalsRow {
    repo: String,
    blobs: u64,
    blob_bytes: u64,
    manifests: u64,
    manifest_bytes: u64,
    tags: u64,
}

impl TotalsRow {
    fn into_pair(self) -> (String, Totals) {
        let TotalsRow { repo, blobs, blob_bytes, manifests, manifest_bytes, tags } = self;
        (repo, Totals { blobs, blob_bytes, manifests, manifest_bytes, tags })
    }
}

impl SqlRows {
    fn query<T: serde::de::DeserializeOwned>(&self, query: &str, args: Vec<SqlStorageValue>) -> Result<Vec<T>> {
        self.0.exec(query, args).map_err(sql_err)?.to_array().map_err(sql_err)
    }

    fn exec(&self, query: &str, args: Vec<SqlStorageValue>) -> Result<()> {
        self.0.exec(query, args).map(|_| ()).map_err(sql_err)
    }
}

impl TallyRows for SqlRows {
    fn entry(&self, key: &str) -> Result<Option<Entry>> {
        let rows: Vec<EntryRow> = self.query("SELECT * FROM entries WHERE key = ?", vec![key.into()])?;
        Ok(rows.first().map(EntryRow::entry))
    }

    fn set_entry(&self, key: &str, e: Entry) -> Result<()> {
        self.exec(
            "INSERT OR REPLACE INTO entries (key, size, present, at) VALUES (?, ?, ?, ?)",
            vec![key.into(), int(e.size), int(e.present as u64), int(e.at)],
        )
    }

    fn present_in(&self, prefix: &str, after: Option<&str>, upto: Option<&str>) -> Result<Vec<(String, Entry)>> {
        let from = after.unwrap_or(prefix);
        let rows: Vec<EntryRow> = match upto {
            Some(upto) => self.query("SELECT * FROM entries WHERE present = 1 AND key > ? AND key <= ? ORDER BY key", vec![from.into(), upto.into()])?,
            None => self.query("SELECT * FROM entries WHERE present = 1 AND key > ? AND key < ? ORDER BY key", vec![from.into(), stats::prefix_end(prefix).into()])?,
        };
        Ok(rows.into_iter().map(|r| (r.key.clone(), r.entry())).collect())
    }

    fn totals(&self, repo: &str) -> Result<Totals> {
        let rows: Vec<TotalsRow> = self.query("SELECT * FROM totals WHERE repo = ?", vec![repo.into()])?;
        Ok(rows.into_iter().next().map(|r| r.into_pair().1).unwrap_or_default())
    }

    fn set_totals(&self, repo: &str, t: &Totals) -> Result<()> {
        if t.is_empty() {
            return self.exec("DELETE FROM totals WHERE repo = ?", vec![repo.into()]);
        }
        self.exec(
            "INSERT OR REPLACE INTO totals (repo, blobs, blob_bytes, manifests, manifest_bytes, tags) VALUES (?, ?, ?, ?, ?, ?)",
            vec![repo.into(), int(t.blobs), int(t.blob_bytes), int(t.manifests), int(t.manifest_bytes), int(t.tags)],
        )
    }

    fn prune(&self, before: u64) -> Result<()> {
        self.exec("DELETE FROM entries WHERE present = 0 AND at < ?", vec![int(before)])
    }

    fn page(&self, after: &str, n: usize) -> Result<Vec<(String, Totals)>> {
        let rows: Vec<TotalsRow> = self.query("SELECT * FROM totals WHERE repo > ? ORDER BY repo LIMIT ?", vec![after.into(), int(n as u64)])?;
        Ok(rows.into_iter().map(TotalsRow::into_pair).collect())
    }
}

#[durable_object]
pub struct RegistryStats {
    state: State,
}

impl RegistryStats {
    fn rows(&self) -> SqlRows {
        SqlRows(self.state.storage().sql())
    }

    /// Runs `work` over the rows in one transaction: when it fails, every row stays as it was.
    fn transaction<T: 'static>(&self, work: impl FnOnce(&SqlRows) -> Result<T> + 'static) -> Result<T> {
        let storage = self.state.storage();
        let raw: &JsValue = storage.as_raw().as_ref();
        let transaction: js_sys::Function = js_sys::Reflect::get(raw, &"transactionSync".into())
            .ok()
            .and_then(|f| f.dyn_into().ok())
            .ok_or_else(|| RegistryError::internal("stats: no transactionSync"))?;
        let rows = self.rows();
        let outcome: Rc<RefCell<Option<Result<T>>>> = Rc::default();
        let out = outcome.clone();
        let body = Closure::once(move || -> std::result::Result<JsValue, JsValue> {
            let r = work(&rows);
            let failed = r.as_ref().err().map(|e| JsValue::from_str(&e.to_string()));
            *out.borrow_mut() = Some(r);
            // Throwing rolls the transaction back.
            failed.map_or(Ok(JsValue::UNDEFINED), Err)
        });
        let called = transaction.call1(raw, body.as_ref());
        match (called, outcome.take()) {
            (_, Some(Err(e))) => Err(e),
            (Ok(_), Some(Ok(v))) => Ok(v),
            (Err(e), _) => Err(RegistryError::internal(format!("stats transaction: {e:?}"))),
            (Ok(_), None) => Err(RegistryError::internal("stats: the transaction did not run")),
        }
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<Response> {
    Response::from_json(value).map_err(RegistryError::internal)
}

fn reply(r: Result<Response>) -> worker::Result<Response> {
    r.or_else(|e| Response::error(e.to_string(), 500))
}

impl DurableObject for RegistryStats {
    fn new(state: State, _env: Env) -> Self {
        if let Err(e) = state.storage().sql().exec(SCHEMA, None) {
            worker::console_error!("stats schema: {e}");
        }
        RegistryStats { state }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let url = req.url()?;
        match (req.method(), url.path()) {
            (Method::Post, "/apply") => {
                let changes: Vec<Change> = req.json().await?;
                let moved = self.transaction(move |rows| stats::apply_all(rows, &changes, js_sys::Date::now() as u64));
                reply(moved.and_then(|n| json(&serde_json::json!({"moved": n}))))
            }
            (Method::Post, "/reconcile") => {
                let page: RecountPage = req.json().await?;
                reply(self.transaction(move |rows| stats::reconcile(rows, &page, js_sys::Date::now() as u64)).and_then(|r| json(&r)))
            }
            (Method::Get, "/page") => {
                let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
                let after = q.get("after").map(String::as_str).unwrap_or("");
                let n = q.get("n").and_then(|n| n.parse().ok()).unwrap_or(100);
                reply(stats::page(&self.rows(), after, n).and_then(|p| json(&p)))
            }
            _ => Response::error("not found", 404),
        }
    }
}

/// The totals' store, if it is bound.
pub fn bound(env: &Env) -> Option<StatsStore> {
    env.durable_object(BINDING).ok().map(StatsStore)
}

async fn call(store: &ObjectNamespace, path: &str, init: &RequestInit) -> Result<Response> {
    let stub = store.get_by_name(OBJECT).map_err(|e| RegistryError::internal(format!("stats binding: {e}")))?;
    let req = Request::new_with_init(&format!("https://stats{path}"), init).map_err(RegistryError::internal)?;
    let mut resp = stub.fetch_with_request(req).await.map_err(|e| RegistryError::internal(format!("stats: {e}")))?;
    if resp.status_code() != 200 {
        let why = resp.text().await.unwrap_or_default();
        return Err(RegistryError::internal(format!("stats: {} {why}", resp.status_code())));
    }
    Ok(resp)
}

/// The store as the registry talks to it (`stats::TallyStore`): one request to the object per
/// call.
pub struct StatsStore(pub ObjectNamespace);

impl StatsStore {
    async fn post<T: serde::Serialize, R: serde::de::DeserializeOwned>(&self, path: &str, body: &T) -> Result<R> {
        let body = serde_json::to_string(body).map_err(RegistryError::internal)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(JsValue::from_str(&body)));
        let mut resp = call(&self.0, path, &init).await?;
        resp.json().await.map_err(|e| RegistryError::internal(format!("stats {path}: {e}")))
    }

    /// Up to `n` repositories' totals after `after`, and the registry's stored blobs.
    pub async fn page(&self, after: &str, n: usize) -> Result<StatsPage> {
        let query = url::form_urlencoded::Serializer::new(String::new()).append_pair("after", after).append_pair("n", &n.to_string()).finish();
        let mut resp = call(&self.0, &format!("/page?{query}"), &RequestInit::new()).await?;
        resp.json().await.map_err(|e| RegistryError::internal(format!("stats page: {e}")))
    }
}

#[async_trait::async_trait(?Send)]
impl TallyStore for StatsStore {
    async fn apply(&self, changes: &[Change]) -> Result<usize> {
        if changes.is_empty() {
            return Ok(0);
        }
        let out: serde_json::Value = self.post("/apply", &changes).await?;
        Ok(out["moved"].as_u64().unwrap_or(0) as usize)
    }

    async fn reconcile(&self, page: &RecountPage) -> Result<Reconciled> {
        self.post("/reconcile", page).await
    }
}
