// boxoffice live monitor and booking page. Plain JS, no build step, no dependencies.
//
// Data flow: GET /events fills the picker; GET /events/{id} gives title, venue, prices; the SSE stream
// /events/{id}/live sends a snapshot (the whole seat map), then one message per change. The map is drawn
// once per snapshot layout; every change updates only the seats it names (Map seatId -> seat record).
//
// Why DOM buttons even at 50,000 seats, and no canvas: measured in headless Chromium on a 2-core VM, a
// 50,000-seat snapshot (5.5 MB) shows its first rows after ~0.3 s and is fully drawn after ~1 s in slices
// that leave the page responsive; a seat change then costs one attribute write and one ordinary frame.
// `content-visibility: auto` on rows (app.css) keeps style, layout and paint to the rows on screen. Real
// buttons keep clicks, focus, keyboard use, screen readers and the test hooks for free; a canvas would need
// all of that rebuilt (hit-testing, a focus model, an accessible fallback) to save a second at load.
"use strict";

// An event's start in the page's own time zone, which is named: it is not the venue's (nor the emails' UTC).
const STARTS_AT_FORMAT = { weekday: "long", year: "numeric", month: "long", day: "numeric", hour: "numeric",
  minute: "2-digit", timeZoneName: "short" };
const DEFAULT_EVENT = "taylor_swift_concert";
const MAX_SELECTED = 10;          // the gateway's per-booking seat limit
const LOG_LIMIT = 50;
const COMPACT_ABOVE = 5000;       // smaller seats for stadium-sized maps
const DRAW_SLICE = 4000;          // seats drawn per task (about 40 ms on a slow laptop)
const POLL_MS = 1000;
const POLL_GIVE_UP_MS = 5 * 60 * 1000;
const WAITLIST_POLL_MS = 2000;
const QUEUE_POLL_MS = 2000;       // the waiting room's figures; its ticker moves them once a second
const STATUS_OF_CHANGE = { "seat.reserved": "RESERVED", "seat.released": "AVAILABLE", "seat.booked": "BOOKED" };
const RELEASE_REASON = { timeout: "hold expired", cancelled: "cancelled", payment_failed: "payment declined" };
// A booking's status once it has ended → how the hold panel tells it.
const OUTCOME_OF_STATUS = { confirmed: "confirmed", expired: "expired", cancelled: "cancelled",
  payment_failed: "declined", refunded: "cancelled" };

const state = {
  accountsRequired: false,  // BOXOFFICE_AUTH=on: bookings need a signed-in account
  account: null,            // {email, userId, token} once signed in
  events: [],
  event: null,              // GET /events/{id} body of the event on screen
  eventId: null,
  queueAccess: null,        // the waiting room's access token, for an event behind one
  total: 0,
  available: null,          // AVAILABLE seats now, from the live counts (null until the snapshot)
  lastSeq: -1,              // seq of the last applied stream message
  loggedSeq: -1,            // seq of the newest change in the activity log
  stream: null,
  reopenTimer: null,
  reopenDelay: 1000,
  seats: new Map(),         // seatId -> seat from the snapshot, plus .el (its button, once drawn)
  drawId: 0,                // the map drawing in progress; a newer one stops the older
  order: [],                // seat ids in display order: tells whether a new snapshot has the same layout
  rows: [],                 // [[seatId, ...], ...] in display order, for arrow-key moves
  position: new Map(),      // seatId -> [rowIndex, indexInRow]
  focusSeatId: null,        // the one seat with tabindex=0 (roving tabindex: Tab enters the map once)
  selected: new Set(),
  holding: null,            // seat ids of a POST /bookings in flight
  finding: false,           // a best-available POST /bookings in flight
  holdAttempt: null,        // {signature, key}: retried after a network error with the same Idempotency-Key
  hold: null,               // the pending booking shown in the hold panel
  waitlist: null,           // this event's waiting list entry: {waitlistId, status, position, quantity, bookingId}
  waitlistTimer: null,
  salesClosed: null,        // the event whose seats were made unselectable (called off by its organiser)
  loadingSeats: null,       // the event whose seat map is being read from the API while the stream is down
  joining: false,           // a POST /events/{id}/waitlist in flight
  countdownTimer: null,
  queuePollId: 0,           // the waiting room's polling loop in progress; a newer one (or none) stops the older
  queueTimer: null,
  clockSkew: 0,             // server clock minus ours, in ms (only when it is clearly off)
};

const $ = (id) => document.getElementById(id);

document.addEventListener("DOMContentLoaded", start);

function start() {
  initUserId();
  initAccounts();
  $("event-select").addEventListener("change", (e) => selectEvent(e.target.value, true));
  $("seat-map").addEventListener("click", onMapClick);
  $("seat-map").addEventListener("keydown", onMapKeydown);
  $("seat-map").addEventListener("focusin", onMapFocus);
  $("hold-button").addEventListener("click", holdSelected);
  $("clear-button").addEventListener("click", clearSelection);
  initBestAvailable();
  initWaitlist();
  $("pay-button").addEventListener("click", pay);
  $("cancel-button").addEventListener("click", cancelHold);
  loadEvents();
}

// ---------------------------------------------------------------- events and the picker

async function loadEvents() {
  const answer = await api("GET", "/events");
  if (answer.status !== 200 || !Array.isArray(answer.body)) {
    showEventError(`Could not load the events (${describeFailure(answer)}); retrying…`);
    setTimeout(loadEvents, 3000);
    return;
  }
  state.events = answer.body;
  const wanted = new URLSearchParams(location.search).get("event");
  const known = state.events.some((e) => e.eventId === DEFAULT_EVENT) ? DEFAULT_EVENT : state.events[0]?.eventId;
  fillPicker(state.events, wanted);
  const eventId = wanted || known;
  if (eventId) selectEvent(eventId, false);
  else showNoEvent("No events", "There are no events yet.");
}

function fillPicker(events, wanted) {
  const select = $("event-select");
  const options = events.map((e) => new Option(
    `${e.name} — ${e.venue.name}, ${e.venue.city}${e.status === "cancelled" ? " (cancelled)" : ""}`, e.eventId));
  // An event asked for in the URL but not listed (yet) still gets an option, so the picker tells the truth.
  if (wanted && !events.some((e) => e.eventId === wanted)) options.unshift(new Option(wanted, wanted));
  select.replaceChildren(...options);
}

async function selectEvent(eventId, fromPicker) {
  if (fromPicker) {
    const url = new URL(location.href);
    url.searchParams.set("event", eventId);
    history.replaceState(null, "", url);
  }
  $("event-select").value = eventId;
  $("dashboard-link").href = `/events/${encodeURIComponent(eventId)}/dashboard`;
  closeStream();
  resetMap(eventId);
  const answer = await api("GET", `/events/${encodeURIComponent(eventId)}`);
  if (state.eventId !== eventId) return;  // another event was picked meanwhile
  if (answer.status === 404) return showNoEvent("No such event", `Event “${eventId}” does not exist.`);
  if (answer.status !== 200) {
    showEventError(`Could not load the event (${describeFailure(answer)}).`);
    setTimeout(() => state.eventId === eventId && selectEvent(eventId, false), 3000);
    return;
  }
  showEventError("");
  state.event = answer.body;
  showEventHeader(answer.body);
  watchQueue(eventId, answer.body);
  openStream(eventId);
  restoreWaitlist(eventId);
  restoreHold(eventId);
}

