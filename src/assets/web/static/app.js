// The farmer's map (#13). A farmer signs in with the bank's one-time link, sees their fields over
// the service's own satellite tiles, taps inside a field to get the boundary the segmentation
// detected, accepts or adjusts it (Leaflet-Geoman: move, add and delete corners, snapping, undo),
// submits and reads the verdict. A credit officer sees the portfolio, a borrower's fields coloured
// by status, and decides the review queue. Every string comes from i18n.json (English, Chinese).
"use strict";

const TOKEN_KEY = "assets.token";
const LANG_KEY = "assets.lang";
const STATUS_COLOURS = { verified: "#2e7d32", partial: "#f9a825", rejected: "#c62828", review: "#1565c0", pending: "#757575" };
const $ = (id) => document.getElementById(id);

let catalogue = {}; // {en: {...}, zh: {...}}
let lang = "en";
let me = null; // {name, role, borrower_id} once signed in
let imagery = null; // GET /map/imagery
let field = null; // the polygon being drawn or proposed (editable)
let accepted = false; // a proposal becomes submittable once accepted or adjusted
let edits = []; // earlier corner lists of `field`, for undo
let working = null; // geoman's layer while drawing by hand
let lastProposal = null; // {feature} | {error}
let lastVerdicts = null;
let proposalSeq = 0; // numbers the proposal requests: only the answer to the latest one is shown (#11)
let shownUser = null; // whose data the page shows ("name/borrower"): another user's sign-in clears it
let shownBorrower = null; // the officer's borrower whose fields are listed and drawn

// --- strings ---------------------------------------------------------------------------------
function t(key, vars = {}) {
  const text = (catalogue[lang] && catalogue[lang][key]) ?? (catalogue.en && catalogue.en[key]) ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (vars[name] ?? `{${name}}`));
}

function pickLanguage() {
  const saved = localStorage.getItem(LANG_KEY);
  if (saved && catalogue[saved]) return saved;
  const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
  for (const code of wanted) {
    const base = String(code).toLowerCase().split("-")[0];
    if (catalogue[base]) return base;
  }
  return "en";
}

function applyStrings() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  document.title = t(me && me.role !== "farmer" ? "title.officer" : "title");
  $("title").textContent = document.title;
  if (!$("field-name").dataset.touched) $("field-name").value = t("field.default_name");
  if (map.pm && map.pm.setLang) map.pm.setLang(lang === "zh" ? "zh" : "en");
  $("legend").innerHTML = `<b>${escapeHtml(t("legend.title"))}</b> ` + Object.entries(STATUS_COLOURS).map(([s, c]) =>
    `<span><i style="background:${c}"></i>${escapeHtml(t(`status.${s}`))}</span>`).join("");
}

// The hint follows what the farmer is doing; its key is kept so a language switch shows the same one.
function setHint(key) {
  $("hint").dataset.i18n = key;
  $("hint").textContent = t(key);
}

function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// --- the map -----------------------------------------------------------------------------------
const map = L.map("map", { zoomControl: true, zoomSnap: 0.25, maxZoom: 19 });
const fieldsLayer = L.featureGroup().addTo(map); // stored fields, coloured by status (snapping targets)
map.pm.setGlobalOptions({ snappable: true, snapDistance: 20, allowSelfIntersection: false, removeVertexOn: "contextmenu",
  pathOptions: { color: "#ffeb3b", weight: 3, fillOpacity: 0.15 } });

// XYZ tiles served by the service itself, fetched with the token (an <img src> cannot send one).
const AuthTiles = L.GridLayer.extend({
  createTile(coords, done) {
    const img = document.createElement("img");
    img.alt = "";
    const url = imagery.tiles_url.replace("{z}", coords.z).replace("{x}", coords.x).replace("{y}", coords.y);
    fetch(url, { headers: { Authorization: `Bearer ${token()}` } })
      .then((r) => {
        if (r.status === 401) tileSignInEnded();
        return r.ok ? r.blob() : Promise.reject(new Error(`tile ${r.status}`));
      })
      .then((blob) => {
        img.onload = () => { URL.revokeObjectURL(img.src); done(null, img); };
        img.src = URL.createObjectURL(blob);
      })
      .catch((err) => done(err, img));
    return img;
  },
});
let imageryLayer = null;

