// One container's page: live state and actions, logs, resource graphs, the terminal.
(() => {
  "use strict";
  const page = document.getElementById("container-page");
  const id = page.dataset.id;
  const heading = page.querySelector("h1 .state");
  document.body.addEventListener("moor:container", (e) => {
    const d = e.detail;
    if (d.id !== id) return;
    heading.textContent = d.state; heading.className = `state state-${d.state}`;
    page.dataset.state = d.state;
    const holder = document.createElement("template");
    holder.innerHTML = `<table><tbody>${d.html}</tbody></table>`;
    const toolbar = page.querySelector(".toolbar");
    toolbar.replaceChildren(...holder.content.querySelector("td.actions").childNodes);
    if (d.state === "running") startStats();
  });
  document.body.addEventListener("moor:gone", (e) => { if (e.detail.id === id) window.location.assign("/containers"); });

  window.moorLogView(document.getElementById("log"), `/containers/${id}/logs`, {
    follow: document.getElementById("log-follow"),
    timestamps: document.getElementById("log-timestamps"),
    search: document.getElementById("log-search"),
  });

  // ---------------------------------------------------------------- graphs
  const N = 40;
  const zeros = () => [Array(N).fill(0), Array(N).fill(0)];
  const series = {cpu: zeros(), mem: zeros(), net: zeros(), io: zeros()};
  let last = null, stats = null;
  function push(key, a, b, text) {
    const [sa, sb] = series[key];
    sa.push(a); sb.push(b || 0);
    if (sa.length > N) { sa.shift(); sb.shift(); }
    const max = Math.max(1, ...sa, ...sb);
    const svg = document.getElementById(`g-${key}`);
    const draw = (values) => values.map((v, i) => `${(i * 120 / (N - 1)).toFixed(1)},${(40 - v / max * 39).toFixed(1)}`).join(" ");
    svg.querySelector("polyline.a").setAttribute("points", draw(sa));
    svg.querySelector("polyline.b").setAttribute("points", draw(sb));
    document.getElementById(`g-${key}-text`).textContent = text;
  }
  function startStats() {
    if (stats) return;
    stats = new EventSource(`/containers/${id}/stats`);
    stats.addEventListener("stats", (e) => {
      const d = JSON.parse(e.data);
      const h = window.moorHuman;
      push("cpu", d.cpu, 0, `${d.cpu.toFixed(1)}%`);
      push("mem", d.mem, 0, h(d.mem));
      if (last) {
        push("net", d.rx - last.rx, d.tx - last.tx, `${h(d.rx)} / ${h(d.tx)}`);
        push("io", d.read - last.read, d.write - last.write, `${h(d.read)} / ${h(d.write)}`);
      }
      last = d;
    });
    stats.addEventListener("failure", () => { stats.close(); stats = null; });
  }
  if (page.dataset.state === "running") startStats();

  // ---------------------------------------------------------------- terminal
  let term = null;
  const status = document.getElementById("term-status");
  const termBox = document.getElementById("term");
  // xterm.js (~290 kB) only once a terminal is asked for, not with every container's page
  let xterm = null;
  function loadXterm() {
    xterm = xterm || Promise.all(termBox.dataset.scripts.split(" ").map((src) => new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src; script.async = false;
      script.addEventListener("load", resolve);
      script.addEventListener("error", () => { xterm = null; reject(new Error(`could not load ${src}`)); });
      document.head.append(script);
    })));
    return xterm;
  }
  async function openTerminal() {
    if (term) { term.focus(); return; }
    status.textContent = "Connecting…";
    try { await loadXterm(); } catch (err) { window.moorAlert(err.message); status.textContent = ""; return; }
    if (term) return;  // a second click while the scripts came
    term = new Terminal({convertEol: false, cursorBlink: true, fontSize: 13});
    const fit = new FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(termBox);
    fit.fit();
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${window.location.host}/containers/${id}/terminal?csrf=${encodeURIComponent(window.moorCsrf)}`);
    ws.binaryType = "arraybuffer";
    const send = (frame) => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame)); };
    ws.addEventListener("open", () => { status.textContent = "Connected"; send({type: "resize", cols: term.cols, rows: term.rows}); term.focus(); });
    ws.addEventListener("message", (e) => {
      if (typeof e.data === "string") { const d = JSON.parse(e.data); if (d.error) window.moorAlert(d.error); return; }
      term.write(new Uint8Array(e.data));
    });
    ws.addEventListener("close", () => { status.textContent = "Disconnected"; term.dispose(); term = null; });
    term.onData((data) => send({type: "input", data}));
    term.onResize(({cols, rows}) => send({type: "resize", cols, rows}));
    window.addEventListener("resize", () => { if (term) fit.fit(); });
  }
  document.getElementById("term-open").addEventListener("click", openTerminal);
  if (window.location.hash === "#terminal" && page.dataset.state === "running") openTerminal();
})();
