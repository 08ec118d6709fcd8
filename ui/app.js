// The registry's web UI: one module, no framework. It reads the registry API (/v2/) and the
// registry's own summaries (/v2/_ui/info, /v2/<name>/_ui/tags), authenticating as a Docker
// client does: the password goes once to the token endpoint, which answers with a refresh token
// (`offline_token=true`); the page keeps that, never the password, and buys each request's
// Bearer token with it.
// Pages (hash routes): #/ repositories · #/r/<name> tags · #/r/<name>/-/<ref> one manifest ·
// #/signin. Every value from the registry is put into the page as text, never as HTML.

const MANIFEST_TYPES = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");
const CATALOG_PAGE = 100;
const TAGS_PAGE = 20;
const CONFIG_MAX = 1 << 20;
// An image's config, as OCI and as Docker (`docker push`) name it.
const IMAGE_CONFIG_TYPES = ["application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"];

let info = null; // /v2/_ui/info
sessionStorage.removeItem("registry.creds"); // where an older page kept the password itself
let session = JSON.parse(sessionStorage.getItem("registry.session") || "null"); // {user, refresh}
const tokens = new Map(); // scope → {token, until}

// ---- DOM helpers -------------------------------------------------------------------------

/** An element with attributes (on* → listeners) and children (strings become text). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

// Every page starts a view (`begin`) and shows itself through it: a page still loading when the
// user has moved on (or signed out) shows nothing, so it never replaces the page that followed.
let currentView = 0;

function begin() {
  const view = ++currentView;
  return (title, ...content) => {
    if (view === currentView) show(title, ...content);
  };
}

function show(title, ...content) {
  document.title = title ? `${title} · Registry` : "Registry";
  const main = document.getElementById("main");
  main.replaceChildren(...content.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  main.focus({ preventScroll: true });
}

function say(text) {
  const status = document.getElementById("status");
  status.textContent = text;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => (status.textContent = ""), 4000);
}

function table(headers, rows, label) {
  return h("div", { class: "table", role: "region", "aria-label": label, tabindex: "0" },
    h("table", {}, h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col", class: x.cls }, x.text ?? x)))),
      h("tbody", {}, rows)));
}

export function formatSize(bytes) {
  if (bytes === null || bytes === undefined) return "unknown";
  if (bytes < 1000) return `${bytes} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let v = bytes / 1000, i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v.toFixed(1)} ${units[i]}`;
}

function formatTime(t) {
  if (t === null || t === undefined || t === "") return "unknown";
  const d = new Date(t);
  if (isNaN(d)) return String(t);
  return d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

const short = (digest) => (digest || "").replace(/^(sha\d+:)(.{12}).*$/, "$1$2…");
const repoHref = (name) => `#/r/${name}`;
const manifestHref = (name, ref) => `#/r/${name}/-/${ref}`;

// ---- The API, as a Docker client uses it -------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const first = body?.errors?.[0];
    super(first ? `${first.code}: ${first.message}` : `HTTP ${status}`);
    this.status = status;
    this.code = first?.code;
  }
}

function basic(user, pass) {
  const bytes = new TextEncoder().encode(`${user}:${pass}`);
  return "Basic " + btoa(String.fromCharCode(...bytes));
}

/** The token endpoint's answer for `scope`, asked with `authorization` (none: anonymous). */
async function tokenAnswer(scope, authorization, extra = {}) {
  const url = new URL(info.realm, location.origin);
  const query = new URLSearchParams({ service: info.service, ...extra });
  if (scope) query.set("scope", scope);
  const r = await fetch(`${url.pathname}?${query}`, { headers: authorization ? { Authorization: authorization } : {} });
  if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
  return r.json();
}

/** A token for `scope` from the token endpoint (bought with the session's refresh token). */
async function token(scope) {
  const key = scope || "";
  const cached = tokens.get(key);
  if (cached && cached.until > Date.now()) return cached.token;
  let body;
  try {
    body = await tokenAnswer(scope, session ? `Bearer ${session.refresh}` : null);
  } catch (e) {
    // The session ended (expired, or the password changed): signed out.
    if (e.status === 401 && session) endSession();
    throw e;
  }
  const value = body.token || body.access_token;
  tokens.set(key, { token: value, until: Date.now() + Math.max(10, (body.expires_in || 60) - 10) * 1000 });
  return value;
}

