// The farmer's map: tap corners over the satellite image, submit, read the verdict.
"use strict";

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
  $("submit").disabled = corners.length < 3;
}

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
  const borrower = $("borrower").value.trim();
  const ring = corners.map((c) => [Number(c.lng.toFixed(7)), Number(c.lat.toFixed(7))]);
  ring.push(ring[0]);
  const body = { type: "FeatureCollection", features: [{ type: "Feature",
    properties: { name: $("field-name").value.trim() || "My field" },
    geometry: { type: "Polygon", coordinates: [ring] } }] };
  $("submit").disabled = true;
  $("result").innerHTML = '<p class="muted">Checking your field against the satellite images…</p>';
  try {
    const response = await fetch(`/borrowers/${encodeURIComponent(borrower)}/claims`, {
      method: "POST", headers: { "Content-Type": "application/json", "X-API-Key": $("api-key").value },
      body: JSON.stringify(body) });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || data.detail || `request failed (${response.status})`);
    $("result").innerHTML = data.map(showVerdict).join("");
  } catch (err) {
    $("result").innerHTML = `<p class="error">${escapeHtml(err.message)}</p>`;
  } finally {
    $("submit").disabled = corners.length < 3;
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
