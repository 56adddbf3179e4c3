// ragecg viewer: upload an ECG (and optionally a prior one), draw the 12 leads from the samples the API
// returns, show the statements with their evidence. Plain JavaScript, no build step, no external file.
// Everything from a file or a report is inserted as text (textContent), never as HTML.
"use strict";

const MM_PER_S = 25, MM_PER_MV = 10, ROW_MM = 30, CSS_PX_PER_MM = 96 / 25.4;
const LAYOUT = [["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"]];
const LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"];
const MEASUREMENTS = [
  ["Heart rate", "heart_rate_bpm", "bpm", 0], ["RR mean", "rr_mean_ms", "ms", 0], ["P duration", "p_duration_ms", "ms", 0],
  ["PR interval", "pr_interval_ms", "ms", 0], ["QRS duration", "qrs_duration_ms", "ms", 0],
  ["QT interval", "qt_interval_ms", "ms", 0], ["QTc (Bazett)", "qtc_bazett_ms", "ms", 0],
  ["QTc (Fridericia)", "qtc_fridericia_ms", "ms", 0], ["P axis", "p_axis_deg", "°", 0], ["QRS axis", "qrs_axis_deg", "°", 0],
  ["T axis", "t_axis_deg", "°", 0], ["Sokolow-Lyon voltage", "sokolow_lyon_mv", "mV", 2],
  ["Cornell voltage", "cornell_voltage_mv", "mV", 2],
];

const $ = (id) => document.getElementById(id);
const state = { files: { new: [], prior: [] }, signal: null, envelope: null, zoom: 1, view: "12", caliper: null };

// ------------------------------------------------------------------------------------------ helpers
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? "—" : String(c);
    tr.appendChild(td);
  }
  return tr;
}
function fmt(v, nd, unit) {
  if (v === null || v === undefined) return "not measurable";
  if (typeof v === "boolean") return v ? "yes" : "no";
  return Number(v).toFixed(nd || 0) + (unit ? " " + unit : "");
}
function setStatus(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.className = isError ? "error" : "";
}
function authHeaders() {
  const token = $("opt-token").value.trim() || sessionStorage.getItem("ragecg-token") || "";
  return token ? { Authorization: "Bearer " + token } : {};
}
function categoryBadge(cat) {
  if (!cat) return el("span", "—");
  const c = String(cat).toLowerCase();
  return el("span", c, "badge cat-" + (["normal", "borderline", "abnormal"].includes(c) ? c : "unknown"));
}
// A report may carry an overall category (normal / borderline / abnormal) in one of these places.
function overallCategory(report) {
  const d = report.diagnosis || {};
  return report.overall_category || report.category || d.overall_category || d.category || null;
}

async function api(path, options, retries) {
  options = options || {};
  options.headers = Object.assign({}, options.headers || {}, authHeaders());
  for (let attempt = 0; ; attempt++) {
    const r = await fetch(path, options);
    if (r.status === 503 && attempt < (retries === undefined ? 20 : retries) && r.headers.get("Retry-After")) {
      const wait = Math.min(30, Number(r.headers.get("Retry-After")) || 2);
      setStatus(`Server busy or loading; retrying in ${wait} s…`);
      await new Promise((res) => setTimeout(res, wait * 1000));
      continue;
    }
    if (!r.ok) {
      let detail = r.statusText;
      try { const p = await r.json(); detail = (p.title || "") + (p.detail ? ": " + p.detail : ""); } catch (e) { /* not JSON */ }
      if (r.status === 401) $("token-box").open = true;
      const err = new Error(`${r.status} ${detail}`);
      err.status = r.status;
      throw err;
    }
    return r;
  }
}

// ------------------------------------------------------------------------------------------ upload
function setupDrop(which) {
  const zone = $("drop-" + which), input = $("file-" + which);
  const show = () => {
    $("names-" + which).textContent = state.files[which].length ? state.files[which].map((f) => f.name).join(", ") : "no file chosen";
    $("go").disabled = state.files.new.length === 0;
  };
  input.addEventListener("change", () => { state.files[which] = Array.from(input.files); show(); });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault(); zone.classList.remove("over");
    state.files[which] = Array.from(e.dataTransfer.files); show();
  });
}

function formFor(files, priorId) {
  const fd = new FormData();
  for (const f of files) fd.append("files", f, f.name);
  fd.append("no_llm", $("no-llm").checked ? "true" : "false");
  fd.append("format", "json");
  if ($("opt-rate").value) fd.append("sampling_rate", $("opt-rate").value);
  if ($("opt-units").value) fd.append("units", $("opt-units").value);
  if ($("opt-leads").value.trim()) fd.append("leads", $("opt-leads").value.trim());
  if (priorId) fd.append("prior_id", priorId);
  return fd;
}