/** The scope a `WWW-Authenticate: Bearer ...` challenge asks for ("" when it names none). */
function challengedScope(header) {
  if (!header || !/^bearer\s/i.test(header)) return null;
  const m = header.match(/scope="([^"]*)"/i);
  return m ? m[1] : "";
}

/** A registry request. Signed in, it carries a token for `scope`; anonymous, it answers a
 * Bearer challenge once, as a Docker client does. */
async function api(path, { scope, method = "GET", accept } = {}) {
  const headers = {};
  if (accept) headers.Accept = accept;
  if (info.auth && session) headers.Authorization = `Bearer ${await token(scope)}`;
  let r = await fetch(path, { method, headers });
  if (r.status === 401 && info.auth) {
    const asked = challengedScope(r.headers.get("WWW-Authenticate"));
    if (asked !== null && asked !== scope) {
      headers.Authorization = `Bearer ${await token(asked)}`;
      r = await fetch(path, { method, headers });
    }
  }
  return r;
}

async function json(path, opts) {
  const r = await api(path, opts);
  if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
  return { body: await r.json(), headers: r.headers };
}

const repoScope = (name, actions = "pull") => `repository:${name}:${actions}`;

function mirrorOf(name) {
  const m = (info.mirrors || []).filter((u) => name.startsWith(u.prefix) && name.length > u.prefix.length);
  return m.sort((a, b) => b.prefix.length - a.prefix.length)[0] || null;
}

function mirrorBadge(name) {
  const m = mirrorOf(name);
  return m ? h("span", { class: "badge", title: `pull-through mirror of ${m.upstream}` }, `mirror of ${new URL(m.upstream).host}`) : null;
}

function failure(e, what) {
  const signIn = e.status === 401 && info.auth && !session;
  return h("div", {},
    h("p", { class: "error" }, e.status === 404 ? `${what} not found.` : `Could not load ${what}: ${e.message}`),
    signIn ? h("p", {}, h("a", { href: "#/signin" }, "Sign in"), " to see more.") : null);
}

function copyButton(text, label) {
  return h("button", {
    type: "button", "aria-label": `Copy: ${text}`, title: text,
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(text);
        say(`Copied: ${text}`);
      } catch {
        window.prompt("Copy this:", text);
      }
    },
  }, label);
}

// ---- Pages -------------------------------------------------------------------------------

async function repositoriesPage() {
  const render = begin();
  const filter = h("input", { id: "filter", type: "search", autocomplete: "off", spellcheck: "false", placeholder: "name" });
  const list = h("ul", { class: "repos", "aria-label": "Repositories" });
  const more = h("button", { type: "button", id: "more", hidden: true }, "Load more");
  const count = h("p", { class: "muted", id: "repo-count" });
  const names = [];
  let next = `/v2/_catalog?n=${CATALOG_PAGE}`;
  const renderList = () => {
    const q = filter.value.trim().toLowerCase();
    const shown = names.filter((n) => n.includes(q));
    list.replaceChildren(...shown.map((n) => h("li", {}, h("a", { href: repoHref(n) }, n), mirrorBadge(n))));
    count.textContent = names.length === 0 ? "No repositories yet."
      : `${shown.length} of ${names.length}${next ? "+" : ""} repositories`;
    more.hidden = !next;
  };
  const load = async () => {
    const { body, headers } = await json(next, { scope: "registry:catalog:*" });
    names.push(...(body.repositories || []));
    const link = headers.get("Link");
    next = link ? link.match(/<([^>]+)>/)?.[1] ?? null : null;
    renderList();
  };
  filter.addEventListener("input", renderList);
  more.addEventListener("click", () => load().catch((e) => say(e.message)));
  render("Repositories",
    h("h1", {}, "Repositories"),
    h("div", { class: "field" }, h("label", { for: "filter" }, "Filter by name"), filter),
    count, list, more,
    h("p", { class: "muted" }, "Push with ", h("code", {}, `docker push ${location.host}/<name>:<tag>`)));
  try {
    await load();
  } catch (e) {
    list.replaceWith(failure(e, "the repositories"));
  }
}

