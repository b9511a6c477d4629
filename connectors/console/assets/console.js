// The operator console's own script: the escalation feed (server-sent events), status
// lookups, the charts (Plotly, served by the console) and the directory. Everything is
// written with textContent, never as HTML, and every request carries only the session
// cookie (HttpOnly: this script cannot read it).
"use strict";

const STAGE_LABELS = ["requested", "offered", "accepted", "started", "completed"];
let session = null;
let feed = null;
let funnelRows = [];
let breachRows = [];

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function signedOut() {
  if (feed) feed.close();
  window.location.replace("/signin");
}

async function api(path, options = {}) {
  const answer = await fetch(path, { credentials: "same-origin", ...options });
  if (answer.status === 401) {
    signedOut();
    throw new Error("signed out");
  }
  return answer;
}

// ---------------------------------------------------------------- escalation feed

function feedQuery() {
  const form = document.getElementById("feed-filter");
  const query = new URLSearchParams();
  for (const box of form.querySelectorAll("input[name=level]:checked")) query.append("level", box.value);
  const category = form.elements.category.value;
  if (category) query.append("category", category);
  const jurisdiction = form.elements.jurisdiction.value.trim();
  if (jurisdiction) query.append("jurisdiction", jurisdiction.toUpperCase());
  return query.toString();
}

function addEscalation(item, live) {
  const body = document.querySelector("#feed tbody");
  const row = document.createElement("tr");
  row.className = `level-${item.level}` + (live ? " new" : "");
  row.dataset.id = item.id;
  cell(row, item.occurred_at.replace("T", " ").replace("+00:00", ""));
  cell(row, `L${item.level}`, "level");
  cell(row, item.reason);
  cell(row, item.category);
  cell(row, item.jurisdiction);
  const survivor = cell(row, item.survivor_id, "id survivor");
  survivor.title = "look up this survivor's status";
  survivor.addEventListener("click", () => lookUp(item.survivor_id));
  cell(row, item.referral_id, "id");
  cell(row, item.missed_deadline ? item.missed_deadline.replace("T", " ").replace("+00:00", "") : null);
  body.insertBefore(row, body.firstChild);
  while (body.rows.length > 500) body.deleteRow(body.rows.length - 1);
}

function openFeed() {
  if (feed) feed.close();
  document.querySelector("#feed tbody").replaceChildren();
  const state = document.getElementById("feed-state");
  state.textContent = "connecting…";
  state.dataset.live = "no";
  const query = feedQuery();
  feed = new EventSource("/api/escalations/stream" + (query ? "?" + query : ""));
  feed.addEventListener("escalation", (event) => {
    addEscalation(JSON.parse(event.data), state.dataset.live === "yes");
    refreshCharts();
  });
  feed.addEventListener("history-end", (event) => {
    const end = JSON.parse(event.data);
    state.dataset.live = "yes";
    state.textContent = end.ready ? "live" : "live (still reading the topic)";
  });
  feed.addEventListener("signed-out", signedOut);
  feed.onerror = async () => {
    state.dataset.live = "no";
    state.textContent = "reconnecting…";
    try {
      await api("/api/session"); // a 401 sends the browser to the sign-in page
    } catch (_) { /* handled */ }
  };
}

// ---------------------------------------------------------------- status lookup

async function lookUp(survivorId) {
  document.getElementById("survivor-id").value = survivorId;
  const out = document.getElementById("status-result");
  out.replaceChildren();
  const answer = await api(`/api/survivors/${encodeURIComponent(survivorId)}/status`);
  let body = null;
  try { body = await answer.json(); } catch (_) { /* empty */ }
  if (answer.status !== 200) {
    const p = document.createElement("p");
    p.className = "error";
    p.id = "status-error";
    p.textContent = `${answer.status}: ${body && (body.detail || body.title) || "no answer"}`;
    out.appendChild(p);
    return;
  }
  const facts = document.createElement("dl");
  facts.className = "status";
  facts.id = "status-facts";
  const add = (name, value) => {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = value === null || value === undefined ? "–" : String(value);
    dd.dataset.field = name;
    facts.append(dt, dd);
  };
  add("survivor", body.survivor_id);
  add("identified", body.identified ? "yes" : "no");
  add("risk level", body.risk_level);
  add("escalation level", body.escalation_level);
  add("closed", body.closed);
  add("last update", body.last_update);
  add("shared with", (body.shared_with || []).join(", ") || null);
  out.appendChild(facts);
  const table = document.createElement("table");
  table.id = "status-referrals";
  const head = table.createTHead().insertRow();
  for (const name of ["referral", "category", "urgency", "status", "provider", "attempts", "escalation", "deadline"]) {
    const th = document.createElement("th");
    th.textContent = name;
    head.appendChild(th);
  }
  const rows = table.createTBody();
  for (const r of body.referrals) {
    const row = rows.insertRow();
    cell(row, r.referral_id, "id");
    cell(row, r.category);
    cell(row, r.urgency);
    cell(row, r.status, "referral-status");
    cell(row, r.provider_id, "id");
    cell(row, r.attempts);
    cell(row, r.escalation_level);
    cell(row, r.deadline);
  }
  out.appendChild(table);
}