// A tile refused for the sign-in (revoked or expired while the map was open): sign out at once,
// keeping the drawing, so the page stops sending a dead token with every tile of every pan.
function tileSignInEnded() {
  if (!me) return;
  localStorage.removeItem(TOKEN_KEY);
  showSignedOut(t("signin.ended"), { keep: true });
}

function ringAreaM2(latlngs) { // area on the sphere of a lon/lat ring: well under 1 % off for fields
  const R = 6378137, rad = Math.PI / 180;
  let sum = 0;
  for (let i = 0; i < latlngs.length; i++) {
    const a = latlngs[i], b = latlngs[(i + 1) % latlngs.length];
    sum += (b.lng - a.lng) * rad * (2 + Math.sin(a.lat * rad) + Math.sin(b.lat * rad));
  }
  return Math.abs(sum * R * R / 2);
}

function corners() {
  if (field) return field.getLatLngs()[0] || [];
  if (working) return working.getLatLngs() || [];
  return [];
}

function updateArea() {
  const ring = corners();
  const n = ring.length;
  const ha = n >= 3 ? ringAreaM2(ring) / 10000 : 0;
  $("area").textContent = n === 0 ? t("area.none") : n < 3 ? t("area.corners", { n })
    : t("area.value", { n, ha: ha.toFixed(2), mu: (ha * 15).toFixed(1) });
  $("submit").disabled = !me || !field || n < 3 || !accepted;
  $("undo").disabled = !((working && n > 0) || edits.length > 1);
  $("accept").hidden = !field || accepted;
}

function snapshot() { edits.push(field.getLatLngs()[0].map((p) => L.latLng(p.lat, p.lng))); }

function setField(layer, { proposal = false } = {}) {
  clearField();
  field = layer.addTo(map);
  accepted = !proposal;
  field.setStyle(proposal ? { color: "#ff9800", dashArray: "6 6", weight: 3, fillOpacity: 0.1 }
    : { color: "#ffeb3b", dashArray: null, weight: 3, fillOpacity: 0.15 });
  field.pm.enable({ snappable: true, allowSelfIntersection: false, removeVertexOn: "contextmenu" });
  field.on("pm:markerdrag", updateArea); // live area while a corner moves
  field.on("pm:markerdragend", () => setTimeout(updateArea)); // and after: a refused move is put back
  field.on("pm:edit", () => { accept(); snapshot(); updateArea(); }); // a move, an added or a deleted corner
  edits = [];
  snapshot();
  updateArea();
}

function accept() {
  if (!field || accepted) return;
  accepted = true;
  field.setStyle({ color: "#ffeb3b", dashArray: null, fillOpacity: 0.15 });
  updateArea();
}

function clearField() {
  proposalSeq += 1; // an answer still on its way no longer replaces what the farmer does now
  if (working) map.pm.disableDraw();
  working = null;
  if (field) { field.pm.disable(); field.remove(); }
  field = null;
  accepted = false;
  edits = [];
}

function undo() {
  if (working) {
    // geoman ends the drawing when its last corner goes; start it again, so the next taps are corners
    if (corners().length <= 1) startDrawing();
    else map.pm.Draw.Polygon._removeLastVertex();
    updateArea();
    return;
  }
  if (!field || edits.length < 2) return;
  edits.pop();
  field.pm.disable();
  field.setLatLngs(edits[edits.length - 1]);
  field.pm.enable({ snappable: true, allowSelfIntersection: false, removeVertexOn: "contextmenu" });
  updateArea();
}

map.on("pm:drawstart", ({ workingLayer }) => {
  working = workingLayer;
  workingLayer.on("pm:vertexadded pm:vertexremoved", updateArea);
  updateArea();
});
map.on("pm:drawend", () => { working = null; updateArea(); });
map.on("pm:create", ({ layer }) => {
  map.removeLayer(layer);
  working = null;
  setField(L.polygon(layer.getLatLngs()));
  setHint("edit.help"); // the drawing is closed: its corners can be moved now
});

function startDrawing() {
  if (working) map.pm.disableDraw();
  map.pm.enableDraw("Polygon", { snappable: true, snapDistance: 20, allowSelfIntersection: false, finishOn: null });
}