async function repositoryPage(name, offset = 0) {
  const render = begin();
  let summary;
  try {
    ({ body: summary } = await json(`/v2/${name}/_ui/tags?n=${TAGS_PAGE}&offset=${offset}`, { scope: repoScope(name, "pull,delete") }));
  } catch (e) {
    return render(name, crumbs(name), h("h1", {}, name), failure(e, `Repository ${name}`));
  }
  const host = location.host;
  const rows = summary.tags.map((t) => {
    const pull = `docker pull ${host}/${name}:${t.tag}`;
    const kind = t.platforms.length ? `index · ${t.platforms.length} platform${t.platforms.length === 1 ? "" : "s"}`
      : t.artifactType ? t.artifactType : "image";
    return h("tr", { "data-tag": t.tag },
      h("td", {}, h("a", { href: manifestHref(name, t.tag) }, t.tag)),
      h("td", { class: "hide-narrow" }, h("code", { title: t.digest }, short(t.digest))),
      h("td", { class: "wrap" }, kind),
      h("td", { class: "size" }, formatSize(t.size)),
      h("td", { class: "hide-narrow" }, formatTime(t.created)),
      h("td", { class: "hide-narrow" }, formatTime(t.pushed)),
      h("td", {}, h("div", { class: "actions" },
        copyButton(pull, "Copy pull"),
        summary.actions.delete ? h("button", {
          type: "button", class: "danger", "aria-label": `Delete tag ${t.tag}`,
          onclick: () => deleteReference(name, t.tag, `tag ${t.tag}`, () => repositoryPage(name, offset)),
        }, "Delete") : null)));
  });
  const pages = h("div", { class: "pager" },
    offset > 0 ? h("button", { type: "button", onclick: () => repositoryPage(name, Math.max(0, offset - TAGS_PAGE)) }, "Previous") : null,
    h("span", { class: "muted" }, summary.total ? `${offset + 1}–${offset + summary.tags.length} of ${summary.total} tags` : "No tags."),
    offset + TAGS_PAGE < summary.total ? h("button", { type: "button", onclick: () => repositoryPage(name, offset + TAGS_PAGE) }, "Next") : null);
  render(name, crumbs(name),
    h("h1", {}, name, mirrorBadge(name)),
    h("p", {}, h("code", { id: "pull-command" }, `docker pull ${host}/${name}:<tag>`)),
    summary.tags.length ? table(["Tag", { text: "Digest", cls: "hide-narrow" }, "Type", "Size", { text: "Created", cls: "hide-narrow" }, { text: "Pushed", cls: "hide-narrow" }, "Actions"], rows, "Tags") : null,
    pages,
    summary.cut ? h("p", { class: "muted" }, "Only the first 10,000 tags are ordered by push time.") : null);
}

function crumbs(name, ref) {
  return h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
    h("a", { href: "#/" }, "Repositories"), " / ",
    ref ? h("a", { href: repoHref(name) }, name) : name,
    ref ? ` / ${ref}` : null);
}

async function deleteReference(name, ref, what, after) {
  if (!window.confirm(`Delete ${what} of ${name}? This cannot be undone.`)) return;
  const r = await api(`/v2/${name}/manifests/${ref}`, { method: "DELETE", scope: repoScope(name, "delete") });
  if (r.status === 202) {
    say(`Deleted ${what}.`);
    await after();
  } else {
    const e = new ApiError(r.status, await r.json().catch(() => null));
    say(`Could not delete ${what}: ${e.message}`);
  }
}

