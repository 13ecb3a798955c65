// boxoffice on-sale dashboard. Plain JS, no build step, no dependencies.
//
// Seats, holds and revenue come from the event's live stream (GET /events/{id}/live: a snapshot with every
// seat's price and status, then one message per change); refusals and the booking service's lag from
// GET /metrics (platform-wide counters and gauges); the waiting room's figures from GET /events/{id}.
"use strict";

// An event's start in the page's own time zone, which is named: it is not the venue's (nor the emails' UTC).
const STARTS_AT_FORMAT = { weekday: "long", year: "numeric", month: "long", day: "numeric", hour: "numeric",
  minute: "2-digit", timeZoneName: "short" };
const SAMPLE_MS = 1000;         // one point of the chart a second
const CHART_POINTS = 600;       // ten minutes on screen
const RATE_WINDOW_MS = 10_000;  // rates are averaged over the last ten seconds
const METRICS_MS = 2000;
const EVENT_MS = 2000;

const $ = (id) => document.getElementById(id);
const eventId = decodeURIComponent(location.pathname.split("/")[2] || "");

const state = {
  event: null,
  seats: new Map(),     // seatId -> {cents, status}
  counts: null,         // {available, reserved, booked}
  lastSeq: -1,
  revenue: 0,           // prices of the BOOKED seats, in cents (whole numbers add up exactly)
  holdTimes: [],        // when this event's holds arrived (ms), for holds per second
  refusals: [],         // [{at, total}] of boxoffice_holds_refused_total, for refusals per second
  samples: [],          // [{available, reserved, booked}] one a second
  stream: null,
  missing: false,       // the event does not exist
};

document.addEventListener("DOMContentLoaded", () => {
  $("monitor-link").href = `/?event=${encodeURIComponent(eventId)}`;
  loadEvent();
  openStream();
  pollMetrics();
  setInterval(sample, SAMPLE_MS);
});

// ---------------------------------------------------------------- the event and its waiting room

async function loadEvent() {
  const answer = await getJson(`/events/${encodeURIComponent(eventId)}`);
  if (answer.status === 404) {
    state.missing = true;  // nothing will ever come: no reconnecting
    state.stream?.close();
    setConnection("off");
    $("event-name").textContent = "No such event";
    return showError(`Event “${eventId}” does not exist.`);
  }
  if (answer.status === 200) {
    showError("");
    state.event = answer.body;
    showEvent(answer.body);
    if (!answer.body.onSale?.waitingRoom) return;  // nothing else here changes fast enough to poll
  }
  setTimeout(loadEvent, EVENT_MS);
}

function showEvent(event) {
  $("event-name").textContent = `${event.name} — on sale`;
  document.title = `${event.name} — boxoffice dashboard`;
  $("event-venue").textContent = `${event.venue.name}, ${event.venue.city}`;
  $("event-meta").hidden = false;
  const date = $("event-date");
  date.dateTime = event.startsAt;
  date.textContent = new Date(event.startsAt).toLocaleString(undefined, STARTS_AT_FORMAT);
  showRevenue();
  const room = event.onSale?.waitingRoom && event.queue;
  $("queue-panel").hidden = !room;
  if (!room) return;
  setText("queue-size", event.queue.size);
  setText("queue-waiting", event.queue.waiting);
  setText("queue-admitted", event.queue.admittedLastMinute);
  const rate = event.onSale.admitPerMinute;
  setText("queue-rate", rate === "auto" ? "auto (as the booking side takes them)" : `${rate} a minute`);
  setText("queue-opens", event.queue.opened ? "open" :
    `opens ${new Date(event.onSale.opensAt).toLocaleTimeString(undefined, { timeZoneName: "short" })}`);
}

function showError(text) {
  $("dashboard-error").textContent = text;
  $("dashboard-error").hidden = !text;
}

// ---------------------------------------------------------------- the live stream

function openStream() {
  if (state.missing) return;
  // After a stream closed for good, resume from the last change applied.
  const resume = state.lastSeq >= 0 ? `?lastEventId=${state.lastSeq}` : "";
  const source = new EventSource(`/events/${encodeURIComponent(eventId)}/live${resume}`);
  state.stream = source;
  source.onopen = () => setConnection("live");
  source.onmessage = (e) => {
    setConnection("live");
    let message;
    try { message = JSON.parse(e.data); } catch { return; }
    if (message.type === "snapshot") applySnapshot(message);
    else applyChange(message);
  };
  source.onerror = () => {
    setConnection("lost");
    // While CONNECTING the browser retries by itself; a closed source (a 503 answer) is opened again.
    if (source.readyState === EventSource.CLOSED && state.stream === source) setTimeout(openStream, 2000);
  };
}

function setConnection(mode) {
  const node = $("connection-status");
  if (node.dataset.state === mode) return;
  node.dataset.state = mode;
  node.textContent = { live: "Live", lost: "Connection lost — reconnecting…", connecting: "Connecting…",
    off: "Not connected" }[mode];
}

function applySnapshot(snapshot) {
  state.lastSeq = snapshot.seq ?? -1;
  state.seats = new Map(snapshot.seats.map((s) => [s.seatId, { cents: Math.round(s.price * 100), status: s.status }]));
  state.revenue = 0;
  for (const seat of state.seats.values()) if (seat.status === "BOOKED") state.revenue += seat.cents;
  showCounts(snapshot);
}

