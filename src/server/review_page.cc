// The review page served at /review, and its script at /review.js (nothing
// else fetched but this server's API). The script is a separate resource, and
// binds its handlers with addEventListener, so the page's Content-Security-
// Policy needs no 'unsafe-inline' for scripts. It keeps the reviewer's key in
// sessionStorage and sends it as a header; thumbnails are fetched with the
// header too and shown as blob: URLs.
#include "server/server.h"

namespace doppel::server {

const char* ReviewPageHtml() {
  return R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>doppel review</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; background: #f6f6f4; }
  header { background: #2d3a4a; color: #fff; padding: 8px 16px; display: flex; gap: 16px; align-items: center; }
  header h1 { font-size: 16px; margin: 0; }
  header .keys { font-size: 12px; opacity: .8; }
  main { padding: 16px; }
  #login { max-width: 460px; margin: 40px auto; background: #fff; padding: 20px; border-radius: 6px; }
  #login input { width: 100%; box-sizing: border-box; padding: 6px; font-family: monospace; }
  .nav { display: flex; gap: 8px; align-items: center; margin-bottom: 12px; }
  .members { display: flex; gap: 12px; flex-wrap: wrap; }
  .member { background: #fff; border: 2px solid #ddd; border-radius: 6px; padding: 8px; width: 340px; }
  .member.master { border-color: #2a7; }
  .member img { max-width: 320px; max-height: 320px; display: block; margin: 0 auto 6px; background: #eee; }
  .member h3 { font-size: 13px; margin: 0 0 4px; word-break: break-all; }
  .badge { display: inline-block; padding: 1px 6px; border-radius: 8px; background: #ddd; font-size: 12px; }
  .badge.master { background: #2a7; color: #fff; }
  .badge.most-information { background: #27a; color: #fff; }
  table.meta { border-collapse: collapse; width: 100%; font-size: 12px; }
  table.meta td { border-top: 1px solid #eee; padding: 2px 4px; vertical-align: top; word-break: break-word; }
  table.meta td:first-child { color: #666; width: 90px; }
  td.diff { background: #ffe9a8; }
  .actions { margin: 12px 0; display: flex; gap: 8px; }
  button { padding: 6px 12px; border-radius: 4px; border: 1px solid #999; background: #fff; cursor: pointer; }
  button.primary { background: #2a7; color: #fff; border-color: #2a7; }
  #status { margin-left: 8px; color: #555; }
  .decided { font-weight: bold; color: #2a7; }
  .error { color: #b00; }
  #conflicts { background: #fff; border-radius: 6px; padding: 8px 12px; margin: 12px 0; }
  #conflicts h2 { font-size: 14px; margin: 0 0 6px; }
  .conflict { display: flex; gap: 8px; align-items: center; margin: 4px 0; flex-wrap: wrap; }
  .conflict .field { width: 100px; color: #666; }
  .conflict select, .conflict input { max-width: 360px; padding: 3px; }
</style>
</head>
<body>
<header><h1>doppel review</h1>
  <span class="keys">c confirm &middot; n not a duplicate &middot; 1-9 choose master &middot; j/k next/previous</span>
  <span style="flex:1"></span><button id="logout" hidden>forget key</button></header>
<main>
  <form id="login" hidden>
    <p>Enter a reviewer key (made with <code>doppel key add SOURCE --role reviewer</code>).
       It is kept in this tab only.</p>
    <input id="key" type="password" autocomplete="off" placeholder="dpl_...">
    <p><button class="primary" type="submit">Start reviewing</button> <span id="loginerr" class="error"></span></p>
  </form>
  <section id="review" hidden>
    <div class="nav">
      <button id="prev" title="k">&larr; previous</button>
      <button id="next" title="j">next &rarr;</button>
      <span id="where"></span><span id="status"></span>
    </div>
    <div id="cluster"></div>
  </section>
</main>
<script src="/review.js"></script>
</body>
</html>
)html";
}

const char* ReviewPageScript() {
  return R"js("use strict";
const state = { page: 1, pages: 1, total: 0, clusters: [], index: 0, detail: null, urls: [] };
const $ = (id) => document.getElementById(id);
const key = () => sessionStorage.getItem("doppel-key") || "";

async function api(path, options = {}) {
  options.headers = Object.assign({ "Authorization": "Bearer " + key() }, options.headers || {});
  const res = await fetch(path, options);
  if (res.status === 401) { sessionStorage.removeItem("doppel-key"); showLogin("That key was not accepted."); throw new Error("unauthenticated"); }
  return res;
}
async function apiJson(path, options) {
  const res = await api(path, options);
  const body = await res.json();
  if (!res.ok) throw new Error((body.error && body.error.message) || res.statusText);
  return body;
}
function text(tag, content, cls) {
  const e = document.createElement(tag);
  if (content !== undefined) e.textContent = content;
  if (cls) e.className = cls;
  return e;
}
function setStatus(msg, isError) { const s = $("status"); s.textContent = msg; s.className = isError ? "error" : ""; }

function showLogin(msg) {
  $("review").hidden = true; $("logout").hidden = true; $("login").hidden = false;
  $("loginerr").textContent = msg || ""; $("key").focus();
}
$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("doppel-key", $("key").value.trim());
  $("key").value = "";
  try { await loadPage(1, 0); $("login").hidden = true; $("review").hidden = false; $("logout").hidden = false; }
  catch (e) { if (e.message !== "unauthenticated") showLogin(e.message); }
});
$("logout").addEventListener("click", () => { sessionStorage.removeItem("doppel-key"); showLogin(); });

async function loadPage(page, index) {
  const body = await apiJson("/api/v1/clusters?page=" + page + "&per_page=20");
  state.page = body.page; state.pages = Math.max(1, body.pages); state.total = body.total;
  state.clusters = body.clusters;
  state.index = index < 0 ? Math.max(0, body.clusters.length - 1) : Math.min(index, Math.max(0, body.clusters.length - 1));
  await showCluster();
}

async function showCluster() {
  for (const u of state.urls) URL.revokeObjectURL(u);
  state.urls = [];
  const box = $("cluster");
  box.textContent = "";
  const c = state.clusters[state.index];
  if (!c) { $("where").textContent = "No clusters to review (run `doppel match`)."; state.detail = null; return; }
  const pos = (state.page - 1) * 20 + state.index + 1;
  $("where").textContent = "Cluster " + c.id + " (" + pos + " of " + state.total + ")";
  const d = await apiJson("/api/v1/clusters/" + c.id);
  state.detail = d;
  const head = text("p");
  head.append("Decision in force: ");
  head.append(text("span", d.decision ? d.decision.replace("_", " ") : "none yet", d.decision ? "decided" : ""));
  head.id = "decision";
  box.append(head);

  const actions = text("div", undefined, "actions");
  const confirmBtn = text("button", "Confirm duplicates (c)", "primary");
  confirmBtn.id = "confirm";
  confirmBtn.addEventListener("click", () => decide({ decision: "confirm" }));
  const rejectBtn = text("button", "Not a duplicate (n)");
  rejectBtn.id = "reject";
  rejectBtn.addEventListener("click", () => decide({ decision: "reject" }));
  actions.append(confirmBtn, rejectBtn);
  box.append(actions);

  // Metadata side by side: a field whose values differ is highlighted.
  const fields = ["source", "path", "format", "dimensions", "size", "capture_time", "make", "model", "artist",
                  "copyright", "title", "keywords", "gps"];
  const value = (m, f) => {
    const md = m.metadata || {};
    switch (f) {
      case "source": return m.source; case "path": return m.path; case "format": return m.format;
      case "dimensions": return m.width ? m.width + " x " + m.height : "";
      case "size": return m.size ? (m.size / 1024).toFixed(0) + " KiB" : "";
      case "keywords": return (md.keywords || []).join(", ");
      case "gps": return md.gps_latitude !== undefined ? md.gps_latitude.toFixed(5) + ", " + md.gps_longitude.toFixed(5) : "";
      default: return md[f] || "";
    }
  };
  const members = text("div", undefined, "members");
  d.members.forEach((m, i) => {
    const card = text("div", undefined, "member" + (m.master ? " master" : ""));
    card.dataset.fileId = m.id;
    const img = document.createElement("img");
    img.alt = "picture " + m.id;
    card.append(img);
    api("/api/v1/images/" + m.id + "/thumbnail").then(async (r) => {
      if (!r.ok) { img.alt = "no thumbnail (" + r.status + ")"; return; }
      const url = URL.createObjectURL(await r.blob());
      state.urls.push(url); img.src = url;
    }).catch(() => {});
    const title = text("h3");
    title.append(text("span", (i + 1) + " ", "badge"));
    title.append(text("span", m.master ? "master" : m.relation + " (" + m.distance + " bits)", "badge" + (m.master ? " master" : "")));
    // Only worth saying when some copy holds less (docs/policy.md).
    if (m.most_information && d.members.some((o) => o.most_information === false))
      title.append(text("span", "most information", "badge most-information"));
    card.append(title);
    const table = text("table", undefined, "meta");
    for (const f of fields) {
      const v = value(m, f);
      const all = d.members.map((o) => value(o, f));
      const differs = all.some((x) => x !== all[0]);
      if (!v && !differs) continue;
      const tr = text("tr");
      tr.append(text("td", f.replace("_", " ")), text("td", v || "\u2014", differs ? "diff" : ""));
      table.append(tr);
    }
    card.append(table);
    const choose = text("button", "Make master (" + (i + 1) + ")");
    choose.addEventListener("click", () => decide({ decision: "choose_master", master_id: m.id }));
    card.append(choose);
    members.append(card);
  });
  box.append(members);
  showConflicts(box, d);
}

// Metadata conflicts (docs/plan.md, "Conflicts"): each open one gets a choice
// of the members' values or a value typed in; decided ones say by whom.
function showConflicts(box, d) {
  const md = d.metadata;
  if (!md || (!md.conflicts.length && !md.decided.length)) return;
  const sec = text("section");
  sec.id = "conflicts";
  sec.append(text("h2", "Metadata conflicts (" + md.conflicts.length + " open)"));
  const position = (id) => d.members.findIndex((m) => m.id === id) + 1;
  const row = (field, values, decided) => {
    const r = text("div", undefined, "conflict");
    r.dataset.field = field;
    r.append(text("span", field.replace("_", " "), "field"));
    if (decided) {
      r.append(text("span", "\u201c" + decided.value + "\u201d", "decided"),
               text("span", "decided by " + decided.author));
    }
    const select = document.createElement("select");
    for (const v of values) {
      const o = text("option", "picture " + position(v.file_id) + ": " + v.value);
      o.value = String(v.file_id);
      select.append(o);
    }
    const other = text("option", "another value\u2026");
    other.value = "";
    select.append(other);
    const input = document.createElement("input");
    input.type = "text"; input.placeholder = "value"; input.hidden = true; input.maxLength = 2000;
    select.addEventListener("change", () => { input.hidden = select.value !== ""; });
    const btn = text("button", decided ? "Change" : "Resolve");
    btn.addEventListener("click", () => resolveConflict(field, select.value ? { from: Number(select.value) } : { value: input.value }));
    r.append(select, input, btn);
    sec.append(r);
  };
  for (const c of md.conflicts) row(c.field, c.values, null);
  for (const c of md.decided) row(c.field, c.values, c);
  box.append(sec);
}

async function resolveConflict(field, choice) {
  if (!state.detail) return;
  setStatus("saving...");
  try {
    const r = await apiJson("/api/v1/clusters/" + state.detail.id + "/metadata-decisions",
                            { method: "POST", headers: { "Content-Type": "application/json" },
                              body: JSON.stringify(Object.assign({ field }, choice)) });
    setStatus("resolved: " + field + " = " + r.value + " for cluster " + state.detail.id);
    await loadPage(state.page, state.index);
  } catch (e) { setStatus(e.message, true); }
}

async function decide(body) {
  if (!state.detail) return;
  setStatus("saving...");
  try {
    await apiJson("/api/v1/clusters/" + state.detail.id + "/decisions",
                  { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    setStatus("saved: " + body.decision.replace("_", " ") + " for cluster " + state.detail.id);
    const keepIndex = state.index;
    await loadPage(state.page, keepIndex);
  } catch (e) { setStatus(e.message, true); }
}

async function move(step) {
  const i = state.index + step;
  if (i >= 0 && i < state.clusters.length) { state.index = i; return showCluster(); }
  if (step > 0 && state.page < state.pages) return loadPage(state.page + 1, 0);
  if (step < 0 && state.page > 1) return loadPage(state.page - 1, -1);
}
$("next").addEventListener("click", () => move(1));
$("prev").addEventListener("click", () => move(-1));
document.addEventListener("keydown", (ev) => {
  if ($("review").hidden || ["INPUT", "SELECT", "TEXTAREA"].includes(ev.target.tagName) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (ev.key === "c") decide({ decision: "confirm" });
  else if (ev.key === "n") decide({ decision: "reject" });
  else if (ev.key === "j") move(1);
  else if (ev.key === "k") move(-1);
  else if (/^[1-9]$/.test(ev.key) && state.detail) {
    const m = state.detail.members[Number(ev.key) - 1];
    if (m) decide({ decision: "choose_master", master_id: m.id });
  }
});

if (key()) {
  loadPage(1, 0).then(() => { $("review").hidden = false; $("logout").hidden = false; })
    .catch((e) => { if (e.message !== "unauthenticated") showLogin(e.message); });
} else {
  showLogin();
}
)js";
}

}  // namespace doppel::server