async function interpret() {
  $("go").disabled = true;
  const token = $("opt-token").value.trim();
  if (token) sessionStorage.setItem("ragecg-token", token);
  try {
    let priorId = null;
    if (state.files.prior.length) {
      setStatus("Interpreting the prior ECG…");
      const rp = await api("/v1/diagnose", { method: "POST", body: formFor(state.files.prior) });
      priorId = (await rp.json()).id;
    }
    setStatus("Interpreting the ECG…");
    const r = await api("/v1/diagnose", { method: "POST", body: formFor(state.files.new, priorId) });
    const env = await r.json();
    setStatus("Loading the signal…");
    const sig = await (await api(env.links.signal)).json();
    state.envelope = env; state.signal = sig; state.caliper = null;
    showReport(env);
    drawPlot();
    setStatus("Report ready (" + env.report.diagnosis.mode + ").");
    document.body.dataset.reportId = env.id;
  } catch (e) {
    setStatus(e.message, true);
  } finally {
    $("go").disabled = state.files.new.length === 0;
  }
}

// ------------------------------------------------------------------------------------------ report
function showReport(env) {
  const r = env.report, d = r.diagnosis, m = r.measurements;
  $("result").hidden = false;
  $("title").textContent = "ECG report: " + r.source;
  $("summary").textContent = `${String(r.source_format).toUpperCase()}, ${r.sampling_rate_hz} Hz, ${r.duration_s} s; ` +
    `signal quality: ${r.quality.verdict}; mode: ${d.mode}` + (d.llm && d.llm.status && d.llm.status !== "disabled" ? ` (LLM ${d.llm.status})` : "") +
    (r.derived_leads && r.derived_leads.length ? `; leads ${r.derived_leads.join(", ")} derived from I and II` : "");
  const overall = overallCategory(r);
  $("overall").hidden = !overall;
  $("overall").replaceChildren(el("strong", "Overall: "), categoryBadge(overall));

  // statements, each with its evidence (criteria values and cited passages), expandable
  const tbody = $("statements").querySelector("tbody");
  tbody.replaceChildren();
  const criteria = new Map((r.criteria || []).map((c) => [c.code, c]));
  const passages = (r.evidence && r.evidence.passages) || [];
  for (const c of d.codes) {
    tbody.appendChild(row([c.code, c.description, categoryBadge(c.category), fmt(c.confidence, 2), c.decided_by || "—"]));
    const ev = document.createElement("tr");
    ev.className = "evidence-row";
    const td = document.createElement("td");
    td.colSpan = 5;
    td.appendChild(evidenceFor(c, criteria.get(c.code), passages, d.narrative || []));
    ev.appendChild(td);
    tbody.appendChild(ev);
  }
  $("no-statements").hidden = d.codes.length > 0;

  const ol = $("narrative");
  ol.replaceChildren();
  for (const s of d.narrative || []) {
    const li = el("li", s.text + " ");
    if (s.evidence && s.evidence.length) li.appendChild(el("cite", "[" + s.evidence.join(", ") + "]", "key"));
    ol.appendChild(li);
  }

  const mt = $("measurements").querySelector("tbody");
  mt.replaceChildren();
  for (const [label, key, unit, nd] of MEASUREMENTS) {
    const v = m[key];
    const note = v === null || v === undefined ? (m.not_measurable && m.not_measurable[key]) || "" : "";
    mt.appendChild(row([label, fmt(v, nd, unit) + (note ? ` (${note})` : "")]));
  }

  $("quality-verdict").textContent = "Verdict: " + r.quality.verdict + (r.quality.reasons && r.quality.reasons.length ? " — " + r.quality.reasons.join("; ") : "");
  const qt = $("quality").querySelector("tbody");
  qt.replaceChildren();
  for (const [lead, q] of Object.entries(r.quality.leads || {})) qt.appendChild(row([lead, q.state, q.reason || ""]));

  const dev = env.device_comparison || [];
  const devStatements = r.device_statements || [];
  $("device-section").hidden = !(dev.length || devStatements.length);
  const dt = $("device").querySelector("tbody");
  dt.replaceChildren();
  for (const c of dev) {
    const verdict = c.within_limit === true ? "yes" : c.within_limit === false ? "no" : "—";
    dt.appendChild(row([c.label, fmt(c.device_value, 0, c.unit), fmt(c.ragecg_value, 0, c.unit),
      c.difference === null ? "—" : (c.difference >= 0 ? "+" : "") + Math.round(c.difference) + " " + c.unit,
      verdict, c.limit !== null ? `±${c.limit} ${c.unit} (${c.source})` : c.source]));
  }
  $("device-statements").hidden = devStatements.length === 0;
  const ds = $("device-statements").querySelector("tbody");
  ds.replaceChildren();
  const own = d.codes.map((c) => `${c.code} (${c.description})`);
  for (let i = 0; i < Math.max(devStatements.length, own.length); i++) ds.appendChild(row([devStatements[i] || "", own[i] || ""]));

  showComparison(env.comparison);
  const v = r.versions || {};
  $("versions").textContent = `ragecg ${v.package}; knowledge ${v.knowledge_hash || "—"}; index ${v.index_hash || "—"}; model ${v.model || "none"}. ${r.disclaimer || ""}`;
}

