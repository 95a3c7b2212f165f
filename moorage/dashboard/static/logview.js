// A log pane fed by a server-sent event stream of {ts, text, stream, prefix} lines: text nodes
// only (never HTML), follow, timestamps, search.
"use strict";
window.moorLogView = (pre, url, controls = {}) => {
  const MAX_LINES = 5000;
  let query = "";
  function matches(div) { return !query || div.textContent.toLowerCase().includes(query); }
  const source = new EventSource(url);
  source.addEventListener("line", (e) => {
    const d = JSON.parse(e.data);
    const div = document.createElement("div");
    div.className = d.stream;
    const ts = document.createElement("span");
    ts.className = "ts"; ts.textContent = d.ts;
    div.append(ts);
    if (d.prefix) {
      const prefix = document.createElement("span");
      prefix.className = "prefix"; prefix.textContent = `${d.prefix} |`;
      div.append(prefix);
    }
    div.append(document.createTextNode(d.text));
    div.hidden = !matches(div);
    pre.append(div);
    while (pre.childElementCount > MAX_LINES) pre.firstElementChild.remove();
    if (!controls.follow || controls.follow.checked) pre.scrollTop = pre.scrollHeight;
  });
  source.addEventListener("failure", (e) => { window.moorAlert(JSON.parse(e.data).message); source.close(); });
  if (controls.timestamps) controls.timestamps.addEventListener("change", () => pre.classList.toggle("show-ts", controls.timestamps.checked));
  if (controls.search) controls.search.addEventListener("input", () => {
    query = controls.search.value.toLowerCase();
    for (const div of pre.children) div.hidden = !matches(div);
  });
  return source;
};