// A tap inside a field, when nothing is being drawn: the detected field is proposed.
map.on("click", async (e) => {
  if (!me || working || map.pm.globalDrawModeEnabled() || field) return;
  const seq = ++proposalSeq;
  $("proposal").hidden = false;
  $("proposal-text").className = "muted";
  $("proposal-text").textContent = t("proposal.finding");
  $("accept").hidden = true;
  try {
    const feature = await api(`/fields/proposal?lon=${e.latlng.lng.toFixed(7)}&lat=${e.latlng.lat.toFixed(7)}`);
    if (seq !== proposalSeq) return; // a later tap (or a drawing, or a sign-out) came first
    lastProposal = { feature };
    const ring = feature.geometry.coordinates[0].slice(0, -1).map(([lng, lat]) => L.latLng(lat, lng));
    setField(L.polygon(ring), { proposal: true });
    showProposal();
    // on a phone the proposal and its Accept button are below the map: bring them into view
    $("proposal").scrollIntoView({ block: "nearest" });
  } catch (err) {
    if (seq !== proposalSeq) return;
    lastProposal = { error: err.message, code: err.code };
    showProposal();
    $("proposal").scrollIntoView({ block: "nearest" });
  }
});

function showProposal() {
  if (!lastProposal) return;
  const el = $("proposal-text");
  if (lastProposal.error) {
    el.className = "error";
    const worded = lastProposal.code && catalogue[lang] && catalogue[lang][`proposal.${lastProposal.code}`];
    el.textContent = worded ? t(`proposal.${lastProposal.code}`) : t("proposal.failed", { error: lastProposal.error });
    return;
  }
  const p = lastProposal.feature.properties;
  el.className = "";
  el.textContent = t("proposal.found", { ha: p.area_ha.toFixed(2), mu: p.area_mu.toFixed(1), date: p.acquired_on })
    + (p.cut_by_search_window ? ` ${t("proposal.cut")}` : "");
}

// --- sign-in -----------------------------------------------------------------------------------
const token = () => localStorage.getItem(TOKEN_KEY);

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (err) { // offline, DNS, a dropped connection: the browser's own words ("Failed to fetch") mean nothing to a farmer
    const failed = new Error(t("error.network"));
    failed.network = true;
    throw failed;
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = Array.isArray(data.detail) ? data.detail.map((d) => d.msg).join("; ") : data.detail;
    const err = new Error(data.error || detail || t("error.request", { status: response.status }));
    err.status = response.status;
    err.code = data.code; // a case the page words in the reader's language (e.g. "no_field")
    throw err;
  }
  return data;
}

async function exchange(code) {
  const data = await api("/auth/exchange", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ code }) });
  localStorage.setItem(TOKEN_KEY, data.token);
}

function showWho() {
  if (!me) { $("who").textContent = t("signin.prompt"); return; }
  $("who").textContent = me.borrower_id ? t("signin.as_farmer", { name: me.name, borrower: me.borrower_id })
    : t("signin.as_role", { name: me.name, role: me.role });
}

// Everything that belonged to the signed-in borrower: a shared phone must not show it to the next one.
function forgetBorrower() {
  clearField();
  fieldsLayer.clearLayers();
  lastVerdicts = null;
  lastProposal = null;
  shownUser = null;
  shownBorrower = null;
  $("result").innerHTML = "";
  $("proposal").hidden = true;
  $("proposal-text").textContent = "";
  for (const id of ["field-name", "field-crop", "borrower"]) { $(id).value = ""; delete $(id).dataset.touched; }
  $("field-name").value = t("field.default_name");
  for (const id of ["my-fields", "borrower-fields", "portfolio", "reviews"]) $(id).innerHTML = "";
  for (const id of ["showing", "review-result"]) $(id).textContent = "";
  $("my-fields-title").hidden = true;
  setHint("hint.tap");
}

// `keep`: a sign-in that expired or was revoked under the farmer keeps the drawing and its name,
// to submit again once signed in again (the same user; anyone else's sign-in clears them).
function showSignedOut(message, { keep = false } = {}) {
  me = null;
  if (keep) { proposalSeq += 1; if (working) map.pm.disableDraw(); }
  else forgetBorrower();
  if (imageryLayer) { imageryLayer.remove(); imageryLayer = null; }
  $("signin-form").hidden = false;
  $("signout").hidden = true;
  $("drawing").hidden = true;
  $("officer").hidden = true;
  $("signin-error").textContent = message || "";
  $("imagery-date").textContent = t("imagery.signin");
  $("cloud-free").textContent = "";
  showWho();
  updateArea();
}