const STATUS_OF_CHANGE = { "seat.reserved": "RESERVED", "seat.released": "AVAILABLE", "seat.booked": "BOOKED" };

function applyChange(change) {
  const status = STATUS_OF_CHANGE[change.type];
  if (!status) return;
  if (typeof change.seq === "number") {
    if (change.seq <= state.lastSeq) return;  // replayed after a reconnect
    state.lastSeq = change.seq;
  }
  for (const seatId of change.seatIds || []) {
    const seat = state.seats.get(seatId);
    if (!seat) continue;
    if (seat.status === "BOOKED") state.revenue -= seat.cents;  // a refund
    if (status === "BOOKED") state.revenue += seat.cents;
    seat.status = status;
  }
  if (change.type === "seat.reserved") state.holdTimes.push(Date.now());
  showCounts(change);
}

function showCounts(counts) {
  state.counts = { available: counts.available, reserved: counts.reserved, booked: counts.booked };
  setText("sold", counts.booked);
  setText("held", counts.reserved);
  setText("available", counts.available);
  showRevenue();
}

function showRevenue() {
  if (!state.counts) return;
  setText("revenue", money(state.revenue / 100, state.event?.currency));
}

// ---------------------------------------------------------------- rates and lag from /metrics

async function pollMetrics() {
  try {
    const response = await fetch("/metrics", { cache: "no-store" });
    if (response.ok) showMetrics(parseMetrics(await response.text()));
  } catch { /* the gateway is away: the next poll tries again */ }
  setTimeout(pollMetrics, METRICS_MS);
}

// The Prometheus text format: refusals summed over every reason and instance, the booking processes' lag summed.
function parseMetrics(text) {
  const sums = { refused: 0, bookingLag: null };
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-z_]+)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const [, name, labels = "", raw] = match;
    const value = Number(raw);
    if (!Number.isFinite(value)) continue;
    if (name === "boxoffice_holds_refused_total") sums.refused += value;
    if (name === "boxoffice_consumer_lag" && labels.includes('service="booking"')) {
      sums.bookingLag = (sums.bookingLag ?? 0) + value;
    }
  }
  return sums;
}

function showMetrics(sums) {
  const now = Date.now();
  state.refusals.push({ at: now, total: sums.refused });
  while (state.refusals.length > 2 && now - state.refusals[1].at >= RATE_WINDOW_MS) state.refusals.shift();
  const first = state.refusals[0];
  // A counter that went down is a restarted service: no rate until two readings agree again.
  if (state.refusals.length > 1 && sums.refused >= first.total) {
    setText("refusals-rate", rate(sums.refused - first.total, now - first.at));
  }
  setText("booking-lag", sums.bookingLag ?? "–");
}

function rate(count, ms) {
  const perSecond = ms > 0 ? count / (ms / 1000) : 0;
  return perSecond >= 10 ? String(Math.round(perSecond)) : perSecond.toFixed(1);
}

// ---------------------------------------------------------------- the chart, one point a second

function sample() {
  const now = Date.now();
  while (state.holdTimes.length && now - state.holdTimes[0] > RATE_WINDOW_MS) state.holdTimes.shift();
  if (state.counts) setText("holds-rate", rate(state.holdTimes.length, RATE_WINDOW_MS));
  if (!state.counts) return;
  state.samples.push({ ...state.counts });
  if (state.samples.length > CHART_POINTS) state.samples.shift();
  drawChart();
}

// Stacked areas, sold at the bottom, then held, then available: together always the whole house.
function drawChart() {
  const points = state.samples;
  const total = Math.max(1, points[0].available + points[0].reserved + points[0].booked);
  const width = 600;
  const height = 200;
  const x = (i) => (points.length === 1 ? width : (i / (points.length - 1)) * width);
  const y = (value) => height - (value / total) * height;
  const area = (lower, upper) => {
    const top = points.map((p, i) => `${x(i).toFixed(1)},${y(upper(p)).toFixed(1)}`);
    const bottom = points.map((p, i) => `${x(i).toFixed(1)},${y(lower(p)).toFixed(1)}`).reverse();
    if (points.length === 1) {  // one reading: a band across the chart
      top.unshift(`0,${y(upper(points[0])).toFixed(1)}`);
      bottom.push(`0,${y(lower(points[0])).toFixed(1)}`);
    }
    return `M${top.join("L")}L${bottom.join("L")}Z`;
  };
  $("area-sold").setAttribute("d", area(() => 0, (p) => p.booked));
  $("area-held").setAttribute("d", area((p) => p.booked, (p) => p.booked + p.reserved));
  $("area-available").setAttribute("d", area((p) => p.booked + p.reserved, (p) => p.booked + p.reserved + p.available));
  const last = points[points.length - 1];
  setText("chart-summary", `Now: ${last.booked} sold, ${last.reserved} held, ${last.available} available `
    + `of ${total}; ${points.length} s shown.`);
}

// ---------------------------------------------------------------- helpers

function setText(id, value) {
  const text = value == null ? "–" : String(value);
  const node = $(id);
  if (node.textContent !== text) node.textContent = text;
}

function money(amount, currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: currency || "USD" }).format(amount);
  } catch {
    return `${amount.toFixed(2)} ${currency || ""}`.trim();
  }
}

async function getJson(path) {
  try {
    const response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
    return { status: response.status, body: await response.json().catch(() => null) };
  } catch {
    return { status: 0, body: null };
  }
}
