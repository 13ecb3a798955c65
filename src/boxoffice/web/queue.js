// The waiting room page (CONTRACT §8.1): joins the event's queue once per visitor, follows the place live
// (Server-Sent Events), and moves the visitor to the seat map with the access token once admitted.
"use strict";

const $ = (id) => document.getElementById(id);
const eventId = decodeURIComponent(location.pathname.split("/")[2] || "");
let firstAhead = null;

function visitorId() {
  let id = null;
  try { id = localStorage.getItem("boxoffice.userId"); } catch { /* storage blocked */ }
  if (!id) {
    id = `user_${Math.random().toString(36).slice(2, 6).padEnd(4, "0")}`;
    try { localStorage.setItem("boxoffice.userId", id); } catch { /* storage blocked */ }
  }
  return id;
}

function wait(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${seconds} s`;
  return `${Math.ceil(seconds / 60)} min`;
}

// The estimate counts down between the server's updates (which come when the place moves), a second at a time.
let estimate = null;  // {seconds, at}: the last estimate and when it came
setInterval(() => {
  if (!estimate) return;
  $("queue-wait").textContent = wait(Math.max(0, Math.round(estimate.seconds - (Date.now() - estimate.at) / 1000)));
}, 1000);

function show(status) {
  const admitted = status.status === "admitted";
  $("queue-position").textContent = status.position ?? "drawn at the opening";
  $("queue-ahead").textContent = status.ahead ?? "–";
  // Before the draw, the wait is the time until the opening, and says so.
  $("queue-wait-label").textContent = status.position === null && !admitted ? "Sale opens in" : "Estimated wait";
  $("queue-wait").textContent = admitted ? "0 s" : wait(status.estimatedWaitSeconds);
  const counting = !admitted && status.status === "waiting" && typeof status.estimatedWaitSeconds === "number";
  estimate = counting ? { seconds: status.estimatedWaitSeconds, at: Date.now() } : null;
  if (status.ahead !== null && status.ahead !== undefined && firstAhead === null) firstAhead = status.ahead + 1;
  const done = admitted ? 100 : firstAhead ? Math.round(100 * (1 - (status.ahead + 1) / firstAhead)) : 0;
  $("queue-progress-bar").style.width = `${Math.max(0, Math.min(100, done))}%`;
  $("queue-progress").setAttribute("aria-valuenow", String(done));
  if (status.status === "waiting") {
    const opensAt = new Date(status.opensAt).toLocaleTimeString(undefined, { timeZoneName: "short" });
    $("queue-state").textContent = status.position === null
      ? `The sale opens at ${opensAt}; your place is drawn then.` : "You are in the queue.";
  } else if (admitted) {
    $("queue-state").textContent = "It is your turn: taking you to the seats…";
    const target = new URL("/", location.origin);
    target.searchParams.set("event", eventId);
    target.searchParams.set("access", status.accessToken);
    target.searchParams.set("user", visitorId());
    location.assign(target);
  } else {
    $("queue-state").textContent = "Your turn has passed: your admission has expired.";
  }
}

function fail(message) {
  $("queue-error").textContent = message;
  $("queue-error").hidden = false;
}

async function post(path, body) {
  const response = await fetch(`/events/${encodeURIComponent(eventId)}/${path}`, {
    method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
  return { response, answer: await response.json() };
}

// A waiting room that asks for a proof of work (off by default) says so on the first join: the page gets a
// challenge for this visitor, solves it, and joins again with the solution.
async function proved() {
  const { response, answer } = await post("queue/challenge", { visitorId: visitorId() });
  if (!response.ok) throw new Error(answer.error || "Could not get a challenge");
  $("queue-state").textContent = "Checking this browser before it joins…";
  const solution = await solveProofOfWork(answer.challenge, answer.bits);
  return { challenge: answer.challenge, solution };
}

// The heading names the event as its page does (the id until its name is known, or if it cannot be read).
async function nameEvent() {
  $("queue-event").textContent = `Waiting room — ${eventId}`;
  try {
    const response = await fetch(`/events/${encodeURIComponent(eventId)}`, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const event = await response.json();
    $("queue-event").textContent = `Waiting room — ${event.name}`;
    document.title = `Waiting room — ${event.name}`;
  } catch { /* the id stays */ }
}

async function join(proof) {
  let answer;
  try {
    let response;
    ({ response, answer } = await post("queue", { visitorId: visitorId(), ...(proof ? { proof } : {}) }));
    if (response.status === 403 && answer.code === "proof_of_work_required" && !proof) {
      join(await proved());
      return;
    }
    if (!response.ok) {
      fail(answer.error || "Could not join the queue");
      // Refused for good (no such event, no waiting room, called off): no longer "joining".
      if (response.status === 404 || response.status === 409) notInTheQueue(response.status === 404);
      if (response.status === 429 || response.status >= 500) setTimeout(join, 3000);
      if (answer.code === "proof_of_work_invalid") setTimeout(async () => join(await proved()), 1000);
      return;
    }
  } catch {
    fail("The server could not be reached; retrying…");
    setTimeout(join, 3000);
    return;
  }
  follow(answer.statusUrl);
}

// Refused for good: nothing to wait for here, so the page says where to go instead (an event without a waiting
// room sells on its seat map; a called-off one shows so there; an unknown one is not among the events).
function notInTheQueue(unknownEvent) {
  $("queue-state").textContent = "Not in the queue.";
  $("queue-note").hidden = true;
  const link = $("queue-elsewhere-link");
  if (unknownEvent) {
    link.href = "/";
    link.textContent = "See the events on sale";
  } else {
    const target = new URL("/", location.origin);
    target.searchParams.set("event", eventId);
    link.href = `${target.pathname}${target.search}`;
    link.textContent = "Go to the event's seat map";
  }
  $("queue-elsewhere").hidden = false;
}

function follow(statusUrl) {
  const source = new EventSource(`${statusUrl}/live`);
  source.onmessage = (message) => {
    $("queue-error").hidden = true;
    const status = JSON.parse(message.data);
    show(status);
    if (status.status !== "waiting") source.close();
  };
  source.onerror = () => {
    // A join still on its way through Kafka is not found yet: the browser's EventSource retries by itself,
    // except after an HTTP error, when it closes; then follow again shortly.
    if (source.readyState === EventSource.CLOSED) setTimeout(() => follow(statusUrl), 2000);
  };
}

nameEvent();
join();