async function manifestPage(name, ref) {
  const render = begin();
  let manifest, digest, mediaType;
  try {
    const { body, headers } = await json(`/v2/${name}/manifests/${ref}`, { scope: repoScope(name), accept: MANIFEST_TYPES });
    manifest = body;
    digest = headers.get("Docker-Content-Digest");
    mediaType = headers.get("Content-Type");
  } catch (e) {
    return render(`${name}:${ref}`, crumbs(name, ref), h("h1", {}, `${name}:${ref}`), failure(e, `Manifest ${ref}`));
  }
  const sections = [];
  if (Array.isArray(manifest.manifests)) sections.push(platformsSection(name, manifest.manifests));
  else sections.push(...(await imageSections(name, manifest)));
  const [referrers, actions] = await Promise.all([referrersSection(name, digest), repositoryActions(name)]);
  const title = ref.includes(":") ? `${name}@${short(ref)}` : `${name}:${ref}`;
  render(title, crumbs(name, ref.includes(":") ? short(ref) : ref),
    h("h1", {}, title, mirrorBadge(name)),
    h("dl", {},
      h("dt", {}, "Digest"), h("dd", {}, h("code", { id: "digest" }, digest), " ", copyButton(`${location.host}/${name}@${digest}`, "Copy reference")),
      h("dt", {}, "Media type"), h("dd", {}, manifest.mediaType || mediaType),
      manifest.artifactType ? [h("dt", {}, "Artifact type"), h("dd", {}, manifest.artifactType)] : null,
      manifest.subject ? [h("dt", {}, "Subject"), h("dd", {}, h("a", { href: manifestHref(name, manifest.subject.digest) }, short(manifest.subject.digest)))] : null),
    actions.delete ? h("p", {}, h("button", {
      type: "button", class: "danger", id: "delete-manifest",
      onclick: () => deleteReference(name, digest, `manifest ${short(digest)} and every tag pointing at it`, () => { location.hash = repoHref(name); }),
    }, "Delete manifest")) : null,
    ...sections, referrers,
    h("h2", {}, "Manifest JSON"),
    h("pre", { id: "raw", tabindex: "0", "aria-label": "Manifest JSON" }, JSON.stringify(manifest, null, 2)));
}

async function repositoryActions(name) {
  try {
    return (await json(`/v2/${name}/_ui/tags?n=0`, { scope: repoScope(name, "pull,delete") })).body.actions;
  } catch {
    return {};
  }
}

function platformsSection(name, entries) {
  const platform = (p) => p ? [p.os, p.architecture, p.variant].filter(Boolean).join("/") : "unknown";
  return [h("h2", {}, "Platforms"),
    table(["Platform", "Digest", "Manifest size"], entries.map((m) => h("tr", {},
      h("td", { class: "platform" }, h("a", { href: manifestHref(name, m.digest) }, platform(m.platform))),
      h("td", {}, h("code", { title: m.digest }, short(m.digest))),
      h("td", {}, formatSize(m.size)))), "Platforms")];
}

async function imageSections(name, manifest) {
  const layers = manifest.layers || [];
  const total = layers.reduce((sum, l) => sum + (l.size || 0), 0);
  const out = [];
  const config = manifest.config;
  if (IMAGE_CONFIG_TYPES.includes(config?.mediaType) && config.size <= CONFIG_MAX) {
    try {
      const { body } = await json(`/v2/${name}/blobs/${config.digest}`, { scope: repoScope(name) });
      out.push(...configSection(body));
    } catch (e) {
      out.push(h("h2", {}, "Config"), h("p", { class: "muted" }, `Config not available: ${e.message}`));
    }
  }
  out.push(h("h2", {}, `Layers (${layers.length}, ${formatSize(total)})`),
    table(["#", "Digest", "Media type", "Size"], layers.map((l, i) => h("tr", {},
      h("td", {}, String(i + 1)),
      h("td", {}, h("code", { title: l.digest }, short(l.digest))),
      h("td", { class: "wrap" }, l.mediaType || ""),
      h("td", { class: "size" }, formatSize(l.size)))), "Layers"));
  return out;
}

