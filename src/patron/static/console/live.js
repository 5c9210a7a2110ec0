// The Live page: lines from the account's event stream, newest first; pause, filter by type and by
// identity. Every value goes into the page as text (textContent), never as HTML.
"use strict";
(function () {
  const list = document.getElementById("lines");
  if (!list) return;
  const status = document.getElementById("live-status");
  const pause = document.getElementById("pause");
  const kind = document.getElementById("kind");
  const identity = document.getElementById("identity");
  const KEPT = 500; // the most lines the page keeps
  let paused = false;
  let held = []; // lines that arrived while paused
  let source = null;

  function say(text) { status.textContent = text; }

  function visible(li) {
    const k = kind.value;
    const wanted = identity.value.trim().toLowerCase();
    return (!k || li.dataset.kind === k) && (!wanted || li.dataset.identity.toLowerCase().includes(wanted));
  }

  function show(line) {
    const li = document.createElement("li");
    li.className = "line " + line.kind;
    li.dataset.kind = line.kind;
    li.dataset.identity = line.identity || "";
    const time = document.createElement("time");
    time.dateTime = line.at;
    time.textContent = line.at ? new Date(line.at).toLocaleTimeString() : "";
    const what = document.createElement("span");
    what.className = "kind";
    what.textContent = line.kind;
    const link = document.createElement("a");
    link.href = line.url;
    link.textContent = line.text;
    li.append(time, " ", what, " ", link);
    if (line.identity) {
      const who = document.createElement("code");
      who.textContent = line.identity;
      li.append(" ", who);
    }
    if (line.profile) {
      const profile = document.createElement("a");
      profile.href = line.profile;
      profile.textContent = "profile";
      li.append(" ", profile);
    }
    li.hidden = !visible(li);
    list.prepend(li);
    while (list.children.length > KEPT) list.lastElementChild.remove();
  }

  function connect() {
    source = new EventSource(list.dataset.source);
    source.addEventListener("open", () => say(paused ? "Paused" : "Live"));
    source.addEventListener("line", (event) => {
      const line = JSON.parse(event.data);
      if (paused) {
        held.push(line);
        say(`Paused: ${held.length} new line${held.length === 1 ? "" : "s"} held back`);
      } else {
        show(line);
      }
    });
    source.addEventListener("replaced", () => {
      source.close();
      say("This page stopped: another page of your session is live. Reload to watch here.");
    });
    source.onerror = () => {
      if (source.readyState === EventSource.CONNECTING) say("Reconnecting…");
      else if (source.readyState === EventSource.CLOSED) say("Disconnected. Reload to reconnect.");
    };
  }

  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(paused));
    if (!paused) {
      held.forEach(show);
      held = [];
      say("Live");
    } else {
      say("Paused");
    }
  });

  function refilter() { for (const li of list.children) li.hidden = !visible(li); }
  kind.addEventListener("change", refilter);
  identity.addEventListener("input", refilter);
  document.getElementById("live-controls").addEventListener("submit", (event) => event.preventDefault());
  connect();
})();
