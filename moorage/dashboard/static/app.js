// The dashboard's shared behaviour: CSRF header, engine errors, the live stream, sparklines.
(() => {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  window.moorCsrf = csrf;
  const banner = document.getElementById("banner");
  let streamDown = false, engineDown = false;
  function showBanner() {
    banner.hidden = !(streamDown || engineDown);
    banner.textContent = streamDown ? "Lost connection to the dashboard: reconnecting…"
                                    : "Lost connection to the engine: reconnecting…";
  }
  function alertText(message) {
    const box = document.createElement("div");
    box.className = "alert";
    box.setAttribute("role", "alert");
    box.textContent = message;
    const close = document.createElement("button");
    close.textContent = "Dismiss";
    close.addEventListener("click", () => box.remove());
    box.append(" ", close);
    document.getElementById("alerts").append(box);
  }
  window.moorAlert = alertText;
  document.body.addEventListener("htmx:configRequest", (e) => { e.detail.headers["X-CSRF-Token"] = csrf; });
  document.body.addEventListener("htmx:responseError", (e) => alertText(e.detail.xhr.responseText || e.detail.xhr.statusText));
  document.body.addEventListener("htmx:sendError", () => alertText("The dashboard did not answer."));

  // ---------------------------------------------------------------- sparklines
  const history = new Map();  // container id → {cpu: [], mem: []}
  const POINTS = 30;
  function points(values, width, height) {
    const max = Math.max(1, ...values);
    return values.map((v, i) => `${(i * width / (POINTS - 1)).toFixed(1)},${(height - v / max * (height - 1)).toFixed(1)}`).join(" ");
  }
  window.moorPoints = points;
  function human(n) {
    const units = ["B", "kB", "MB", "GB"]; let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return `${n.toPrecision(3)}${units[i]}`;
  }
  window.moorHuman = human;
  function drawSparks(row) {
    const h = history.get(row.dataset.id);
    if (!h) return;
    row.querySelector("svg.cpu polyline").setAttribute("points", points(h.cpu, 60, 16));
    row.querySelector("svg.mem polyline").setAttribute("points", points(h.mem, 60, 16));
    row.querySelector(".cpu-text").textContent = `${h.cpu[h.cpu.length - 1].toFixed(1)}%`;
    row.querySelector(".mem-text").textContent = human(h.mem[h.mem.length - 1]);
  }

  // ---------------------------------------------------------------- live updates
  function upsertRow(d) {
    const table = document.getElementById("containers");
    if (!table) return;
    const holder = document.createElement("template");
    holder.innerHTML = `<table><tbody>${d.html}</tbody></table>`;  // rendered (escaped) by the server
    const row = holder.content.querySelector("tr");
    const old = document.getElementById(`c-${d.id}`);
    if (old && old.dataset.project === d.project) {
      old.replaceWith(row);
    } else {
      if (old) old.remove();
      const group = [...table.tBodies].find((b) => b.dataset.group === d.project);
      if (!group) { htmx.trigger(document.body, "refresh-all"); return; }
      group.append(row);
    }
    // A row pushed to every page names the published address as the server knows it;
    // "every address" means the one this browser reached the dashboard by.
    for (const link of row.querySelectorAll(".ports a")) {
      if (link.hostname === "0.0.0.0" || link.hostname === "[::]") link.hostname = window.location.hostname;
    }
    htmx.process(row);
    drawSparks(row);
  }
  const source = new EventSource("/live");
  window.moorEvents = [];
  source.addEventListener("open", () => { streamDown = false; showBanner(); });
  source.addEventListener("error", () => { streamDown = true; showBanner(); });
  source.addEventListener("engine", (e) => {
    const d = JSON.parse(e.data);
    document.body.dataset.live = "open";
    if (engineDown && d.up) htmx.trigger(document.body, "refresh-all");
    engineDown = !d.up; showBanner();
  });
  source.addEventListener("container", (e) => {
    const d = JSON.parse(e.data);
    upsertRow(d);
    window.moorEvents.push({id: d.id, state: d.state, emitted: d.emitted, shown: Date.now() / 1000});
    document.body.dispatchEvent(new CustomEvent("moor:container", {detail: d}));
    htmx.trigger(document.body, "refresh-container");
  });
  source.addEventListener("gone", (e) => {
    const d = JSON.parse(e.data);
    const old = document.getElementById(`c-${d.id}`);
    if (old) old.remove();
    history.delete(d.id);
    document.body.dispatchEvent(new CustomEvent("moor:gone", {detail: d}));
  });
  source.addEventListener("stats", (e) => {
    const d = JSON.parse(e.data);
    for (const [id, figures] of Object.entries(d)) {
      const h = history.get(id) || {cpu: Array(POINTS).fill(0), mem: Array(POINTS).fill(0)};
      h.cpu.push(figures.cpu); h.cpu.shift(); h.mem.push(figures.mem); h.mem.shift();
      history.set(id, h);
      const row = document.getElementById(`c-${id}`);
      if (row) drawSparks(row);
    }
  });
  source.addEventListener("refresh", (e) => htmx.trigger(document.body, `refresh-${JSON.parse(e.data).type}`));
})();