function configSection(cfg) {
  const c = cfg.config || {};
  const items = [
    ["Created", cfg.created ? formatTime(cfg.created) : null],
    ["Platform", [cfg.os, cfg.architecture, cfg.variant].filter(Boolean).join("/") || null],
    ["Entrypoint", c.Entrypoint ? JSON.stringify(c.Entrypoint) : null],
    ["Command", c.Cmd ? JSON.stringify(c.Cmd) : null],
    ["Working dir", c.WorkingDir || null],
    ["User", c.User || null],
  ].filter(([, v]) => v);
  const out = [h("h2", {}, "Config"), h("dl", { id: "config" }, items.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))];
  if (c.Env?.length) out.push(h("h3", {}, "Environment"), h("ul", { id: "env" }, c.Env.map((e) => h("li", {}, h("code", {}, e)))));
  const labels = Object.entries(c.Labels || {});
  if (labels.length) out.push(h("h3", {}, "Labels"), h("dl", { id: "labels" }, labels.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
  const history = (cfg.history || []).filter((x) => x.created_by);
  if (history.length) out.push(h("h3", {}, "History"), h("ol", { id: "history" }, history.map((x) => h("li", {}, h("code", {}, x.created_by)))));
  return out;
}

async function referrersSection(name, digest) {
  let list = [];
  try {
    list = (await json(`/v2/${name}/referrers/${digest}`, { scope: repoScope(name) })).body.manifests || [];
  } catch {
    return null;
  }
  if (!list.length) return h("section", { id: "referrers" }, h("h2", {}, "Referrers"), h("p", { class: "muted" }, "None."));
  const groups = new Map();
  for (const r of list) {
    const type = r.artifactType || r.mediaType || "unknown";
    groups.set(type, [...(groups.get(type) || []), r]);
  }
  return h("section", { id: "referrers" }, h("h2", {}, `Referrers (${list.length})`),
    [...groups].map(([type, items]) => [
      h("h3", {}, type),
      h("ul", { "data-artifact-type": type }, items.map((r) => h("li", {},
        h("a", { href: manifestHref(name, r.digest) }, short(r.digest)), ` · ${formatSize(r.size)}`,
        r.annotations?.["org.opencontainers.image.created"] ? ` · ${formatTime(r.annotations["org.opencontainers.image.created"])}` : null))),
    ]));
}

function signInPage() {
  const user = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
  const pass = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      tokens.clear();
      try {
        const answer = await tokenAnswer("", basic(user.value, pass.value), { offline_token: "true" });
        if (!answer.refresh_token) throw new Error("the registry gave no session");
        session = { user: user.value, refresh: answer.refresh_token };
        sessionStorage.setItem("registry.session", JSON.stringify(session));
        renderSession();
        say(`Signed in as ${session.user}.`);
        location.hash = "#/";
      } catch (e) {
        session = null;
        tokens.clear();
        error.textContent = e.status === 401 ? "Wrong username or password." : `Could not sign in: ${e.message}`;
        pass.focus();
      }
    },
  },
  h("div", { class: "field" }, h("label", { for: "username" }, "Username"), user),
  h("div", { class: "field" }, h("label", { for: "password" }, "Password"), pass),
  error, h("button", { type: "submit" }, "Sign in"));
  begin()("Sign in", h("h1", {}, "Sign in"), form);
  user.focus();
}

/** Forgets the session (its refresh token and every token it bought). */
function endSession() {
  session = null;
  tokens.clear();
  sessionStorage.removeItem("registry.session");
  renderSession();
}

function renderSession() {
  const nav = document.getElementById("session");
  if (!info?.auth) return nav.replaceChildren(info?.readOnly ? h("span", { class: "muted" }, "read-only") : "");
  nav.replaceChildren(...(session
    ? [h("span", { id: "user" }, `Signed in as ${session.user}`), h("button", {
      type: "button", class: "link", id: "signout",
      onclick: () => {
        endSession();
        say("Signed out.");
        route();
      },
    }, "Sign out")]
    : [h("a", { href: "#/signin", id: "signin" }, "Sign in")]));
}

async function route() {
  const hash = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
  if (hash === "signin") return signInPage();
  const m = hash.match(/^r\/(.+?)(?:\/-\/(.+))?$/);
  if (m && m[2]) return manifestPage(m[1], m[2]);
  if (m) return repositoryPage(m[1]);
  return repositoriesPage();
}

async function start() {
  try {
    info = (await (await fetch("/v2/_ui/info")).json());
  } catch (e) {
    return show("Error", h("p", { class: "error" }, `The registry did not answer: ${e.message}`));
  }
  renderSession();
  // The skip link moves focus without changing the route (the hash is the route here).
  document.querySelector("a.skip").addEventListener("click", (ev) => {
    ev.preventDefault();
    document.getElementById("main").focus();
  });
  window.addEventListener("hashchange", () => route().catch((e) => say(e.message)));
  await route();
  document.documentElement.dataset.ready = "true";
}

start();