async function signIn(code) {
  $("signin-error").textContent = "";
  let note = "";
  if (code) {
    try {
      await exchange(code);
    } catch (err) {
      // A link opened again (from the SMS) is refused, but the sign-in it bought may still be
      // good: keep it if /me answers, and only say the link was used.
      if (!token()) return showSignedOut(err.message, { keep: true });
      note = err.status === 401 ? t("signin.link_used") : err.message;
    }
  }
  if (!token()) return showSignedOut(undefined, { keep: true });
  let who;
  try {
    who = await api("/me");
  } catch (err) {
    if (err.status === 401) localStorage.removeItem(TOKEN_KEY); // only /me itself says the token is bad
    return showSignedOut(err.message, { keep: true });
  }
  const user = `${who.name}/${who.borrower_id || ""}`;
  if (shownUser !== null && shownUser !== user) forgetBorrower(); // someone else signed in on this phone
  me = who;
  shownUser = user;
  $("signin-error").textContent = note;
  showWho();
  applyStrings();
  $("signin-form").hidden = true;
  $("signout").hidden = false;
  $("drawing").hidden = me.role === "operations";
  $("borrower-row").hidden = Boolean(me.borrower_id); // officers choose the borrower they file for
  $("officer").hidden = me.role !== "officer";
  updateArea();
  await loadImagery();
  if (me.borrower_id) showFields(me.borrower_id, { fit: false });
  if (me.role === "officer") { showPortfolio(); showReviews(); }
}

async function loadImagery() {
  try {
    imagery = await api("/map/imagery");
    if (!imagery.bounds) throw new Error(t("error.request", { status: 404 }));
    if (imageryLayer) imageryLayer.remove();
    imageryLayer = new AuthTiles({ maxZoom: 19, maxNativeZoom: imagery.max_zoom, bounds: L.latLngBounds(imagery.bounds),
      className: "imagery", attribution: "Contains modified Copernicus Sentinel data" }).addTo(map);
    imageryLayer.bringToBack();
    map.fitBounds(imagery.bounds);
    showImageryDates();
  } catch (err) {
    map.setView([0, 0], 2);
    $("imagery-date").textContent = t("imagery.none", { error: err.message });
  }
}

function showImageryDates() {
  if (!imagery) return;
  $("imagery-date").textContent = t("imagery.latest", { date: imagery.latest_date });
  $("cloud-free").textContent = t("imagery.cloud_free", { dates: imagery.cloud_free_dates.join(", ") });
}

// A borrower's stored fields on the map, coloured by status, and as a list.
async function showFields(borrower, { fit = true, list = "my-fields" } = {}) {
  let shapes;
  try {
    shapes = await api(`/borrowers/${encodeURIComponent(borrower)}/fields`);
  } catch (err) {
    $(list).innerHTML = err.status === 404 ? `<li class="muted">${escapeHtml(t("fields.none"))}</li>`
      : `<li class="error">${escapeHtml(err.message)}</li>`;
    return;
  }
  fieldsLayer.clearLayers();
  // accepted fields drawn last, on top: a rejected copy of a field never hides the verified one beneath
  const order = { rejected: 0, submitted: 1, review: 2, partial: 3, verified: 4 };
  const drawn = [...shapes.features].sort((a, b) => (order[a.properties.status] ?? 1) - (order[b.properties.status] ?? 1));
  L.geoJSON({ type: "FeatureCollection", features: drawn }, {
    filter: (f) => Boolean(f.geometry), // a drawing refused at submission is listed, not drawn
    style: (f) => ({ color: STATUS_COLOURS[f.properties.status] || STATUS_COLOURS.pending, weight: 2, fillOpacity: 0.25 }),
    onEachFeature: (f, layer) => layer.bindTooltip(escapeHtml(`${f.properties.name}: ${t(`status.${f.properties.status}`)}`)),
  }).eachLayer((layer) => layer.addTo(fieldsLayer));
  $("my-fields-title").hidden = list !== "my-fields";
  shapes.features.forEach(({ properties: c }) => { listedFields[c.claim_id] = c; });
  $(list).innerHTML = shapes.features.length ? shapes.features.map(({ properties: c }) =>
    `<li class="${escapeHtml(c.status)}" data-claim="${escapeHtml(c.claim_id)}"><button type="button" class="open-field" data-claim="${
      escapeHtml(c.claim_id)}">${escapeHtml(c.name)}: ${escapeHtml(t(`status.${c.status}`))}${
      c.limit_cny ? `, ${escapeHtml(t("fields.limit", { limit: Math.round(c.limit_cny).toLocaleString() }))}` : ""}</button></li>`).join("")
    : `<li class="muted">${escapeHtml(t("fields.none"))}</li>`;
  if (fit && fieldsLayer.getLayers().length) map.fitBounds(fieldsLayer.getBounds(), { maxZoom: 16 });
}