// ---------------------------------------------------------------- charts

function fillSelect(id, values) {
  const select = document.getElementById(id);
  const chosen = select.value;
  const options = [new Option("all", "")];
  for (const value of [...new Set(values)].sort()) options.push(new Option(value, value));
  select.replaceChildren(...options);
  select.value = values.includes(chosen) ? chosen : "";
}

function chosen(row) {
  const category = document.getElementById("chart-category").value;
  const jurisdiction = document.getElementById("chart-jurisdiction").value;
  return (!category || row.category === category) && (!jurisdiction || row.jurisdiction === jurisdiction);
}

function drawCharts() {
  if (typeof Plotly === "undefined") return;
  const layout = (title) => ({
    title: { text: title }, margin: { l: 90, r: 20, t: 40, b: 40 }, height: 320,
    paper_bgcolor: "#fff", plot_bgcolor: "#fff", font: { size: 12 },
  });
  const config = { displaylogo: false, responsive: true, staticPlot: false };
  const byCategory = new Map();
  for (const row of funnelRows.filter(chosen)) {
    const sums = byCategory.get(row.category) || STAGE_LABELS.map(() => 0);
    STAGE_LABELS.forEach((stage, i) => { sums[i] += row[stage]; });
    byCategory.set(row.category, sums);
  }
  const funnelTraces = [...byCategory.entries()].sort().map(([category, sums]) => ({
    type: "funnel", name: category, y: STAGE_LABELS, x: sums, textinfo: "value",
  }));
  Plotly.react("funnel", funnelTraces, { ...layout("Referral funnel (stage reached)"), funnelmode: "stack" }, config);

  const jurisdictions = [...new Set(breachRows.filter(chosen).map((r) => r.jurisdiction))].sort();
  const categories = [...new Set(breachRows.filter(chosen).map((r) => r.category))].sort();
  const breachTraces = categories.map((category) => ({
    type: "bar", name: category, x: jurisdictions,
    y: jurisdictions.map((j) => breachRows.filter(chosen)
      .filter((r) => r.category === category && r.jurisdiction === j)
      .reduce((n, r) => n + r.breaches, 0)),
  }));
  Plotly.react("breaches", breachTraces, {
    ...layout("SLA breaches (deadlines missed)"), barmode: "stack",
    xaxis: { title: { text: "jurisdiction" } }, yaxis: { title: { text: "breaches" }, rangemode: "tozero" },
  }, config);
}

let chartTimer = null;
function refreshCharts() {
  if (chartTimer) return;
  chartTimer = setTimeout(async () => {
    chartTimer = null;
    await loadCharts();
  }, 500);
}

async function loadCharts() {
  const [funnel, breaches] = await Promise.all([
    api("/api/funnel").then((a) => a.json()),
    api("/api/sla-breaches").then((a) => a.json()),
  ]);
  funnelRows = funnel.rows;
  breachRows = breaches.rows;
  fillSelect("chart-category", [...funnelRows, ...breachRows].map((r) => r.category));
  fillSelect("chart-jurisdiction", [...funnelRows, ...breachRows].map((r) => r.jurisdiction));
  const state = document.getElementById("charts-state");
  state.textContent = `${funnel.survivors} survivors` + (funnel.ready && breaches.ready ? "" : " (still reading)");
  state.dataset.ready = funnel.ready && breaches.ready ? "yes" : "no";
  drawCharts();
}

// ---------------------------------------------------------------- directory

async function loadDirectory() {
  const directory = await api("/api/directory").then((a) => a.json());
  const body = document.querySelector("#directory tbody");
  const rows = directory.rows.map((r) => {
    const row = document.createElement("tr");
    cell(row, r.provider_id, "id");
    cell(row, r.category);
    cell(row, r.jurisdictions.join(", "));
    cell(row, r.total);
    cell(row, r.reserved);
    cell(row, r.held);
    cell(row, r.available, "available");
    cell(row, r.updated_at);
    return row;
  });
  body.replaceChildren(...rows);
  const state = document.getElementById("directory-state");
  state.textContent = directory.ready ? `${directory.rows.length} rows` : "still reading";
  state.dataset.ready = directory.ready ? "yes" : "no";
}

// ---------------------------------------------------------------- start

async function start() {
  session = await api("/api/session").then((a) => a.json());
  document.getElementById("who").textContent = `${session.principal} (${session.key_id})`;
  document.getElementById("signout").addEventListener("click", async () => {
    await fetch("/api/session", {
      method: "DELETE", credentials: "same-origin", headers: { "X-CSRF-Token": session.csrf },
    });
    signedOut();
  });
  document.getElementById("feed-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    openFeed();
  });
  document.getElementById("status-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = document.getElementById("survivor-id").value.trim();
    if (id) lookUp(id);
  });
  document.getElementById("charts-refresh").addEventListener("click", () => { loadCharts(); loadDirectory(); });
  document.getElementById("chart-category").addEventListener("change", drawCharts);
  document.getElementById("chart-jurisdiction").addEventListener("change", drawCharts);
  openFeed();
  await Promise.all([loadCharts(), loadDirectory()]);
  setInterval(() => { loadCharts(); loadDirectory(); }, 10000);
}

start();
