// Images: a pull with a progress bar per layer, and the run dialog.
(() => {
  "use strict";
  const form = document.getElementById("pull-form");
  const area = document.getElementById("pull-progress");
  const layers = new Map();
  function layer(id) {
    if (layers.has(id)) return layers.get(id);
    const row = document.createElement("div");
    row.className = "layer";
    const name = document.createElement("code"); name.textContent = id;
    const bar = document.createElement("progress"); bar.max = 1; bar.value = 0;
    bar.setAttribute("aria-label", `Layer ${id}`);
    const text = document.createElement("span");
    row.append(name, bar, text);
    area.append(row);
    const entry = {bar, text};
    layers.set(id, entry);
    return entry;
  }
  async function pull(reference) {
    area.replaceChildren(); layers.clear();
    const summary = document.createElement("p"); summary.setAttribute("role", "status");
    summary.textContent = `Pulling ${reference}…`;
    area.append(summary);
    const body = new FormData(); body.set("reference", reference);
    const answer = await fetch("/images/pull", {method: "POST", body, headers: {"X-CSRF-Token": window.moorCsrf}});
    if (!answer.ok) { window.moorAlert(await answer.text()); summary.textContent = "Pull failed"; return; }
    const reader = answer.body.getReader(); const decoder = new TextDecoder();
    let pending = "", failed = false;
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      pending += decoder.decode(value, {stream: true});
      const lines = pending.split("\n"); pending = lines.pop();
      for (const line of lines) {
        if (!line.trim()) continue;
        const d = JSON.parse(line);
        if (d.error) { failed = true; window.moorAlert(d.error); summary.textContent = `Pull failed: ${d.error}`; continue; }
        if (d.id && d.progressDetail !== undefined && d.id.length === 12) {
          const entry = layer(d.id);
          const p = d.progressDetail || {};
          if (p.total) { entry.bar.max = p.total; entry.bar.value = p.current || 0; }
          if (/complete|exists/i.test(d.status)) { entry.bar.max = 1; entry.bar.value = 1; }
          entry.text.textContent = d.status;
        } else if (d.status) {
          summary.textContent = d.status;
        }
      }
    }
    if (!failed) summary.dataset.done = "1";
    htmx.trigger(document.body, "refresh-image");
  }
  form.addEventListener("submit", (e) => { e.preventDefault(); pull(document.getElementById("pull-reference").value.trim()); });
  const wanted = new URLSearchParams(window.location.search).get("pull");
  if (wanted) document.getElementById("pull-reference").value = wanted;

  const dialog = document.getElementById("run-dialog");
  document.body.addEventListener("click", (e) => {
    const run = e.target.closest("[data-run]");
    if (run) { document.getElementById("run-image").value = run.dataset.run; dialog.showModal(); }
    if (e.target.closest("[data-close]")) dialog.close();
  });
})();