// --- submit and the verdict ----------------------------------------------------------------------
function translated(key) {
  return Boolean(catalogue[lang] && catalogue[lang][key]);
}

// An officer's decision reads "rejected by credit officer NAME: NOTE" or "approved by credit
// officer NAME (ABOUT): NOTE"; the note is written for the borrower and must reach them.
const OFFICER_DECISION = /^(?:approved|rejected) by credit officer (.+?)(?: \(([^)]*)\))?: ([\s\S]*)$/;

// A reason in the reader's language by its code (the catalogue's "reason.<code>"); the server's own
// sentence carries the figures (ha, %, crops), so a translated reason shows it too, as a detail line.
function reasonText(reason) {
  const message = String(reason.message ?? "");
  if (lang === "en" || !translated(`reason.${reason.code}`)) return { text: message, detail: "" };
  const decision = /^review_(approved|rejected)$/.test(reason.code) && message.match(OFFICER_DECISION);
  if (decision && translated(`reason.${reason.code}.note`)) {
    return { text: t(`reason.${reason.code}.note`, { officer: decision[1], note: decision[3] }), detail: message };
  }
  return { text: t(`reason.${reason.code}`), detail: message };
}

// What to do next depends on why, not only on the status: land pledged twice or refused by an
// officer is settled with the bank, a field off the imagery waits for imagery of it.
function nextStep(claim, status) {
  const codes = new Set((claim.reasons || []).map((r) => r.code));
  if (codes.has("overlap") || codes.has("review_rejected")) return t("next.contact_bank");
  if (codes.has("no_imagery")) return t("next.no_imagery");
  return t(`next.${status}`);
}

function cropName(crop) {
  return translated(`crop.${crop}`) ? t(`crop.${crop}`) : String(crop).replace(/_/g, " ");
}

function verdictCard(claim) {
  const status = claim.status || "pending";
  const area = claim.verified_area_ha == null ? "-" : t("verdict.area_value", {
    ha: claim.verified_area_ha.toFixed(2), mu: (claim.verified_area_ha * 15).toFixed(1) });
  const money = (v) => (v == null ? "-" : t("verdict.money", { amount: Math.round(v).toLocaleString() }));
  // a claim waiting for review shows the area the imagery measured, not land the bank lends on yet
  const areaLabel = status === "review" ? "verdict.area_measured" : "verdict.area";
  // Each reason in the reader's language by its code, with the server's sentence (its figures) below.
  const coded = (claim.reasons || []).filter((r) => r.code !== "ok" || claim.status === "verified");
  const reasons = coded.length ? coded.map(reasonText)
    : claim.reason ? String(claim.reason).split("; ").map((r) => ({ text: r, detail: "" }))
    : [{ text: t("verdict.ok"), detail: "" }];
  return `<div class="verdict ${escapeHtml(status)}" data-status="${escapeHtml(status)}">
    <h2>${escapeHtml(claim.name)}: <span class="status">${escapeHtml(t(`status.${status}`))}</span></h2>
    <dl>
      <dt>${escapeHtml(t(areaLabel))}</dt><dd>${escapeHtml(area)}</dd>
      <dt>${escapeHtml(t("verdict.crop"))}</dt><dd>${escapeHtml(claim.crop == null ? "-" : cropName(claim.crop))}</dd>
      <dt>${escapeHtml(t("verdict.value"))}</dt><dd>${money(claim.value_cny)}</dd>
      <dt>${escapeHtml(t("verdict.limit"))}</dt><dd>${money(claim.limit_cny)}</dd>
      <dt>${escapeHtml(t("verdict.why"))}</dt><dd><ul class="reasons">${reasons.map((r) => (r.detail
        ? `<li title="${escapeHtml(r.detail)}">${escapeHtml(r.text)}<small class="detail" lang="en">${escapeHtml(r.detail)}</small></li>`
        : `<li>${escapeHtml(r.text)}</li>`)).join("")}</ul></dd>
      <dt>${escapeHtml(t("verdict.next"))}</dt><dd class="next">${escapeHtml(nextStep(claim, status))}</dd>
    </dl></div>`;
}