function evidenceFor(code, cand, passages, narrative) {
  const box = document.createElement("details");
  box.className = "evidence";
  box.appendChild(el("summary", "Evidence for " + code.code));
  if (cand && cand.conditions && cand.conditions.length) {
    const t = document.createElement("table");
    t.className = "criteria";
    t.appendChild(row(["criterion", "value", "threshold", "met", "source"]));
    t.firstChild.querySelectorAll("td").forEach((td) => { td.style.fontWeight = "bold"; });
    for (const k of cand.conditions) {
      const key = k.lead ? `${k.measure}[${k.lead}]` : k.measure;
      const met = el("span", k.met ? "yes" : "no", k.met ? "met-yes" : "met-no");
      t.appendChild(row([key + " " + k.op, k.value === null ? "—" : String(k.value), String(k.threshold), met,
        k.source + (k.note ? " — " + k.note : "")]));
    }
    box.appendChild(el("p", `Criteria score ${fmt(cand.score, 2)}` + (cand.fired ? " (fired)" : "")));
    box.appendChild(t);
  } else {
    box.appendChild(el("p", "No criteria rule recorded for this statement."));
  }
  const docs = new Set((cand && cand.doc_ids) || []);
  const cited = new Set();
  for (const s of narrative) for (const k of s.evidence || []) cited.add(k);
  const mine = passages.filter((p) => docs.has(p.doc_id));
  const shown = mine.length ? mine : passages.filter((p) => cited.has(p.passage_id) && String(p.text).includes(code.code));
  if (shown.length) {
    box.appendChild(el("p", "Cited passages:"));
    for (const p of shown) {
      const div = el("div", null, "passage");
      div.appendChild(el("strong", p.passage_id + " "));
      div.appendChild(el("span", (p.section ? p.section + ": " : "") + p.text));
      div.appendChild(el("div", p.source, "cite"));
      box.appendChild(div);
    }
  } else {
    box.appendChild(el("p", "No knowledge passage retrieved for this statement."));
  }
  for (const extra of code.evidence || []) box.appendChild(el("p", typeof extra === "string" ? extra : JSON.stringify(extra)));
  return box;
}

function showComparison(c) {
  $("comparison-section").hidden = !c;
  if (!c) return;
  $("comparison-summary").textContent = c.summary;
  const cav = $("comparison-caveats");
  cav.replaceChildren(...(c.caveats || []).map((x) => el("li", "Caveat: " + x)));
  const st = $("comparison-statements").querySelector("tbody");
  st.replaceChildren();
  for (const s of c.statements) if (s.change !== "unchanged") st.appendChild(row([`${s.code} (${s.description})`, s.change]));
  const same = c.statements.filter((s) => s.change === "unchanged").map((s) => s.code);
  if (same.length) st.appendChild(row(["unchanged: " + same.join(", "), "unchanged"]));
  const mt = $("comparison-measurements").querySelector("tbody");
  mt.replaceChildren();
  for (const m of c.measurements) {
    const sig = m.significant === true ? el("span", "yes" + (m.note ? ` (${m.note})` : ""), "sig-yes") : m.significant === false ? "no" : "—";
    mt.appendChild(row([m.label, fmt(m.prior, 0, m.unit), fmt(m.new, 0, m.unit),
      m.change === null ? "—" : (m.change >= 0 ? "+" : "") + Math.round(m.change) + " " + m.unit,
      m.unit === "°" ? "axis category" : m.tolerance === null ? "—" : `±${Math.round(m.tolerance)} ${m.unit}`, sig, m.source]));
  }
}