// A reloaded page shows the buyer's unpaid hold of this event again, from GET /users/{userId}/bookings: the
// newest pending booking that has not run out.
async function restoreHold(eventId) {
  const userId = state.account ? state.account.userId : $("user-id").value.trim();
  if (!userId || state.hold || (state.accountsRequired && !state.account)) return;
  const answer = await api("GET", `/users/${encodeURIComponent(userId)}/bookings`);
  if (state.eventId !== eventId || state.hold || answer.status !== 200 || !Array.isArray(answer.body.bookings)) return;
  const now = Date.now() + state.clockSkew;
  const pending = answer.body.bookings
    .filter((b) => b.eventId === eventId && b.status === "pending" && Date.parse(b.expiresAt) > now)
    .sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt));
  if (pending.length) startHold(pending[0]);
}

function resetMap(eventId) {
  state.eventId = eventId;
  state.salesClosed = null;
  state.event = null;
  state.lastSeq = -1;
  state.loggedSeq = -1;
  state.total = 0;
  state.selected.clear();
  state.seats.clear();
  state.order = [];
  state.rows = [];
  state.position.clear();
  state.focusSeatId = null;
  state.drawId++;
  $("seat-map").replaceChildren();
  $("activity-log").replaceChildren();
  setCounts({ available: null, reserved: null, booked: null, total: 0 });
  showBestAvailable(null);
  setWaitlist(null);
  watchQueue(eventId, null);
  updateSelection();
}

function showEventHeader(event) {
  $("event-name").textContent = event.name;
  document.title = `${event.name} — boxoffice live`;
  $("event-venue").textContent = `${event.venue.name}, ${event.venue.city}`;
  $("event-meta").hidden = false;
  const date = $("event-date");
  date.dateTime = event.startsAt;
  date.textContent = new Date(event.startsAt).toLocaleString(undefined, STARTS_AT_FORMAT);
  $("price-list").textContent = (event.priceCategories || [])
    .map((c) => `${c.name} ${money(c.price, event.currency)}`).join(" · ");
  showBestAvailable(event);
}

// Nothing to show, and nothing will come: the header says so (not the last event's name, nor "Loading…"), and
// the badge does not claim to be connecting.
function showNoEvent(heading, text) {
  $("event-name").textContent = heading;
  document.title = `${heading} — boxoffice live`;
  $("event-meta").hidden = true;
  $("price-list").textContent = "";
  setConnection("off");
  showEventError(text);
}

function showEventError(text) {
  const node = $("event-error");
  node.textContent = text;
  node.hidden = !text;
}

// ---------------------------------------------------------------- the waiting room's figures

// An event behind a waiting room shows its queue, and a cancelled one how far its refunds have got: both
// polled from GET /events/{id} while the event is on screen (the live stream carries seats only). Each
// answer schedules the next poll, so polls never overlap.
function watchQueue(eventId, event) {
  clearTimeout(state.queueTimer);
  const pollId = ++state.queuePollId;
  showQueue(event);
  showCancellation(event);
  if (needsPolling(event)) state.queueTimer = setTimeout(() => pollQueue(eventId, pollId), QUEUE_POLL_MS);
}

function needsPolling(event) {
  return hasWaitingRoom(event) || (event?.status === "cancelled" && !event.cancellation?.done);
}

function showCancellation(event) {
  const node = $("cancellation-status");
  const cancellation = event?.status === "cancelled" ? event.cancellation : null;
  node.hidden = !cancellation;
  if (!cancellation) return;
  closeSales();
  const refused = cancellation.refundsRefused || 0;
  const paid = cancellation.bookingsRefunded + cancellation.bookingsToRefund + refused;
  setFigure(node, `Cancelled by the organiser. ${cancellation.holdsReleased} unpaid holds released; `
    + `${cancellation.bookingsRefunded} of ${paid} paid bookings refunded${cancellation.done ? "." : " so far…"}`
    + (refused ? ` ${refused} refused by the payment provider: the organiser settles them.` : ""));
}

// A seat released because the event was called off: load the event again to show the cancellation.
function onCalledOff(eventId) {
  if (state.event?.status === "cancelled") return;
  state.event = { ...(state.event || {}), status: "cancelled" };
  api("GET", `/events/${encodeURIComponent(eventId)}`).then((answer) => {
    if (state.eventId === eventId && answer.status === 200) watchQueue(eventId, answer.body);
  });
}

async function pollQueue(eventId, pollId) {
  const answer = await api("GET", `/events/${encodeURIComponent(eventId)}`);
  if (pollId !== state.queuePollId || state.eventId !== eventId) return;  // another event was picked meanwhile
  // A failed poll keeps the last figures on screen and tries again; a room switched off stops the polling.
  if (answer.status === 200) {
    showQueue(answer.body);
    showCancellation(answer.body);
    if (!needsPolling(answer.body)) return;
  }
  state.queueTimer = setTimeout(() => pollQueue(eventId, pollId), QUEUE_POLL_MS);
}

function hasWaitingRoom(event) {
  return Boolean(event?.onSale?.waitingRoom && event.queue);
}

function showQueue(event) {
  $("queue-panel").hidden = !hasWaitingRoom(event);
  if (!hasWaitingRoom(event)) return;
  const { onSale, queue } = event;
  const opens = $("queue-opens");
  opens.dateTime = onSale.opensAt;
  setFigure(opens, queue.opened ? "open" : `opens ${new Date(onSale.opensAt).toLocaleString(undefined,
    { dateStyle: "medium", timeStyle: "long" })}`);
  setFigure($("queue-size"), queue.size);
  setFigure($("queue-waiting"), queue.waiting);
  setFigure($("queue-serving"), queue.servingPosition);
  setFigure($("queue-admitted"), queue.admittedLastMinute);
  setFigure($("queue-rate"), onSale.admitPerMinute);
}

// Only a figure that changed is written: the panel is a live region, and a poll with no news says nothing.
function setFigure(node, value) {
  const text = value == null ? "–" : String(value);
  if (node.textContent !== text) node.textContent = text;
}

// ---------------------------------------------------------------- the live stream

function openStream(eventId) {
  closeStream();
  // After a stream we opened ourselves died for good, resume from the last applied change: the gateway
  // takes ?lastEventId= like the Last-Event-ID header that EventSource sends on its own reconnects.
  const resume = state.lastSeq >= 0 ? `?lastEventId=${state.lastSeq}` : "";
  const source = new EventSource(`/events/${encodeURIComponent(eventId)}/live${resume}`);
  state.stream = source;
  source.onopen = () => {
    if (state.stream !== source) return;
    state.reopenDelay = 1000;
    setConnection("live");
  };
  source.onmessage = (e) => {
    if (state.stream !== source) return;
    setConnection("live");
    onStreamMessage(e.data);
  };
  source.onerror = () => {
    if (state.stream !== source) return;
    setConnection("lost");
    // While CONNECTING the browser retries by itself. An answer that is not a stream (a 503 from the
    // gateway while the realtime service restarts) closes the source for good: then we open a new one.
    if (source.readyState === EventSource.CLOSED) {
      if (state.lastSeq < 0) loadSeatsWithoutStream(eventId);
      scheduleReopen(eventId);
    }
  };
}

// No live stream yet (the realtime service is restarting): the seat map comes from the API meanwhile, marked
// not live; the stream's own snapshot replaces it when it is back.
async function loadSeatsWithoutStream(eventId) {
  if (state.loadingSeats === eventId) return;
  state.loadingSeats = eventId;
  const path = `/events/${encodeURIComponent(eventId)}`;
  const [seats, event] = await Promise.all([api("GET", `${path}/seats`), api("GET", path)]);
  state.loadingSeats = null;
  if (state.eventId !== eventId || state.lastSeq >= 0 || seats.status !== 200 || event.status !== 200) return;
  const { totalSeats, available, reserved, booked } = event.body;
  applySnapshot({ seq: -1, total: totalSeats, available, reserved, booked, seats: seats.body });
}