$("claim-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!field || !me) return;
  const borrower = me.borrower_id || $("borrower").value.trim();
  if (!me.borrower_id) { // an officer files for a borrower: the id is required, and a new one is confirmed
    if (!borrower) return showSubmitError(t("submit.borrower_needed"), $("borrower"));
    if (!$("borrower").checkValidity()) return showSubmitError(t("submit.borrower_invalid"), $("borrower"));
    $("submit").disabled = true;
    try {
      await api(`/borrowers/${encodeURIComponent(borrower)}`);
    } catch (err) {
      if (err.status !== 404) { updateArea(); return showSubmitError(err.message); }
      if (!window.confirm(t("submit.confirm_new", { borrower }))) {
        updateArea();
        return showSubmitError(t("submit.not_filed", { borrower }), $("borrower"));
      }
    }
  }
  const ring = field.getLatLngs()[0].map((c) => [Number(c.lng.toFixed(7)), Number(c.lat.toFixed(7))]);
  ring.push(ring[0]);
  const body = { type: "FeatureCollection", features: [{ type: "Feature",
    properties: { name: $("field-name").value.trim() || t("field.default_name"),
      ...($("field-crop").value.trim() ? { crop: $("field-crop").value.trim() } : {}) },
    geometry: { type: "Polygon", coordinates: [ring] } }] };
  $("submit").disabled = true;
  $("result").innerHTML = `<p class="muted">${escapeHtml(t("submit.checking"))}</p>`;
  try {
    lastVerdicts = await api(`/borrowers/${encodeURIComponent(borrower)}/claims`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    $("result").innerHTML = lastVerdicts.map(verdictCard).join("");
    clearField();
    lastProposal = null;
    $("proposal").hidden = true;
    setHint("hint.tap"); // the field is submitted: back to tapping the next one
    // the next field is not filed under this one's name or crop by mistake
    for (const id of ["field-name", "field-crop"]) { $(id).value = ""; delete $(id).dataset.touched; }
    $("field-name").value = t("field.default_name");
    showFields(borrower, { fit: false, list: me.borrower_id ? "my-fields" : "borrower-fields" });
    if (me.role === "officer") { showPortfolio(); showReviews(); }
  } catch (err) {
    lastVerdicts = null;
    $("result").innerHTML = `<p class="error">${escapeHtml(err.message)}</p>`;
    if (err.status === 401) { localStorage.removeItem(TOKEN_KEY); showSignedOut(err.message, { keep: true }); }
  } finally {
    updateArea();
  }
});

function showSubmitError(message, focus) {
  lastVerdicts = null;
  $("result").innerHTML = `<p class="error">${escapeHtml(message)}</p>`;
  if (focus) focus.focus();
}

// A listed field opens its verdict card, read from GET /borrowers/{id}: the reasons, the value and
// limit and the officer's decision stay readable after the submit's card is gone.
async function openClaim(borrower, claimId, fallback) {
  $("result").innerHTML = `<p class="muted">${escapeHtml(t("fields.opening"))}</p>`;
  try {
    const detail = await api(`/borrowers/${encodeURIComponent(borrower)}`);
    const claim = (detail.claims || []).find((c) => c.claim_id === claimId) || fallback;
    if (!claim) throw new Error(t("fields.gone"));
    lastVerdicts = [claim];
    $("result").innerHTML = verdictCard(claim);
  } catch (err) {
    lastVerdicts = null;
    $("result").innerHTML = `<p class="error">${escapeHtml(err.message)}</p>`;
  }
  $("result").scrollIntoView({ block: "nearest" });
}