// ------------------------------------------------------------------------------------------ plot
function median(values) {
  const v = values.filter((x) => x !== null).sort((a, b) => a - b);
  return v.length ? v[Math.floor(v.length / 2)] : 0;
}

function drawGrid(ctx, w, h, px) {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, w, h);
  const minor = px >= 2.5;
  for (let mm = 0; mm * px <= w + 0.5; mm++) {
    if (!minor && mm % 5) continue;
    ctx.strokeStyle = mm % 5 ? "#fbdcdc" : "#f4a6a6";
    ctx.lineWidth = mm % 5 ? 0.5 : 1;
    ctx.beginPath(); ctx.moveTo(mm * px + 0.5, 0); ctx.lineTo(mm * px + 0.5, h); ctx.stroke();
  }
  for (let mm = 0; mm * px <= h + 0.5; mm++) {
    if (!minor && mm % 5) continue;
    ctx.strokeStyle = mm % 5 ? "#fbdcdc" : "#f4a6a6";
    ctx.lineWidth = mm % 5 ? 0.5 : 1;
    ctx.beginPath(); ctx.moveTo(0, mm * px + 0.5); ctx.lineTo(w, mm * px + 0.5); ctx.stroke();
  }
}

// one trace: samples [i0, i1) of `lead`, starting at x0 mm, baseline at yBase mm (from the top)
function trace(ctx, lead, i0, i1, x0mm, yBaseMm, px) {
  const s = state.signal, fs = s.sampling_rate_hz, y = s.leads[lead];
  if (!y) return;
  const seg = y.slice(i0, i1), base = median(seg);
  ctx.strokeStyle = "#000"; ctx.lineWidth = Math.max(1, px / 4);
  ctx.beginPath();
  let pen = false;
  for (let i = 0; i < seg.length; i++) {
    if (seg[i] === null) { pen = false; continue; }
    const x = (x0mm + (i / fs) * MM_PER_S) * px;
    const yy = (yBaseMm - ((seg[i] - base) / 1000) * MM_PER_MV) * px;
    if (pen) ctx.lineTo(x, yy); else { ctx.moveTo(x, yy); pen = true; }
  }
  ctx.stroke();
}

function label(ctx, text, xMm, yMm, px) {
  ctx.fillStyle = "#000";
  ctx.font = `bold ${Math.max(10, Math.round(3.2 * px))}px system-ui, sans-serif`;
  ctx.fillText(text, xMm * px, yMm * px);
}

function drawPlot() {
  const s = state.signal;
  if (!s) return;
  const px = CSS_PX_PER_MM * state.zoom, fs = s.sampling_rate_hz, dpr = window.devicePixelRatio || 1;
  const n = s.leads.II.length, duration = n / fs;
  let widthMm, heightMm;
  if (state.view === "12") { widthMm = Math.min(10, duration) * MM_PER_S; heightMm = ROW_MM * 4; }
  else { widthMm = duration * MM_PER_S; heightMm = 40; }
  const w = Math.ceil(widthMm * px), h = Math.ceil(heightMm * px);
  const canvas = $("ecg-canvas"), over = $("caliper-canvas");
  for (const c of [canvas, over]) {
    c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
    c.style.width = w + "px"; c.style.height = h + "px";
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  drawGrid(ctx, w, h, px);
  if (state.view === "12") {
    const colS = widthMm / MM_PER_S / 4;
    LAYOUT.forEach((leads, r) => {
      const base = ROW_MM * (r + 0.5);
      leads.forEach((lead, c) => {
        const i0 = Math.round(c * colS * fs), i1 = Math.round((c + 1) * colS * fs);
        trace(ctx, lead, i0, i1, c * colS * MM_PER_S, base, px);
        label(ctx, lead, c * colS * MM_PER_S + 1.5, base - 8, px);
        if (c) { ctx.strokeStyle = "#000"; ctx.beginPath(); ctx.moveTo(c * colS * MM_PER_S * px, (base - 3) * px); ctx.lineTo(c * colS * MM_PER_S * px, (base + 3) * px); ctx.stroke(); }
      });
    });
    trace(ctx, "II", 0, Math.round(widthMm / MM_PER_S * fs), 0, ROW_MM * 3.5, px);
    label(ctx, "II (rhythm)", 1.5, ROW_MM * 3.5 - 8, px);
  } else {
    trace(ctx, state.view, 0, n, 0, 20, px);
    label(ctx, state.view + (s.derived_leads.includes(state.view) ? " (derived)" : ""), 1.5, 6, px);
  }
  ctx.font = `${Math.max(9, Math.round(2.6 * px))}px system-ui, sans-serif`;
  ctx.textAlign = "right";
  ctx.fillText("25 mm/s, 10 mm/mV", w - 2 * px, h - 1.5 * px);
  ctx.textAlign = "left";
  $("zoom-label").textContent = Math.round(state.zoom * 100) + " %";
  document.body.dataset.plotDrawn = String(Date.now());
  drawCaliper();
}

function drawCaliper() {
  const over = $("caliper-canvas"), ctx = over.getContext("2d"), dpr = window.devicePixelRatio || 1;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, over.width, over.height);
  const c = state.caliper;
  if (!c) { $("caliper-readout").textContent = "Calipers: drag on the plot to measure an interval."; return; }
  const px = CSS_PX_PER_MM * state.zoom, h = over.height / dpr, w = over.width / dpr;
  ctx.strokeStyle = "#1565c0"; ctx.lineWidth = 1.5; ctx.setLineDash([4, 3]);
  for (const x of [c.x0, c.x1]) { ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, h); ctx.stroke(); }
  for (const y of [c.y0, c.y1]) { ctx.beginPath(); ctx.moveTo(Math.min(c.x0, c.x1) - 10, y); ctx.lineTo(Math.max(c.x0, c.x1) + 10, y); ctx.stroke(); }
  ctx.setLineDash([]);
  const dtMs = Math.abs(c.x1 - c.x0) / px / MM_PER_S * 1000, dvMv = Math.abs(c.y1 - c.y0) / px / MM_PER_MV;
  const text = `Δt ${dtMs.toFixed(0)} ms` + (dtMs > 0 ? ` (${(60000 / dtMs).toFixed(0)} /min)` : "") + `, ΔV ${dvMv.toFixed(2)} mV`;
  $("caliper-readout").textContent = "Calipers: " + text;
  ctx.fillStyle = "#1565c0"; ctx.font = "bold 13px system-ui, sans-serif";
  ctx.fillText(text, Math.min(Math.max(c.x0, c.x1) + 6, w - 220), Math.max(14, Math.min(c.y0, c.y1) - 4));
}

