// The farmer's map: sign in with the bank's one-time link, tap corners over the satellite image,
// submit, read the verdict. The farmer's borrower comes from their token (GET /me), never typed.
"use strict";

const TOKEN_KEY = "assets.token";
let me = null; // {name, role, borrower_id} once signed in

const map = L.map("map", { zoomControl: true, zoomSnap: 0.25 });
const corners = [];
const outline = L.polygon([], { color: "#ffeb3b", weight: 3, fillOpacity: 0.15 }).addTo(map);
const markers = L.layerGroup().addTo(map);
const $ = (id) => document.getElementById(id);

function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// Area on the sphere (m^2) of a lon/lat ring: good to well under 1 % for fields.
function ringAreaM2(latlngs) {
  const R = 6378137, rad = Math.PI / 180;
  let sum = 0;
  for (let i = 0; i < latlngs.length; i++) {
    const a = latlngs[i], b = latlngs[(i + 1) % latlngs.length];
    sum += (b.lng - a.lng) * rad * (2 + Math.sin(a.lat * rad) + Math.sin(b.lat * rad));
  }
  return Math.abs(sum * R * R / 2);
}

function redraw() {
  outline.setLatLngs(corners);
  markers.clearLayers();
  corners.forEach((c) => L.circleMarker(c, { radius: 6, color: "#ffeb3b" }).addTo(markers));
  const ha = corners.length >= 3 ? ringAreaM2(corners) / 10000 : 0;
  $("area").textContent = corners.length < 3
    ? `${corners.length} corner${corners.length === 1 ? "" : "s"} (at least 3 needed)`
    : `${corners.length} corners, about ${ha.toFixed(2)} ha (${(ha * 15).toFixed(1)} mu)`;
  $("submit").disabled = corners.length < 3 || !me;
}

// --- sign-in ---------------------------------------------------------------------------------
const token = () => localStorage.getItem(TOKEN_KEY);

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  const response = await fetch(path, { ...options, headers });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const err = new Error(data.error || data.detail || `request failed (${response.status})`);
    err.status = response.status;
    throw err;
  }
  return data;
}

async function exchange(code) {
  const data = await api("/auth/exchange", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ code }) });
  localStorage.setItem(TOKEN_KEY, data.token);
}

function showSignedOut(message) {
  me = null;
  $("who").textContent = "Sign in to submit your fields.";
  $("signin-form").hidden = false;
  $("signout").hidden = true;
  $("borrower-row").hidden = true;
  $("my-fields").innerHTML = "";
  $("signin-error").textContent = message || "";
  redraw();
}

async function showMyFields() {
  if (!me || !me.borrower_id) return;
  try {
    const detail = await api(`/borrowers/${encodeURIComponent(me.borrower_id)}`);
    $("my-fields").innerHTML = detail.claims.map((c) => `<li class="${escapeHtml(c.status)}">${escapeHtml(c.name)}:
      ${escapeHtml(c.status)}${c.limit_cny ? `, limit ${Math.round(c.limit_cny).toLocaleString()} CNY` : ""}</li>`).join("");
  } catch (err) {
    $("my-fields").innerHTML = err.status === 404 ? '<li class="muted">No fields submitted yet.</li>'
      : `<li class="error">${escapeHtml(err.message)}</li>`;
  }
}

async function signIn(code) {
  $("signin-error").textContent = "";
  try {
    if (code) await exchange(code);
    if (!token()) return showSignedOut();
    me = await api("/me");
  } catch (err) {
    if (err.status === 401) localStorage.removeItem(TOKEN_KEY);
    return showSignedOut(err.message);
  }
  $("who").textContent = me.borrower_id ? `Signed in as ${me.name} (borrower ${me.borrower_id})`
    : `Signed in as ${me.name} (${me.role})`;
  $("signin-form").hidden = true;
  $("signout").hidden = false;
  $("borrower-row").hidden = Boolean(me.borrower_id); // officers choose the borrower they file for
  redraw();
  showMyFields();
}

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("signin-code").value.trim();
  $("signin-code").value = "";
  if (value.startsWith("asl_")) return signIn(value); // a one-time code
  localStorage.setItem(TOKEN_KEY, value); // a token from `assets users token`
  return signIn();
});
$("signout").addEventListener("click", () => { localStorage.removeItem(TOKEN_KEY); showSignedOut(); });

map.on("click", (e) => { corners.push(e.latlng); redraw(); });
$("undo").addEventListener("click", () => { corners.pop(); redraw(); });
$("clear").addEventListener("click", () => { corners.length = 0; redraw(); $("result").innerHTML = ""; });

function showVerdict(claim) {
  const mu = claim.verified_area_ha == null ? "-" : (claim.verified_area_ha * 15).toFixed(1);
  const money = (v) => (v == null ? "-" : `${Math.round(v).toLocaleString()} CNY`);
  return `<div class="verdict ${escapeHtml(claim.status)}">
    <h2>${escapeHtml(claim.name)}: ${escapeHtml(claim.status)}</h2>
    <dl>
      <dt>Verified area</dt><dd>${claim.verified_area_ha == null ? "-" : claim.verified_area_ha.toFixed(2)} ha (${mu} mu)</dd>
      <dt>Crop</dt><dd>${escapeHtml(claim.crop ?? "-")}</dd>
      <dt>Value</dt><dd>${money(claim.value_cny)}</dd>
      <dt>Credit limit</dt><dd>${money(claim.limit_cny)}</dd>
      <dt>Why</dt><dd>${escapeHtml(claim.reason ?? "verified against the satellite images")}</dd>
    </dl></div>`;
}

$("claim-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const borrower = me.borrower_id || $("borrower").value.trim();
  const ring = corners.map((c) => [Number(c.lng.toFixed(7)), Number(c.lat.toFixed(7))]);
  ring.push(ring[0]);
  const body = { type: "FeatureCollection", features: [{ type: "Feature",
    properties: { name: $("field-name").value.trim() || "My field" },
    geometry: { type: "Polygon", coordinates: [ring] } }] };
  $("submit").disabled = true;
  $("result").innerHTML = '<p class="muted">Checking your field against the satellite images…</p>';
  try {
    const data = await api(`/borrowers/${encodeURIComponent(borrower)}/claims`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    $("result").innerHTML = data.map(showVerdict).join("");
    showMyFields();
  } catch (err) {
    $("result").innerHTML = `<p class="error">${escapeHtml(err.message)}</p>`;
    if (err.status === 401) { localStorage.removeItem(TOKEN_KEY); showSignedOut(err.message); }
  } finally {
    $("submit").disabled = corners.length < 3 || !me;
  }
});

fetch("/imagery/latest").then((r) => r.json().then((data) => ({ ok: r.ok, data }))).then(({ ok, data }) => {
  if (!ok) throw new Error(data.error || "no imagery");
  L.imageOverlay(data.url, data.bounds).addTo(map);
  map.fitBounds(data.bounds);
  $("imagery-date").textContent = `Sentinel-2 image of ${data.acquired_on}`;
}).catch((err) => {
  map.setView([0, 0], 2);
  $("imagery-date").textContent = `No satellite image available: ${err.message}`;
});
redraw();
// A sign-in link carries its one-time code after '#', which never reaches a server log; drop it
// from the address bar at once so it is not bookmarked or shared.
const linkCode = new URLSearchParams(location.hash.slice(1)).get("code");
if (linkCode) history.replaceState(null, "", location.pathname + location.search);
signIn(linkCode);