let listedFields = {}; // claim_id -> the properties GET /borrowers/{id}/fields gave, for a claim the detail lacks
for (const list of ["my-fields", "borrower-fields"]) {
  $(list).addEventListener("click", (event) => {
    const item = event.target.closest("button.open-field");
    if (!item) return;
    const borrower = list === "my-fields" ? me && me.borrower_id : shownBorrower;
    if (borrower) openClaim(borrower, item.dataset.claim, listedFields[item.dataset.claim]);
  });
}

// --- the officer's view ----------------------------------------------------------------------------
async function showPortfolio() {
  try {
    const rows = await api("/portfolio");
    $("portfolio").innerHTML = `<thead><tr><th>${escapeHtml(t("officer.borrower"))}</th><th>${escapeHtml(t("officer.fields"))}</th>
      <th>${escapeHtml(t("officer.area"))}</th><th>${escapeHtml(t("officer.limit"))}</th><th></th></tr></thead><tbody>` +
      rows.map((r) => `<tr data-borrower="${escapeHtml(r.borrower_id)}"><td>${escapeHtml(r.borrower_id)}</td><td>${r.claims}</td>
        <td>${Number(r.verified_area_mu || 0).toFixed(1)}</td><td>${Math.round(r.limit_cny || 0).toLocaleString()}</td>
        <td><button type="button" class="show-borrower" data-borrower="${escapeHtml(r.borrower_id)}">${escapeHtml(t("officer.show"))}</button></td></tr>`).join("")
      + "</tbody>";
  } catch (err) {
    $("portfolio").innerHTML = `<tr><td class="error">${escapeHtml(err.message)}</td></tr>`;
  }
}

$("portfolio").addEventListener("click", (event) => {
  const button = event.target.closest("button.show-borrower");
  if (!button) return;
  showBorrower(button.dataset.borrower);
});

function showBorrower(borrower) {
  shownBorrower = borrower;
  $("showing").textContent = t("officer.showing", { borrower });
  $("borrower").value = borrower;
  $("map").scrollIntoView({ block: "nearest" }); // the map it changes may be scrolled out of view
  return showFields(borrower, { fit: true, list: "borrower-fields" });
}

async function showReviews() {
  try {
    const queue = await api("/reviews");
    $("reviews").innerHTML = queue.length ? queue.map((c) => `<li class="review" data-claim="${escapeHtml(c.claim_id)}" data-verdict="${escapeHtml(c.verification_id)}">
        <b>${escapeHtml(c.borrower_id)} · ${escapeHtml(c.name)}</b> (${Number(c.claimed_area_ha || 0).toFixed(2)} ha)
        <p class="muted">${escapeHtml(c.reason || "")}</p>
        <input class="note" maxlength="500" placeholder="${escapeHtml(t("officer.note"))}" aria-label="${escapeHtml(t("officer.note"))}">
        <div class="buttons"><button type="button" data-decision="approve">${escapeHtml(t("officer.approve"))}</button>
        <button type="button" data-decision="reject">${escapeHtml(t("officer.reject"))}</button>
        <button type="button" class="show-borrower-fields" data-borrower="${escapeHtml(c.borrower_id)}">${escapeHtml(t("officer.show"))}</button></div></li>`).join("")
      : `<li class="muted">${escapeHtml(t("officer.no_reviews"))}</li>`;
  } catch (err) {
    $("reviews").innerHTML = `<li class="error">${escapeHtml(err.message)}</li>`;
  }
}

$("reviews").addEventListener("click", async (event) => {
  const show = event.target.closest("button.show-borrower-fields");
  if (show) { showBorrower(show.dataset.borrower); return; }
  const button = event.target.closest("button[data-decision]");
  if (!button) return;
  const item = button.closest("li.review");
  const note = item.querySelector("input.note").value.trim();
  if (!note) { $("review-result").className = "error"; $("review-result").textContent = t("officer.note_needed"); return; }
  item.querySelectorAll("button").forEach((b) => { b.disabled = true; });
  try {
    const row = await api(`/reviews/${encodeURIComponent(item.dataset.claim)}`, { method: "POST",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ decision: button.dataset.decision, note, verification_id: item.dataset.verdict }) });
    $("review-result").className = "";
    $("review-result").textContent = t("officer.decided", { claim: item.dataset.claim,
      decision: t(`officer.${button.dataset.decision}`), status: t(`status.${row.status}`) });
    showReviews();
    showPortfolio();
    // the borrower's list and map colours change with the decision
    if (shownBorrower) showFields(shownBorrower, { fit: false, list: "borrower-fields" });
  } catch (err) {
    $("review-result").className = "error";
    $("review-result").textContent = err.message;
    item.querySelectorAll("button").forEach((b) => { b.disabled = false; });
  }
});