function setupPlot() {
  const over = $("caliper-canvas");
  let dragging = false;
  const pos = (e) => { const r = over.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
  over.addEventListener("mousedown", (e) => { const [x, y] = pos(e); state.caliper = { x0: x, y0: y, x1: x, y1: y }; dragging = true; drawCaliper(); });
  over.addEventListener("mousemove", (e) => { if (!dragging) return; const [x, y] = pos(e); state.caliper.x1 = x; state.caliper.y1 = y; drawCaliper(); });
  window.addEventListener("mouseup", () => { dragging = false; });
  const zoom = (z) => { state.zoom = Math.min(6, Math.max(0.25, z)); state.caliper = null; drawPlot(); };
  $("zoom-in").addEventListener("click", () => zoom(state.zoom * 1.25));
  $("zoom-out").addEventListener("click", () => zoom(state.zoom / 1.25));
  $("zoom-reset").addEventListener("click", () => zoom(1));
  const view = $("view");
  for (const lead of LEADS) { const o = el("option", "lead " + lead); o.value = lead; view.appendChild(o); }
  view.addEventListener("change", () => { state.view = view.value; state.caliper = null; drawPlot(); });
}

// ------------------------------------------------------------------------------------------ downloads
async function download(fmtName) {
  if (!state.envelope) return;
  try {
    const r = await api(`/v1/reports/${encodeURIComponent(state.envelope.id)}?format=${fmtName}`);
    const blob = await r.blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = { pdf: "report.pdf", fhir: "report.fhir.json", json: "report.json", html: "report.html" }[fmtName];
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  } catch (e) { setStatus(e.message, true); }
}

function clearAll() {
  state.files = { new: [], prior: [] }; state.signal = null; state.envelope = null; state.caliper = null;
  for (const w of ["new", "prior"]) { $("file-" + w).value = ""; $("names-" + w).textContent = "no file chosen"; }
  $("result").hidden = true; $("go").disabled = true; setStatus(""); drawCaliper();
}

document.addEventListener("DOMContentLoaded", () => {
  setupDrop("new"); setupDrop("prior"); setupPlot();
  $("go").addEventListener("click", interpret);
  $("clear").addEventListener("click", clearAll);
  document.querySelectorAll(".downloads button").forEach((b) => b.addEventListener("click", () => download(b.dataset.format)));
  const saved = sessionStorage.getItem("ragecg-token");
  if (saved) $("opt-token").value = saved;
});