function scheduleReopen(eventId) {
  clearTimeout(state.reopenTimer);
  // Jitter, so thousands of browsers that lost the stream together do not come back in the same instant.
  const delay = state.reopenDelay * (0.75 + Math.random() / 2);
  state.reopenDelay = Math.min(state.reopenDelay * 2, 15000);
  state.reopenTimer = setTimeout(() => state.eventId === eventId && openStream(eventId), delay);
}

function closeStream() {
  clearTimeout(state.reopenTimer);
  if (state.stream) state.stream.close();
  state.stream = null;
  setConnection("connecting");
}

function setConnection(mode) {
  const node = $("connection-status");
  if (node.dataset.state === mode) return;
  node.dataset.state = mode;
  node.textContent = { live: "Live", lost: "Connection lost — reconnecting…", connecting: "Connecting…",
    off: "Not connected" }[mode];
}

function onStreamMessage(data) {
  let message;
  try { message = JSON.parse(data); } catch { return; }
  if (!message || (message.eventId && message.eventId !== state.eventId)) return;
  if (message.type === "snapshot") {
    // A snapshot is the whole truth and always applies, even with a lower seq (the realtime service
    // restarted and counts again): the changes after it are compared with its seq.
    applySnapshot(message);
    return;
  }
  if (typeof message.seq === "number") {
    if (message.seq <= state.lastSeq) return;  // already applied (replayed after a reconnect)
    state.lastSeq = message.seq;
  }
  applyChange(message);
}

function applySnapshot(snapshot) {
  state.lastSeq = typeof snapshot.seq === "number" ? snapshot.seq : -1;
  state.total = snapshot.total ?? snapshot.seats.length;
  if (sameLayout(snapshot.seats)) refreshSeats(snapshot.seats);
  else renderMap(snapshot.seats);
  setCounts(snapshot);
  // The last changes before the snapshot: the log of a page just opened (or one that missed some) shows them.
  state.loggedSeq = Math.min(state.loggedSeq, state.lastSeq);  // a numbering that started again
  for (const change of snapshot.recent || []) logChange(change);
}

function applyChange(change) {
  const status = STATUS_OF_CHANGE[change.type];
  if (!status) return;
  if (change.reason === "event_cancelled") onCalledOff(state.eventId);
  // The stream names no bookings: a change to our hold's seats may be our booking ending (or an older
  // change of those seats arriving late); GET /bookings/{id} tells which.
  const mine = state.hold && (change.seatIds || []).some((seatId) => state.hold.seatIds.includes(seatId));
  const deselected = [];
  for (const seatId of change.seatIds || []) {
    const seat = state.seats.get(seatId);
    if (!seat) continue;
    seat.status = status;
    if (status !== "AVAILABLE" && state.selected.delete(seatId)) deselected.push(seatId);
    paintSeat(seat);
  }
  setCounts(change);
  logChange(change);
  if (deselected.length) onSelectedSeatsTaken(deselected);
  if (mine) onOwnSeatsChange(change, state.hold);
}

// Selected seats that someone holds now leave the selection. Our own hold in flight is usually announced
// by the stream before its 201 arrives: those seats are not "taken by someone else". While best available
// is choosing, the seats are not known yet, so whose they are cannot be told.
function onSelectedSeatsTaken(seatIds) {
  const taken = state.finding ? [] : seatIds.filter((seatId) => !state.holding?.includes(seatId));
  if (!taken.length) return updateSelection();
  selectionNote(`${seatList(taken)} ${taken.length > 1 ? "were" : "was"} just taken by someone else.`);
}

// ---------------------------------------------------------------- the seat map

function sameLayout(seats) {
  if (seats.length !== state.order.length) return false;
  for (let i = 0; i < seats.length; i++) if (seats[i].seatId !== state.order[i]) return false;
  return true;
}

// Up to DRAW_SLICE seats are drawn at once; a bigger map is drawn a slice of rows per task, so the page
// keeps answering clicks and stream messages while a stadium is being drawn (a change to a seat not yet
// drawn updates its record; its button is painted from the record when it is made).
function renderMap(seats) {
  const focusedBefore = state.focusSeatId;
  indexSeats(seats);
  const map = $("seat-map");
  map.classList.toggle("compact", seats.length > COMPACT_ABOVE);
  map.replaceChildren();
  offerQuantitiesUpTo(Math.min(MAX_SELECTED, Math.max(1, ...state.rows.map((row) => row.length))));
  state.focusSeatId = state.seats.has(focusedBefore) ? focusedBefore : (state.order[0] ?? null);
  dropUnavailableSelections();
  drawRows(++state.drawId, 0, null);
}

function indexSeats(seats) {
  state.seats.clear();
  state.position.clear();
  state.order = [];
  state.rows = [];
  let rowKey = null;
  for (const seat of seats) {
    const key = `${seat.section}\u0000${seat.row}`;
    if (key !== rowKey) {
      rowKey = key;
      state.rows.push([]);
    }
    const row = state.rows[state.rows.length - 1];
    state.position.set(seat.seatId, [state.rows.length - 1, row.length]);
    row.push(seat.seatId);
    state.order.push(seat.seatId);
    state.seats.set(seat.seatId, seat);
  }
}

// Draws the rows from rowIndex on into fragments, then the next slice in a later task. `section` is the
// section the previous slice ended in (already on the page): rows that continue it are appended to it.
function drawRows(drawId, rowIndex, section) {
  if (drawId !== state.drawId) return;  // a newer snapshot or event replaced the map meanwhile
  const continued = document.createDocumentFragment();
  const fresh = document.createDocumentFragment();
  let current = section;
  let drawn = 0;
  while (rowIndex < state.rows.length && drawn < DRAW_SLICE) {
    const ids = state.rows[rowIndex++];
    const first = state.seats.get(ids[0]);
    if (!current || current.name !== first.section) {
      current = makeSection(first.section);
      fresh.append(current.node);
    }
    (current === section ? continued : current.node).append(drawRow(first, ids));
    drawn += ids.length;
  }
  if (section) section.node.append(continued);
  $("seat-map").append(fresh);
  if (rowIndex < state.rows.length) nextTask(() => drawRows(drawId, rowIndex, current));
}

function drawRow(first, seatIds) {
  const row = makeRow(first.section, first.row);
  row.node.style.setProperty("--row-seats", seatIds.length);
  for (const seatId of seatIds) row.seats.append(makeSeatButton(state.seats.get(seatId)));
  return row.node;
}

function makeSection(name) {
  const node = document.createElement("div");
  node.className = "map-section";
  node.setAttribute("role", "group");
  node.setAttribute("aria-label", `Section ${name}`);
  const heading = document.createElement("h3");
  heading.textContent = name;
  node.append(heading);
  return { name, node };
}

function makeRow(section, row) {
  const node = document.createElement("div");
  node.className = "seat-row";
  node.setAttribute("role", "group");
  node.setAttribute("aria-label", `${section}, row ${row}`);
  const label = document.createElement("span");
  label.className = "row-label";
  label.setAttribute("aria-hidden", "true");
  label.textContent = row;
  const seats = document.createElement("span");
  seats.className = "row-seats";
  node.append(label, seats);
  return { row, node, seats };
}

// Cloning one prepared button and plain setAttribute (not dataset) halves the build of a stadium map.
const seatTemplate = (() => {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "seat";
  button.tabIndex = -1;
  return button;
})();