// --- buttons -----------------------------------------------------------------------------------------
$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("signin-code").value.trim();
  $("signin-code").value = "";
  // a one-time code, alone or inside the whole SMS link ("…/map/#code=asl_…") or "code=asl_…"
  const code = value.startsWith("ast_") ? null : (value.match(/(?:^|[#?&=\s/])(asl_[0-9a-f]{16}_[A-Za-z0-9_-]+)/) || [])[1];
  if (code) return signIn(code);
  if (/asl_|code=|:\/\//.test(value)) { $("signin-error").textContent = t("signin.bad_code"); return undefined; } // a link cut short
  localStorage.setItem(TOKEN_KEY, value); // a token from `assets users token`
  return signIn();
});
$("signout").addEventListener("click", () => {
  // the session ends on the server too (a phone lent or lost keeps no working sign-in); best effort
  const held = token();
  if (held) fetch("/me/signout", { method: "POST", headers: { Authorization: `Bearer ${held}` } }).catch(() => {});
  localStorage.removeItem(TOKEN_KEY);
  showSignedOut();
});
$("draw").addEventListener("click", () => {
  clearField();
  $("proposal").hidden = true;
  setHint("draw.help");
  startDrawing();
});
$("undo").addEventListener("click", undo);
$("accept").addEventListener("click", () => { accept(); setHint("edit.help"); });
$("clear").addEventListener("click", () => {
  clearField();
  lastProposal = null;
  lastVerdicts = null;
  $("proposal").hidden = true;
  $("result").innerHTML = "";
  setHint("hint.tap");
  updateArea();
});
$("field-name").addEventListener("input", (e) => { e.target.dataset.touched = "1"; });
$("field-crop").addEventListener("input", (e) => { e.target.dataset.touched = "1"; });
$("lang").addEventListener("click", () => {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem(LANG_KEY, lang);
  rerender();
});

function rerender() {
  applyStrings();
  showWho();
  updateArea();
  showProposal();
  showImageryDates();
  if (!me) $("imagery-date").textContent = t("imagery.signin");
  if (lastVerdicts) $("result").innerHTML = lastVerdicts.map(verdictCard).join("");
  if (me && me.borrower_id) showFields(me.borrower_id, { fit: false });
  if (me && me.role === "officer") { showPortfolio(); showReviews(); }
}

// --- start -------------------------------------------------------------------------------------------
async function start() {
  try {
    catalogue = await (await fetch("i18n.json")).json();
  } catch (err) {
    catalogue = {};
  }
  lang = pickLanguage();
  applyStrings();
  $("who").textContent = t("signin.signing");
  $("imagery-date").textContent = t("imagery.loading");
  updateArea();
  // Before sign-in the public footprint of the imagery frames the map (the tiles need a token).
  fetch("/imagery/latest").then((r) => (r.ok ? r.json() : null)).then((data) => {
    if (data && !imagery) map.fitBounds(data.bounds);
  }).catch(() => {});
  map.setView([30, 110], 4);
  // A sign-in link carries its one-time code after '#', which never reaches a server log; drop it
  // from the address bar at once so it is not bookmarked or shared.
  const linkCode = takeLinkCode();
  await signIn(linkCode);
  document.body.dataset.ready = "1";
  // Another sign-in link opened in this tab changes only the '#', which reloads nothing: exchange
  // its code too (the user may change), and drop it from the address bar the same way.
  window.addEventListener("hashchange", async () => {
    const code = takeLinkCode();
    if (!code) return;
    document.body.dataset.ready = "0";
    await signIn(code);
    document.body.dataset.ready = "1";
  });
}

function takeLinkCode() {
  const code = new URLSearchParams(location.hash.slice(1)).get("code");
  if (code) history_replace();
  return code;
}

function history_replace() { window.history.replaceState(null, "", location.pathname + location.search); }

start();
