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
  const SVG = "http://www.w3.org/2000/svg";
  function spark(cell, values, text, label) {
    if (!cell.firstChild) {  // rows come without their graphs: most containers never have one
      const svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("viewBox", "0 0 60 16");
      svg.setAttribute("role", "img");
      svg.setAttribute("aria-label", label);
      svg.append(document.createElementNS(SVG, "polyline"));
      cell.append(svg, document.createElement("span"));
    }
    cell.firstChild.firstChild.setAttribute("points", points(values, 60, 16));
    cell.lastChild.textContent = text;
  }
  function drawSparks(row) {
    const h = history.get(row.dataset.id);
    if (!h) return;
    const name = row.querySelector("a.name").textContent;
    spark(row.querySelector("td.cpu"), h.cpu, `${h.cpu[h.cpu.length - 1].toFixed(1)}%`, `CPU of ${name}`);
    spark(row.querySelector("td.mem"), h.mem, human(h.mem[h.mem.length - 1]), `Memory of ${name}`);
  }

  // ---------------------------------------------------------------- container actions
  // One listener serves every container's buttons (a row's, a container page's): a button
  // names its action, the nearest data-id the container.
  document.addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-act]");
    if (!button) return;
    const act = button.dataset.act;
    if (act === "remove" && !window.confirm("Remove this container and its anonymous volumes?")) return;
    const holder = button.closest("[data-id]");
    const url = act === "remove" ? `/containers/${holder.dataset.id}` : `/containers/${holder.dataset.id}/${act}`;
    try {
      const answer = await fetch(url, {method: act === "remove" ? "DELETE" : "POST", headers: {"X-CSRF-Token": csrf}});
      if (!answer.ok) alertText((await answer.text()) || answer.statusText);
      else if (act === "remove" && holder.id === "container-page") window.location.assign("/containers");
    } catch {
      alertText("The dashboard did not answer.");
    }
  });

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
    drawSparks(row);
  }
  // A long containers list comes with its first screenful of rows, the rest once that is
  // painted (a frame's callbacks run before its paint, a timeout set there after it).
  // A row a live event drew meanwhile is newer than the same row here: it stays.
  async function fetchRest(table) {
    const answer = await fetch(table.dataset.rest);
    if (!answer.ok) { alertText((await answer.text()) || answer.statusText); return; }
    const holder = document.createElement("template");
    holder.innerHTML = `<table>${await answer.text()}</table>`;
    for (const body of holder.content.querySelectorAll("tbody")) {
      const group = [...table.tBodies].find((b) => b.dataset.group === body.dataset.group);
      if (!group) { table.append(body); continue; }
      group.append(...[...body.querySelectorAll("tr[data-id]")].filter(
        (row) => !document.getElementById(row.id)));
    }
  }
  const long = document.querySelector("#containers[data-rest]");
  if (long) {
    document.addEventListener("DOMContentLoaded", () => requestAnimationFrame(
      () => setTimeout(() => fetchRest(long).catch(() => alertText("The dashboard did not answer.")))));
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