function makeSeatButton(seat) {
  const button = seatTemplate.cloneNode(false);
  button.setAttribute("data-seat-id", seat.seatId);
  button.title = seat.seatId;
  if (seat.seatId === state.focusSeatId) button.tabIndex = 0;
  seat.el = button;
  paintSeat(seat);
  return button;
}

// Sets a seat's status, selection and label on its button: colour and glyph come from app.css.
function paintSeat(seat) {
  const button = seat.el;
  if (!button) return;
  const selected = state.selected.has(seat.seatId);
  const mine = isMine(seat.seatId);
  button.setAttribute("data-status", seat.status);
  button.setAttribute("aria-pressed", selected ? "true" : "false");
  button.setAttribute("aria-disabled", seat.status === "AVAILABLE" && !salesClosed() ? "false" : "true");
  if (mine || button.classList.contains("mine")) button.classList.toggle("mine", mine);
  button.setAttribute("aria-label", seatLabel(seat, mine));
}

function seatLabel(seat, mine) {
  const status = mine ? "held by you" : seat.status.toLowerCase();
  return `Seat ${seat.seatId}, ${seat.section}, row ${seat.row}, ${seatPrice(seat.price)}, ${status}`;
}

// Formatting the same few prices 50,000 times shows in a profile: keep them.
const priceLabels = new Map();
function seatPrice(price) {
  const key = `${price} ${state.event?.currency}`;
  if (!priceLabels.has(key)) priceLabels.set(key, money(price, state.event?.currency));
  return priceLabels.get(key);
}

// A new snapshot with the same layout: repaint only the seats whose status changed.
function refreshSeats(seats) {
  for (const fresh of seats) {
    const seat = state.seats.get(fresh.seatId);
    if (seat.status === fresh.status) continue;
    seat.status = fresh.status;
    state.selected.delete(fresh.seatId);
    paintSeat(seat);
  }
  updateSelection();
}

function isMine(seatId) {
  return Boolean(state.hold && state.hold.eventId === state.eventId && state.hold.seatIds.includes(seatId));
}

// A called-off event sells nothing: its seats are not selectable and the buttons to hold stay off.
function salesClosed() {
  return state.event?.status === "cancelled";
}

function closeSales() {
  if (state.salesClosed === state.eventId) return;
  state.salesClosed = state.eventId;
  const option = [...$("event-select").options].find((o) => o.value === state.eventId);
  if (option && !option.text.endsWith(" (cancelled)")) option.text += " (cancelled)";
  state.selected.clear();
  repaint([...state.seats.keys()]);
  updateSelection();
}

function repaint(seatIds) {
  for (const seatId of seatIds) {
    const seat = state.seats.get(seatId);
    if (seat) paintSeat(seat);
  }
}

// ---------------------------------------------------------------- keyboard: one tab stop, arrows move

function onMapFocus(e) {
  const seatId = e.target.getAttribute?.("data-seat-id");
  if (seatId) setRovingSeat(seatId);
}

function setRovingSeat(seatId) {
  const previous = state.seats.get(state.focusSeatId);
  if (previous?.el) previous.el.tabIndex = -1;
  state.focusSeatId = seatId;
  const seat = state.seats.get(seatId);
  if (seat?.el) seat.el.tabIndex = 0;
}

function onMapKeydown(e) {
  const seatId = e.target.getAttribute?.("data-seat-id");
  if (!seatId) return;
  const target = neighbour(seatId, e.key, e.ctrlKey || e.metaKey);
  if (target === undefined) return;  // not a movement key: Enter and Space click the button natively
  e.preventDefault();
  const el = state.seats.get(target)?.el;
  if (el && target !== seatId) {
    setRovingSeat(target);
    el.focus();
  }
}

function neighbour(seatId, key, toEnd) {
  const [r, i] = state.position.get(seatId);
  const row = state.rows[r];
  const inRow = (rowIndex, index) => {
    const other = state.rows[rowIndex];
    return other ? other[Math.min(index, other.length - 1)] : seatId;
  };
  switch (key) {
    case "ArrowLeft": return row[i - 1] ?? seatId;
    case "ArrowRight": return row[i + 1] ?? seatId;
    case "ArrowUp": return inRow(r - 1, i);
    case "ArrowDown": return inRow(r + 1, i);
    case "PageUp": return inRow(Math.max(0, r - 10), i);
    case "PageDown": return inRow(Math.min(state.rows.length - 1, r + 10), i);
    case "Home": return toEnd ? state.order[0] : row[0];
    case "End": return toEnd ? state.order[state.order.length - 1] : row[row.length - 1];
    default: return undefined;
  }
}

// ---------------------------------------------------------------- counts and progress

function setCounts(counts) {
  const total = state.total || (counts.available ?? 0) + (counts.reserved ?? 0) + (counts.booked ?? 0);
  state.available = counts.available ?? null;
  for (const name of ["available", "reserved", "booked"]) {
    $(`${name}-count`).textContent = counts[name] == null ? "–" : String(counts[name]);
  }
  $("total-count").textContent = total ? String(total) : "–";
  const sold = total ? (100 * (counts.booked || 0)) / total : 0;
  const held = total ? (100 * (counts.reserved || 0)) / total : 0;
  const progress = $("progress");
  // Two decimals: one seat in a stadium must still move the bar's value.
  progress.setAttribute("aria-valuenow", String(Math.round(sold * 100) / 100));
  const caption = `${formatPercent(sold)} sold · ${formatPercent(held)} on hold`;
  progress.setAttribute("aria-valuetext", caption);
  $("progress-caption").textContent = caption;
  $("progress-booked").style.width = `${sold}%`;
  $("progress-reserved").style.width = `${held}%`;
  showWaitlistBox();
  updateBestButton();
}

function formatPercent(value) {
  return `${value > 0 && value < 1 ? value.toFixed(1) : Math.round(value)}%`;
}

// ---------------------------------------------------------------- activity log

function logChange(change) {
  const seats = change.seatIds || [];
  if (typeof change.seq === "number") {
    if (change.seq <= state.loggedSeq) return;  // in the log already
    state.loggedSeq = change.seq;
  }
  if (!seats.length) return;
  let verb = { "seat.reserved": "reserved", "seat.booked": "booked", "seat.released": "released" }[change.type];
  if (change.type === "seat.released" && RELEASE_REASON[change.reason]) verb += ` (${RELEASE_REASON[change.reason]})`;
  const item = document.createElement("li");
  item.dataset.type = change.type;
  const time = document.createElement("time");
  const at = change.at ? new Date(change.at) : new Date();
  if (change.at) time.dateTime = change.at;
  time.textContent = clockTime(at);
  item.append(time, ` ${seatList(seats)} ${verb}`);
  const log = $("activity-log");
  log.prepend(item);
  while (log.children.length > LOG_LIMIT) log.lastElementChild.remove();
}

