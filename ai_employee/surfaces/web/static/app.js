// ai-employee's page: live updates over server-sent events. No build step, no framework, and
// nothing from the internet. Everything it inserts is HTML the server drew (and escaped).
"use strict";

(function () {
  const body = document.body;
  const page = body.dataset.page;
  const task = body.dataset.task || "";
  const ref = body.dataset.ref || "";
  let offset = parseInt(body.dataset.offset || "0", 10) || 0;
  let source = null;

  // What a person is typing in a form the new HTML also has (a review comment while the task
  // changes) is kept, and so is the focus: a live redraw never takes their words.
  function replaceKeepingInput(target, html) {
    const kept = [];
    const fields = "form[id] textarea, form[id] input:not([type]), form[id] input[type=text]";
    target.querySelectorAll(fields).forEach((el) => {
      if (el.value) kept.push([el.form.id, el.name, el.value, el === document.activeElement]);
    });
    target.innerHTML = html;
    kept.forEach(([formId, name, value, focused]) => {
      const form = document.getElementById(formId);
      const el = form && target.contains(form) ? form.elements.namedItem(name) : null;
      if (!el || el.value) return;
      el.value = value;
      if (focused) el.focus();
    });
  }

  function refetch(url, targetId, then) {
    const target = document.getElementById(targetId);
    if (!target) return;
    if (target.dataset.busy === "1") { target.dataset.again = "1"; return; }
    target.dataset.busy = "1";
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => {
        replaceKeepingInput(target, html);
        target.dataset.drawn = String((parseInt(target.dataset.drawn || "0", 10) || 0) + 1);
        if (then) then();
      })
      .catch(() => {})
      .finally(() => {
        target.dataset.busy = "0";
        if (target.dataset.again === "1") { target.dataset.again = "0"; refetch(url, targetId, then); }
      });
  }

  // A finished task's transcript grows no more: it says so instead of "live".
  const FINISHED = ["done", "failed", "cancelled", "rejected", "refused", "in_review"];
  function liveWords() {
    const status = document.getElementById("task-status");
    return status && FINISHED.includes(status.textContent.trim()) ? "· finished" : "· live";
  }

  function setBadge(count) {
    const badge = document.getElementById("badge");
    if (!badge) return;
    const n = parseInt(count, 10) || 0;
    badge.textContent = n + (n === 1 ? " needs you" : " need you");
    badge.classList.toggle("quiet", n === 0);
    document.title = document.title.replace(/^\(\d+\) /, "");
    if (n > 0) document.title = "(" + n + ") " + document.title;
  }

  function refreshStatus() {
    fetch("/status", { credentials: "same-origin" })
      .then((r) => r.json())
      .then((s) => {
        const el = document.getElementById("service");
        if (el) {
          let words = s.words;
          if (s.last_event) words += " · last: " + s.last_event;
          el.textContent = words;
          el.classList.toggle("up", s.running);
          el.classList.toggle("down", !s.running);
        }
        setBadge(s.needs_you);
      })
      .catch(() => {});
  }

  function addTurns(html) {
    const list = document.getElementById("turns");
    if (!list) return;
    const empty = document.getElementById("no-turns");
    if (empty) empty.remove();
    const near = window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
    list.insertAdjacentHTML("beforeend", html);
    if (near) window.scrollTo(0, document.body.scrollHeight);
    if (html.indexOf("t-commit") >= 0) redrawTask();  // a round committed: its diff changed
  }

  function setLive(words) {
    const el = document.getElementById("live-state");
    if (el) el.textContent = words;
  }

  function redrawBoard() {
    if (page === "board") refetch("/board" + window.location.search, "board-live");
  }

  function redrawTask() {
    if (page === "task") {
      refetch("/task/" + encodeURIComponent(ref) + "?fragment=1", "task-live", () => setLive(liveWords()));
    }
  }

  function connect() {
    let url = "/events";
    if (task) url += "?task=" + encodeURIComponent(task) + "&offset=" + offset;
    source = new EventSource(url);
    // What changed between the page's drawing (or the last stream) and this stream's start
    // was not heard: draw the changing parts once more as it opens.
    source.addEventListener("open", () => { setLive(liveWords()); redrawBoard(); redrawTask(); refreshStatus(); });
    source.addEventListener("board", (e) => { setBadge(e.data); redrawBoard(); });
    source.addEventListener("task", redrawTask);
    source.addEventListener("turns", (e) => {
      const turns = JSON.parse(e.data);
      offset = turns.offset;
      addTurns(turns.html);
    });
    source.addEventListener("status", refreshStatus);
    source.addEventListener("reload", () => window.location.reload());
    source.addEventListener("bye", () => { setLive("· the page's server stopped"); again(); });
    source.onerror = () => { setLive("· reconnecting"); again(); };
  }

  function again() {
    if (source) source.close();
    source = null;
    window.setTimeout(() => { if (!source) connect(); }, 2000);
  }

  // How long a run has run, counted on by the page between redraws (as view.span words it).
  function span(seconds) {
    seconds = Math.max(0, seconds);
    for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]]) {
      if (seconds >= size) return Math.floor(seconds / size) + unit;
    }
    return "now";
  }
  window.setInterval(() => {
    const now = Date.now() / 1000;
    document.querySelectorAll("[data-started]").forEach((el) => {
      const started = parseFloat(el.dataset.started);
      if (!isNaN(started)) el.textContent = el.dataset.words.replace("{}", span(now - started));
    });
  }, 1000);

  // A question before an act that ends a task: Esc goes back, as its link does.
  if (page === "confirm") {
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape") window.location.href = body.dataset.back || "/";
    });
  }

  // The board's filters apply as soon as a choice changes.
  const filters = document.getElementById("filters");
  if (filters) {
    filters.querySelectorAll("select").forEach((s) => s.addEventListener("change", () => filters.submit()));
  }
  if (window.EventSource) connect();
})();