function clockTime(date) {
  if (Number.isNaN(date.getTime())) date = new Date();
  return [date.getHours(), date.getMinutes(), date.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

function seatList(seatIds) {
  const shown = seatIds.slice(0, 6).join(", ");
  return seatIds.length > 6 ? `${shown} and ${seatIds.length - 6} more` : shown;
}

// ---------------------------------------------------------------- selecting seats

function onMapClick(e) {
  const button = e.target.closest(".seat");
  if (button) toggleSeat(button.getAttribute("data-seat-id"));
}

function toggleSeat(seatId) {
  const seat = state.seats.get(seatId);
  if (!seat) return;
  if (state.selected.has(seatId)) {
    state.selected.delete(seatId);
  } else if (salesClosed()) {
    selectionNote("This event was cancelled by its organiser: nothing can be booked.");
    return;
  } else if (seat.status !== "AVAILABLE") {
    selectionNote(`Seat ${seatId} is ${isMine(seatId) ? "held by you" : seat.status.toLowerCase()}.`);
    return;
  } else if (state.selected.size >= MAX_SELECTED) {
    selectionNote(`You can hold up to ${MAX_SELECTED} seats at once.`);
    return;
  } else {
    state.selected.add(seatId);
  }
  paintSeat(seat);
  updateSelection();
}

function clearSelection() {
  const seatIds = [...state.selected];
  state.selected.clear();
  repaint(seatIds);
  updateSelection();
}

function dropUnavailableSelections() {
  for (const seatId of [...state.selected]) {
    if (state.seats.get(seatId)?.status !== "AVAILABLE") state.selected.delete(seatId);
  }
  updateSelection();
}

// Seats in display order, whatever order they were clicked in.
function selectedSeats() {
  return [...state.selected].sort((a, b) => indexOf(a) - indexOf(b));
}

function indexOf(seatId) {
  const [r, i] = state.position.get(seatId) || [0, 0];
  return r * 1e6 + i;
}

function updateSelection(note) {
  const seatIds = selectedSeats();
  const n = seatIds.length;
  const hold = $("hold-button");
  hold.textContent = state.holding ? "Holding…" : `Hold ${n} seat${n === 1 ? "" : "s"}`;
  hold.disabled = n === 0 || Boolean(state.holding) || state.finding || Boolean(state.hold) || salesClosed();
  $("clear-button").disabled = n === 0 || Boolean(state.holding);
  // A shown hold is paid for or cancelled first: buttons to hold more would only stand disabled above it.
  hold.hidden = Boolean(state.hold);
  $("clear-button").hidden = Boolean(state.hold) && n === 0;
  $("selection-actions").hidden = hold.hidden && $("clear-button").hidden;
  updateBestButton();
  let text = "No seats selected.";
  if (n) {
    const amount = seatIds.reduce((sum, id) => sum + (state.seats.get(id)?.price || 0), 0);
    text = `Selected: ${seatList(seatIds)} (${n} seat${n === 1 ? "" : "s"}, ${money(amount, state.event?.currency)}).`;
  }
  if (state.hold && n) text += " Pay for or cancel your current hold first.";
  $("selection-summary").textContent = note ? `${note} ${text}` : text;
}

function selectionNote(note) {
  updateSelection(note);
}

// ---------------------------------------------------------------- holding seats: POST /bookings

// A visitor the waiting room admitted arrives with ?event=…&access=…&user=…: the access token goes with every
// POST /bookings as X-Queue-Access, and leaves the address bar (it is the visitor's alone).
function takeQueueAccess() {
  const url = new URL(location.href);
  const access = url.searchParams.get("access");
  const user = url.searchParams.get("user");
  if (user) saveUserId(user);
  if (access) {
    try { sessionStorage.setItem("boxoffice.queueAccess", access); } catch { /* storage blocked */ }
    state.queueAccess = access;
    url.searchParams.delete("access");
    url.searchParams.delete("user");
    history.replaceState(null, "", url);
  } else {
    try { state.queueAccess = sessionStorage.getItem("boxoffice.queueAccess"); } catch { /* storage blocked */ }
  }
}

function initUserId() {
  takeQueueAccess();
  const input = $("user-id");
  let userId = null;
  try { userId = localStorage.getItem("boxoffice.userId"); } catch { /* storage blocked: keep it in the page */ }
  if (!userId) {
    userId = `user_${Math.random().toString(36).slice(2, 6).padEnd(4, "0")}`;
    saveUserId(userId);
  }
  input.value = userId;
  input.addEventListener("change", () => saveUserId(input.value.trim()));
}

function saveUserId(userId) {
  try { localStorage.setItem("boxoffice.userId", userId); } catch { /* storage blocked */ }
}

// ---------------------------------------------------------------- accounts (when BOXOFFICE_AUTH=on)

// The token stays in this tab only; it is short-lived and the page asks again when it runs out.
async function initAccounts() {
  const answer = await api("GET", "/auth/config");
  state.accountsRequired = answer.status === 200 && answer.body.accountsRequired === true;
  if (!state.accountsRequired) return;
  $("user-id-field").hidden = true;
  try { state.account = JSON.parse(sessionStorage.getItem("boxoffice.account") || "null"); } catch { /* blocked */ }
  $("sign-in").addEventListener("submit", (e) => { e.preventDefault(); signIn(); });
  $("register-button").addEventListener("click", register);
  $("sign-out-button").addEventListener("click", signOut);
  setAccount(state.account);
  await confirmEmailFromLink();
}

// The link in the confirmation email opens this page with #verify=<token>: the fragment never reaches a
// server's logs, and the token is sent once, in a POST, then dropped from the address bar.
async function confirmEmailFromLink() {
  const match = /^#verify=([A-Za-z0-9_.-]+)$/.exec(location.hash);
  if (!match) return;
  history.replaceState(null, "", location.pathname + location.search);
  const answer = await api("POST", "/auth/verify", { token: match[1] });
  if (answer.status === 200) {
    if (state.account && state.account.userId === answer.body.userId) setAccount({ ...state.account, emailVerified: true });
    showResult(`Email confirmed: ${answer.body.email} can hold seats now.`, "success");
  } else {
    showResult(`Could not confirm the email: ${answer.body.error || describeFailure(answer)}`, "error");
  }
}

function setAccount(account) {
  state.account = account;
  try { sessionStorage.setItem("boxoffice.account", JSON.stringify(account)); } catch { /* blocked */ }
  $("sign-in").hidden = Boolean(account);
  $("signed-in").hidden = !account;
  $("signed-in-email").textContent = account ? account.email : "";
}

async function signIn() {
  const email = $("sign-in-email").value.trim();
  const password = $("sign-in-password").value;
  if (!$("sign-in").reportValidity()) return;
  const response = await fetch("/auth/token", {
    method: "POST", headers: { Accept: "application/json" },
    body: new URLSearchParams({ username: email, password }),
  }).catch(() => null);
  const body = response ? await response.json().catch(() => ({})) : { error: "The server could not be reached" };
  if (!response || response.status !== 200) {
    showResult(`Sign-in failed: ${body.error || describeFailure({ status: response ? response.status : 0 })}`, "error");
    return;
  }
  $("sign-in-password").value = "";
  setAccount({ email, userId: body.userId, token: body.access_token });
  showResult(`Signed in as ${email}.`, "success");
}

// The token is revoked on the server too, so that a copy of it left anywhere stops working.
async function signOut() {
  const token = state.account?.token;
  setAccount(null);
  if (token) {
    await fetch("/auth/logout", { method: "POST", headers: { Accept: "application/json", Authorization: `Bearer ${token}` } })
      .catch(() => null);
  }
  showResult("Signed out.", "success");
}

async function register() {
  const email = $("sign-in-email").value.trim();
  const password = $("sign-in-password").value;
  if (!$("sign-in").reportValidity()) return;
  const answer = await api("POST", "/auth/register", { email, password });
  if (answer.status !== 201) {
    showResult(`Could not create the account: ${answer.body.error || describeFailure(answer)}`, "error");
    return;
  }
  await signIn();
  if (answer.body.emailVerified === false) {
    showResult(`Account created. We sent a link to ${email}: open it to confirm the address, then hold seats.`, "success");
  }
}

async function holdSelected() {
  const seatIds = selectedSeats();
  if (!seatIds.length || state.holding || state.finding || state.hold) return;
  const buyer = whoBooks();
  if (!buyer) return;
  const eventId = state.eventId;
  state.holding = seatIds;
  updateSelection();
  showResult(`Holding ${seatList(seatIds)}…`, "info");
  const answer = await requestHold({ eventId, seatIds, ...buyer });
  state.holding = null;
  onHoldAnswer(answer, seatIds, eventId);
}

// Who books: nothing with accounts on (the token tells), else the user id typed in. Null after telling
// the buyer what is missing.
function whoBooks() {
  if (state.accountsRequired) {
    if (state.account) return {};
    showResult("Sign in (or create an account) to hold seats.", "error");
    $("sign-in-email").focus();
    return null;
  }
  const userId = $("user-id").value.trim();
  if ($("user-id").checkValidity() && userId) return { userId };
  showResult("Enter a user id: letters, digits and _ . @ + - (starting with a letter or digit).", "error");
  $("user-id").focus();
  return null;
}

// POST /bookings, waiting out the queue (202) when the gateway puts the request in line.
async function requestHold(body) {
  let answer = await api("POST", "/bookings", body, { "Idempotency-Key": holdKey(body) });
  if (answer.status === 202 && answer.body.statusUrl) {
    showResult(answer.body.error || "Your request is queued and will be processed in order…", "info");
    answer = await pollQueuedHold(answer.body.statusUrl);
  }
  if (answer.status !== 0) state.holdAttempt = null;
  return answer;
}

// The same selection retried after a network error reuses its key: the server answers it once.
function holdKey(body) {
  const signature = JSON.stringify(body);
  if (state.holdAttempt?.signature !== signature) state.holdAttempt = { signature, key: newId("hold") };
  return state.holdAttempt.key;
}

async function pollQueuedHold(statusUrl) {
  const deadline = Date.now() + POLL_GIVE_UP_MS;
  while (Date.now() < deadline) {
    await sleep(POLL_MS);
    const answer = await api("GET", statusUrl);
    if (answer.status === 200 && answer.body.status === "processed") {
      const result = answer.body.result || {};
      return { status: answer.body.httpStatus || (result.success ? 201 : 409), body: result };
    }
    if (answer.status >= 400 && answer.status !== 503) return answer;
  }
  return { status: 0, body: { error: "Still queued after five minutes; check your bookings later" } };
}

function onHoldAnswer(answer, seatIds, eventId) {
  if (answer.status === 201 && answer.body.bookingId) {
    // Best available may choose seats that were selected by hand: they are held now, not selected.
    for (const seatId of [...seatIds, ...(answer.body.seatIds || [])]) state.selected.delete(seatId);
    startHold({ ...answer.body, eventId });
    return;
  }
  if (answer.status === 409) {
    for (const seatId of answer.body.seatIds || []) state.selected.delete(seatId);
    repaint(seatIds);
  }
  updateSelection();
  // Called off while this page was open, with no seat of it held to tell the stream: the refusal tells.
  if (answer.body.code === "event_cancelled") onCalledOff(eventId);
  if (answer.status === 403 && ["not_admitted", "admission_expired"].includes(answer.body.code)) {
    showQueueNeeded(eventId, answer.body.code === "admission_expired");
    return;
  }
  showResult(answer.body.error || `Could not hold the seats (${describeFailure(answer)}).`, "error");
}

// Behind a waiting room a hold needs the buyer's own admission: the way in is the queue page, as a link.
function showQueueNeeded(eventId, expired) {
  const link = document.createElement("a");
  link.href = `/events/${encodeURIComponent(eventId)}/queue`;
  link.textContent = "Join the waiting room";
  showResult(expired ? "Your admission has run out. " : "This sale lets buyers in through a waiting room. ", "error");
  $("booking-result").append(link, ".");
}

// ---------------------------------------------------------------- best available: the service chooses

function initBestAvailable() {
  const quantity = $("best-quantity");
  offerQuantities(quantity, MAX_SELECTED);
  quantity.value = "2";
  quantity.addEventListener("change", updateBestButton);
  $("best-available").addEventListener("submit", (e) => { e.preventDefault(); holdBestAvailable(); });
}

// Seats together come from one row: no more can be asked of best available or the waiting list than the
// event's longest row has (the service would refuse it).
function offerQuantitiesUpTo(most) {
  for (const id of ["best-quantity", "waitlist-quantity"]) {
    const quantity = $(id);
    const wanted = Number(quantity.value) || 2;
    offerQuantities(quantity, most);
    quantity.value = String(Math.min(wanted, most));
  }
  updateBestButton();
}

function offerQuantities(select, most) {
  select.replaceChildren(...Array.from({ length: most }, (_, i) => new Option(String(i + 1), String(i + 1))));
}

function showBestAvailable(event) {
  const options = (event?.priceCategories || [])
    .map((c) => new Option(`${c.name} — ${money(c.price, event.currency)}`, c.categoryId));
  $("best-category").replaceChildren(new Option("Any", ""), ...options);
  updateBestButton();
}

function updateBestButton() {
  const n = Number($("best-quantity").value);
  const button = $("best-button");
  button.textContent = state.finding ? "Finding…" : `Find ${n} best seat${n === 1 ? "" : "s"}`;
  button.disabled = !state.event || Boolean(state.holding) || state.finding || Boolean(state.hold) || salesClosed()
    || state.available === 0;  // sold out: the waiting list is what is left
}

async function holdBestAvailable() {
  if (!state.event || state.holding || state.finding || state.hold) return;
  const buyer = whoBooks();
  if (!buyer) return;
  const eventId = state.eventId;
  const quantity = Number($("best-quantity").value);
  const categoryId = $("best-category").value;
  const body = { eventId, quantity, ...(categoryId ? { categoryId } : {}), ...buyer };
  state.finding = true;
  updateSelection();
  showResult(`Finding the best ${quantity} seat${quantity === 1 ? "" : "s"} together…`, "info");
  const answer = await requestHold(body);
  state.finding = false;
  onHoldAnswer(answer, [], eventId);
}

// ---------------------------------------------------------------- the waiting list of a sold-out event

// The entry id is kept per event in this tab, so a reload still follows it.
function waitlistKey(eventId) {
  return `boxoffice.waitlist.${eventId}`;
}

function initWaitlist() {
  const quantity = $("waitlist-quantity");
  offerQuantities(quantity, MAX_SELECTED);
  quantity.value = "2";
  $("waitlist").addEventListener("submit", (e) => { e.preventDefault(); joinWaitlist(); });
  $("waitlist-leave").addEventListener("click", leaveWaitlist);
}

function restoreWaitlist(eventId) {
  let waitlistId = null;
  try { waitlistId = sessionStorage.getItem(waitlistKey(eventId)); } catch { /* storage blocked */ }
  if (!waitlistId) return;
  setWaitlist({ waitlistId, eventId, status: "loading" });
  refreshWaitlist();
}

// The box shows while nothing is free, and whenever the visitor has an entry for this event.
function showWaitlistBox() {
  $("waitlist").hidden = !state.event || (state.available !== 0 && !state.waitlist);
}

async function joinWaitlist() {
  if (!state.event || state.joining) return;
  const buyer = whoBooks();
  if (!buyer) return;
  const eventId = state.eventId;
  const quantity = Number($("waitlist-quantity").value);
  state.joining = true;
  $("waitlist-button").disabled = true;
  let answer = await api("POST", `/events/${encodeURIComponent(eventId)}/waitlist`, { quantity, ...buyer });
  if (answer.status === 202 && answer.body.statusUrl) {
    showResult(answer.body.error || "Your request is queued and will be processed in order…", "info");
    answer = await pollQueuedHold(answer.body.statusUrl);  // the join's outcome, as the booking service decides it
  }
  state.joining = false;
  $("waitlist-button").disabled = false;
  if (state.eventId !== eventId) return;
  const { status, body } = answer;
  if ((status === 200 || status === 201) && body.waitlistId) {
    setWaitlist({ ...body, eventId });
    showResult(status === 200 ? "You are already on the waiting list." : "You joined the waiting list.", "info");
  } else {
    showResult(body.error || `Could not join the waiting list (${describeFailure(answer)}).`, "error");
    return;
  }
  try { sessionStorage.setItem(waitlistKey(eventId), body.waitlistId); } catch { /* storage blocked */ }
  pollWaitlist();
}

async function leaveWaitlist() {
  const entry = state.waitlist;
  if (!entry || entry.leaving) return;
  entry.leaving = true;
  showWaitlistStatus();
  const answer = await api("DELETE", `/waitlist/${encodeURIComponent(entry.waitlistId)}`);
  entry.leaving = false;
  if (state.waitlist !== entry) return;
  if (answer.status === 200) {
    updateWaitlist(answer.body);
    // Leaving declines an unpaid offer: its hold is gone even if the stream has not said so yet.
    if (state.hold && state.hold.bookingId === entry.bookingId) finishHold("cancelled");
  } else if (answer.status === 202) {
    showWaitlistStatus();  // queued: the polls tell when it is done
  } else {
    showResult(answer.body.error || `Could not leave the waiting list (${describeFailure(answer)}).`, "error");
    showWaitlistStatus();
    refreshWaitlist();
  }
}

function pollWaitlist() {
  clearTimeout(state.waitlistTimer);
  if (state.waitlist && !state.waitlist.ended) state.waitlistTimer = setTimeout(refreshWaitlist, WAITLIST_POLL_MS);
}

async function refreshWaitlist() {
  clearTimeout(state.waitlistTimer);
  const entry = state.waitlist;
  if (!entry || entry.ended) return;
  // Signed out with accounts on: the entry cannot be read until the buyer signs in again.
  if (state.accountsRequired && !state.account) return pollWaitlist();
  const answer = await api("GET", `/waitlist/${encodeURIComponent(entry.waitlistId)}`);
  if (state.waitlist !== entry) return;  // left, joined again or another event meanwhile
  if (answer.status === 200) {
    updateWaitlist(answer.body);
    if (entry.status === "offered") await showOffer(entry);
  } else if (answer.status === 404 || answer.status === 403) {
    // Not there (any more), never processed, or not this buyer's: nothing to follow.
    showResult(answer.body.error || `Waiting list entry ${entry.waitlistId} is gone.`, "error");
    forgetWaitlist(entry);
    setWaitlist(null);
    return;
  }
  pollWaitlist();  // a network error: tried again
}

// An offer is a pending booking: it goes to the hold panel like one's own hold.
async function showOffer(entry) {
  if (!entry.bookingId || entry.offerEnded || state.hold?.bookingId === entry.bookingId) return;
  const answer = await api("GET", `/bookings/${encodeURIComponent(entry.bookingId)}`);
  if (state.waitlist !== entry || entry.offerEnded || state.hold?.bookingId === entry.bookingId) return;
  if (answer.status !== 200) {
    showResult(answer.body.error || `Could not load the offered booking (${describeFailure(answer)}).`, "error");
    return;
  }
  const booking = answer.body;
  if (booking.status === "pending" && !state.hold) startHold({ ...booking, fromWaitlist: true });
  // Another hold in the panel: the offer waits for it to end. An offer that ended unpaid: the entry's next
  // update says expired or left.
  updateWaitlist({ bookingStatus: booking.status, booked: booking.status === "confirmed" });
}

// The hold panel ended the offer's booking (paid, cancelled, run out): never show that hold again.
function onOfferFinished(bookingId, outcome) {
  const entry = state.waitlist;
  if (!entry || entry.bookingId !== bookingId) return;
  entry.offerEnded = true;
  if (outcome === "confirmed") updateWaitlist({ booked: true, bookingStatus: "confirmed" });
  else refreshWaitlist();  // the entry says expired or left now
}

function setWaitlist(entry) {
  state.waitlist = entry;
  if (!entry) clearTimeout(state.waitlistTimer);
  updateWaitlist({});
}

function updateWaitlist(fields) {
  const entry = state.waitlist;
  if (entry) {
    Object.assign(entry, fields);
    entry.ended = entry.status === "expired" || entry.status === "left" || Boolean(entry.booked);
    if (entry.ended) forgetWaitlist(entry);  // its sentence stays on screen; a reload starts afresh
  }
  showWaitlistStatus();
  showWaitlistBox();
}

function forgetWaitlist(entry) {
  try { sessionStorage.removeItem(waitlistKey(entry.eventId)); } catch { /* storage blocked */ }
}

function showWaitlistStatus() {
  const entry = state.waitlist;
  const open = Boolean(entry && !entry.ended);
  // An offer in the hold panel is declined with its Cancel button: one way, not two.
  const leavable = open && (entry.status === "waiting" ||
    (entry.status === "offered" && !entry.offerEnded && state.hold?.bookingId !== entry.bookingId));
  $("waitlist-join").hidden = open;
  $("waitlist-leave").hidden = !leavable;
  $("waitlist-leave").disabled = Boolean(entry?.leaving);
  const text = entry ? waitlistSentence(entry) : "";
  const node = $("waitlist-status");
  if (node.textContent !== text) node.textContent = text;  // a poll with no news is not announced again
}

function waitlistSentence(entry) {
  if (entry.booked) return `Your seats from the waiting list are booked (booking ${entry.bookingId}).`;
  const seats = entry.quantity ? ` for ${entry.quantity} seat${entry.quantity === 1 ? "" : "s"}` : "";
  switch (entry.status) {
    case "loading": return "Checking your place on the waiting list…";
    case "waiting": return `You are number ${entry.position} in line${seats}.`;
    case "offered":
      if (state.hold?.bookingId === entry.bookingId) return "Seats came free for you: pay for them below in time.";
      if (entry.bookingStatus === "pending") {
        return `Seats came free for you (booking ${entry.bookingId}): pay for or cancel your current hold first.`;
      }
      return "Seats came free for you.";
    case "expired": return "Your offer from the waiting list ended unpaid; the seats went to the next in line.";
    case "left": return "You left the waiting list.";
    default: return "";
  }
}

// ---------------------------------------------------------------- the hold panel: pay, cancel, expire

function startHold(booking) {
  state.hold = {
    bookingId: booking.bookingId,
    eventId: booking.eventId,
    seatIds: booking.seatIds,
    amount: booking.amount,
    currency: booking.currency,
    expiresAt: Date.parse(booking.expiresAt),
    paymentId: newId("pay"),   // one per booking: a retried payment is charged once
    paying: false,
    warned: false,
  };
  repaint(booking.seatIds);
  updateSelection();
  $("hold-booking-id").textContent = booking.bookingId;
  $("hold-seats").textContent = seatList(booking.seatIds);
  $("hold-amount").textContent = money(booking.amount, booking.currency);
  $("hold-note").hidden = !booking.fromWaitlist;
  setPanelBusy(false);
  $("hold-panel").hidden = false;
  tickCountdown();
  clearInterval(state.countdownTimer);
  state.countdownTimer = setInterval(tickCountdown, 250);
  const from = booking.fromWaitlist ? " from the waiting list" : "";
  showResult(`Seats ${seatList(booking.seatIds)}${from} held for you. Pay before the time runs out.`, "info");
  keepFocus($("card-number"));
}

// A control that hides or disables itself (Hold, Pay, Cancel) would send the keyboard back to the top of the
// page: the focus goes to the next step instead.
function keepFocus(next) {
  const active = document.activeElement;
  if (!active || active === document.body || active.disabled || active.closest("[hidden]")) next?.focus();
}

function tickCountdown() {
  const hold = state.hold;
  if (!hold) return;
  const left = Math.max(0, hold.expiresAt - (Date.now() + state.clockSkew));
  const seconds = Math.ceil(left / 1000);
  $("countdown").textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
  $("countdown").classList.toggle("urgent", seconds <= 60);
  if (seconds <= 60 && seconds > 0 && !hold.warned) {
    hold.warned = true;
    showResult("One minute left to pay.", "info");
  }
  // A payment in flight at the deadline decides the outcome on the server: wait for its answer.
  if (left === 0 && !hold.paying) finishHold("expired");
}

async function pay() {
  const hold = state.hold;
  if (!hold || hold.paying) return;
  const card = $("card-number").value.replace(/[\s-]/g, "");
  if (!/^[0-9]{12,19}$/.test(card)) {
    showResult("Enter a card number of 12 to 19 digits.", "error");
    $("card-number").focus();
    return;
  }
  hold.paying = true;
  setPanelBusy(true);
  showResult("Paying…", "info");
  const url = `/bookings/${encodeURIComponent(hold.bookingId)}/confirm`;
  let answer = await api("PUT", url, { paymentId: hold.paymentId, amount: hold.amount, card });
  if (answer.status === 202) {
    showResult("Payment is processing…", "info");
    answer = await pollBooking(hold.bookingId);
  }
  hold.paying = false;
  onBookingAnswer(hold, answer, "pay");
}

async function cancelHold() {
  const hold = state.hold;
  if (!hold || hold.paying) return;
  setPanelBusy(true);
  const answer = await api("DELETE", `/bookings/${encodeURIComponent(hold.bookingId)}`);
  onBookingAnswer(hold, answer, "cancel");
}

// Polls GET /bookings/{id} until the payment has an answer; returns it shaped like the confirm answer.
async function pollBooking(bookingId) {
  const deadline = Date.now() + POLL_GIVE_UP_MS;
  while (Date.now() < deadline && state.hold?.bookingId === bookingId) {
    await sleep(POLL_MS);
    const answer = await api("GET", `/bookings/${encodeURIComponent(bookingId)}`);
    const status = answer.body.status;
    if (answer.status === 200 && status && status !== "pending") {
      const code = { confirmed: 200, payment_failed: 402 }[status] || 409;
      return { status: code, body: { ...answer.body, code: `booking_${status}` } };
    }
  }
  return { status: 0, body: { error: "No answer from the payment yet" } };
}

function onBookingAnswer(hold, answer, action) {
  if (state.hold !== hold) return;  // the live stream already told the outcome
  const { status, body } = answer;
  if (status === 200) {
    finishHold(action === "pay" || body.status === "confirmed" ? "confirmed" : "cancelled");
  } else if (status === 402) {
    finishHold("declined", body.error);
  } else if (status === 409 && outcomeOfCode(body.code)) {
    finishHold(outcomeOfCode(body.code), body.error);
  } else {
    // A wrong amount, a network error…: the hold is still there, so the buttons come back.
    setPanelBusy(false);
    const retry = status === 0 ? " Try again: the same payment is never charged twice." : "";
    showResult(`${body.error || `Request failed (${describeFailure(answer)})`}.${retry}`, "error");
    if (Date.now() + state.clockSkew >= hold.expiresAt) finishHold("expired");
  }
}

function outcomeOfCode(code) {
  return { booking_expired: "expired", booking_cancelled: "cancelled", booking_already_confirmed: "confirmed",
    booking_confirmed: "confirmed", booking_payment_failed: "declined" }[code];
}

// The live stream can tell the outcome of our own booking first (e.g. the expiry from the server). A
// release while paying is the payment's answer to tell (with the decline's reason).
async function onOwnSeatsChange(change, hold) {
  if (change.type === "seat.reserved" || (change.type === "seat.released" && hold.paying)) return;
  const answer = await api("GET", `/bookings/${encodeURIComponent(hold.bookingId)}`);
  if (state.hold !== hold || answer.status !== 200) return;
  const outcome = OUTCOME_OF_STATUS[answer.body.status];
  if (outcome === "confirmed" || (outcome && !hold.paying)) finishHold(outcome);
}

function finishHold(outcome, detail) {
  const hold = state.hold;
  if (!hold) return;
  state.hold = null;
  clearInterval(state.countdownTimer);
  $("hold-panel").hidden = true;
  repaint(hold.seatIds);
  updateSelection();
  const seats = seatList(hold.seatIds);
  const messages = {
    confirmed: [`Booking ${hold.bookingId} confirmed: ${seats} ${hold.seatIds.length > 1 ? "are" : "is"} yours.`, "success"],
    // The server's words already say that the seats were released.
    declined: [detail ? `Payment declined: ${detail.replace(/\.$/, "")}.` : "Payment declined — seats released.",
      "error"],
    expired: ["Hold expired — seats released.", "error"],
    cancelled: [`Booking ${hold.bookingId} cancelled — seats released.`, "info"],
  };
  const [text, kind] = messages[outcome] || messages.cancelled;
  showResult(text, kind);
  onOfferFinished(hold.bookingId, outcome);
  keepFocus(state.seats.get(state.focusSeatId)?.el);
}

function setPanelBusy(busy) {
  $("pay-button").disabled = busy;
  $("cancel-button").disabled = busy;
  $("pay-button").textContent = busy && state.hold?.paying ? "Paying…" : "Pay";
}

function showResult(text, kind) {
  const node = $("booking-result");
  node.textContent = text;
  node.dataset.kind = kind;
}

// ---------------------------------------------------------------- helpers

async function api(method, url, body, headers = {}) {
  try {
    const options = { method, headers: { Accept: "application/json", ...headers } };
    if (state.account?.token) options.headers.Authorization = `Bearer ${state.account.token}`;
    if (state.queueAccess && method === "POST" && url === "/bookings") options.headers["X-Queue-Access"] = state.queueAccess;
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(url, options);
    noteServerClock(response);
    if (response.status === 401 && state.account) {
      setAccount(null);
      showResult("Your sign-in has ended (it ran out or was revoked); please sign in again.", "error");
    }
    let data = {};
    try { data = await response.json(); } catch { /* an empty or non-JSON body */ }
    return { status: response.status, body: data && typeof data === "object" ? data : {} };
  } catch {
    return { status: 0, body: { error: "The server could not be reached" } };
  }
}

// The countdown runs on the server's clock: expiresAt is the server's time. The Date header has whole
// seconds, so a skew under two seconds is taken as none.
function noteServerClock(response) {
  const date = Date.parse(response.headers.get("Date") || "");
  if (Number.isNaN(date)) return;
  const skew = date - Date.now();
  state.clockSkew = Math.abs(skew) > 2000 ? skew : 0;
}

function describeFailure(answer) {
  return answer.status === 0 ? "network error" : `HTTP ${answer.status}`;
}

function money(amount, currency) {
  const value = Number(amount || 0).toFixed(2);
  return currency ? `${value} ${currency}` : value;
}

function newId(prefix) {
  const random = globalThis.crypto?.randomUUID ? crypto.randomUUID()
    : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
  return `${prefix}_${random}`;
}

// Yields to the browser for one task; unlike setTimeout it is not slowed down in a background tab.
function nextTask(fn) {
  const channel = new MessageChannel();
  channel.port1.onmessage = () => fn();
  channel.port2.postMessage(null);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
