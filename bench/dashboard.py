"""`moor dashboard` with 200 containers, in front of moord and of the reference dockerd.

    .venv/bin/python bench/dashboard.py [--containers 200] [--running 20] [--events 15]
                                        [--loads 10] [--baseline REF]

The same dashboard serves each engine (it speaks only the Engine API), so the figures
side by side show what the engine behind it costs. `--baseline REF` also runs the
dashboard as it was at git REF (its `moorage` package from `git archive`) against the
same engines, page loads interleaved with this one's, so that a change is measured A/B
in one run on a loaded machine. With N containers (a few running, the rest created), in
headless Chromium at 1280x800:
- first meaningful paint of the containers view from a warm server: the first frame in
  which the rows are in the page and something has been painted (the later of the paint
  timing API's first-contentful-paint and the first animation frame that finds the
  first row), median of --loads loads, each in a new browser profile (nothing cached)
  and again on a revisit (the browser's cache warm); and the frame that finds the last
  row (the page may send a screenful first and the rest after its paint); beside them,
  the first paint of the near-empty volumes view: the floor any page has at this load;
- the dashboard's CPU time per containers view (user + system, from /proc: what the
  page costs the server, independent of the machine's load);
- an event's delay: a container started through the API, from the engine's timeNano to
  the row shown in the page (median and worst);
- the dashboard's RSS: started and never visited; with the containers view open; at
  rest (3 s after the last page closed) once every view has been visited (containers,
  a running container with its logs and graphs, images, volumes, networks, compose,
  registries, system).
Targets (issue 15): paint <= 300 ms, event <= 200 ms, RSS at rest <= 40 MiB.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests"), os.path.join(ROOT, "tests", "engine"),
                os.path.join(ROOT, "tests", "registry"), os.path.join(ROOT, "tests", "dashboard")]

from dashkit import CHROMIUM, Dashboard, api, start_dashboard  # noqa: E402
from enginekit import start_daemon, stop_daemon  # noqa: E402
from peers import dockerd_available, start_dockerd, stop_dockerd, stop_process  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from moorage.devkit import busybox  # noqa: E402

VIEWPORT = {"width": 1280, "height": 800}
# Runs in the page before its own scripts: notes the first animation frame that finds a
# row, and the first that finds the last one (frames run just before the browser paints).
ROWS_FRAME = """(() => {
  const look = () => {
    if (!window.moorRowsFrame && document.querySelector("#containers tr[data-id]"))
      window.moorRowsFrame = performance.now();
    if (document.getElementById("c-LAST")) window.moorAllRowsFrame = performance.now();
    else requestAnimationFrame(look);
  };
  requestAnimationFrame(look);
})();"""
FCP = "() => performance.getEntriesByName('first-contentful-paint')[0].startTime"
PAINT = f"() => Math.max(window.moorRowsFrame || Infinity, ({FCP})())"
VIEW_TIMEOUT = 60
VIEWS = ("/images", "/volumes", "/networks", "/compose", "/registries", "/system")


def progress(what: str) -> None:
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} {what}\n")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024  # type: ignore[union-attr]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def populate(host: str, count: int, running: int) -> list[str]:
    client = api(host)
    ids = []
    for i in range(count):
        body = {"Image": "busybox:latest", "Cmd": ["sleep", "3600"],
                "HostConfig": {"NetworkMode": "none"}, "StopTimeout": 1,
                "Labels": {"com.docker.compose.project": f"p{i % 5}"} if i % 2 else {}}
        ids.append(client.post("/containers/create", {"name": f"bench-{i}"}, body)["Id"])
    for container in ids[:running]:
        client.post(f"/containers/{container}/start")
    client.close()
    return ids


def baseline_tree(ref: str, base: str) -> str:
    """REF's `moorage` package in a folder of its own, to put first on PYTHONPATH."""
    tree = os.path.join(base, "baseline")
    os.mkdir(tree)
    archive = subprocess.run(["git", "-C", ROOT, "archive", ref, "moorage"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
    return tree


def paint(browser: Any, server: Dashboard, last_row: str,
          context: Any = None) -> tuple[float, float]:
    """The first meaningful paint, and when the last row was in the page (ms)."""
    own = context is None
    context = context or browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.add_init_script(ROWS_FRAME.replace("LAST", last_row))
    page.goto(f"{server.url}/containers")
    page.wait_for_selector(f"#c-{last_row}", state="attached")
    page.wait_for_function("window.moorAllRowsFrame !== undefined")
    found = page.evaluate(PAINT), page.evaluate("window.moorAllRowsFrame")
    page.close()
    if own:
        context.close()
    return found


def empty_paint(browser: Any, server: Dashboard) -> float:
    """A view with almost nothing in it: what any page costs the browser at this load."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(f"{server.url}/volumes")
    while not page.evaluate("() => performance.getEntriesByName('first-contentful-paint').length"):
        time.sleep(0.02)
    found = page.evaluate(FCP)
    context.close()
    return found


def measure(engine_host: str, servers: dict[str, Dashboard], browser: Any, ids: list[str],
            events: int, loads: int) -> dict[str, dict[str, float]]:
    """Each figure for each server; page loads alternate between the servers."""
    found: dict[str, dict[str, float]] = {name: {} for name in servers}
    for name, server in servers.items():
        time.sleep(1)
        found[name]["RSS, started (MiB)"] = rss_mib(server.process.pid)
        for _ in range(2):  # warms the server (templates, connections)
            with urllib.request.urlopen(f"{server.url}/containers") as answer:
                answer.read()
    cold: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
    warm: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
    cpu: dict[str, float] = dict.fromkeys(servers, 0.0)
    revisits = {name: browser.new_context(viewport=VIEWPORT) for name in servers}
    for name, server in servers.items():
        paint(browser, server, ids[-1], revisits[name])  # fills the browser's cache
    floor: dict[str, list[float]] = {name: [] for name in servers}
    for _ in range(loads):
        for name, server in servers.items():
            before = cpu_seconds(server.process.pid)
            cold[name].append(paint(browser, server, ids[-1]))
            cpu[name] += cpu_seconds(server.process.pid) - before
            warm[name].append(paint(browser, server, ids[-1], revisits[name]))
            floor[name].append(empty_paint(browser, server))
    for name in servers:
        revisits[name].close()
        found[name]["first paint (ms)"] = statistics.median(p for p, _ in cold[name])
        found[name]["all rows in the page (ms)"] = statistics.median(a for _, a in cold[name])
        found[name]["first paint, revisit (ms)"] = statistics.median(p for p, _ in warm[name])
        found[name]["first paint of /volumes (ms)"] = statistics.median(floor[name])
        found[name]["server CPU per view (ms)"] = cpu[name] / loads * 1000

    progress("events")
    client = api(engine_host)
    contexts = {name: browser.new_context(viewport=VIEWPORT) for name in servers}
    pages = {name: contexts[name].new_page() for name in servers}
    for name, page in pages.items():
        page.goto(f"{servers[name].url}/containers")
        page.wait_for_selector('body[data-live="open"]', state="attached")
    delays: dict[str, list[float]] = {name: [] for name in servers}
    started = ids[-events:]
    for container in started:
        client.post(f"/containers/{container}/start")
        for name, page in pages.items():
            page.wait_for_selector(f'#c-{container}[data-state="running"]', state="attached")
            shown = page.evaluate(
                f"window.moorEvents.filter(e => e.id === '{container}' && "
                "e.state === 'running')[0]")
            delays[name].append((shown["shown"] - shown["emitted"]) * 1000)
    time.sleep(2)
    for name, page in pages.items():
        found[name]["event shown, median (ms)"] = statistics.median(delays[name])
        found[name]["event shown, worst (ms)"] = max(delays[name])
        found[name]["RSS, containers view open (MiB)"] = rss_mib(servers[name].process.pid)
        visit_every_view(page, name, servers[name], ids[0])
        contexts[name].close()
    for container in started:
        client.post(f"/containers/{container}/kill")
    client.close()
    time.sleep(3)
    for name, server in servers.items():
        found[name]["RSS at rest, every view seen (MiB)"] = rss_mib(server.process.pid)
    return found


def visit_every_view(page: Any, name: str, server: Dashboard, running: str) -> None:
    progress(f"{name}: every view")
    page.goto(f"{server.url}/containers/{running}")
    page.wait_for_selector("#g-cpu-text:not(:empty)", state="attached", timeout=10000)
    for view in VIEWS:
        started = time.monotonic()
        try:
            page.goto(f"{server.url}{view}", timeout=VIEW_TIMEOUT * 1000)
        except PlaywrightTimeout:  # seen with dockerd's /system/df of 200 containers
            progress(f"{view}: no page after {VIEW_TIMEOUT} s")
            continue
        progress(f"{view}: {time.monotonic() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=200)
    parser.add_argument("--running", type=int, default=20)
    parser.add_argument("--events", type=int, default=15)
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--no-dockerd", action="store_true", help="moord only")
    parser.add_argument("--baseline", metavar="REF",
                        help="also measure the dashboard of this git revision")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as base, \
            sync_playwright() as playwright:
        baseline = baseline_tree(args.baseline, base) if args.baseline else None
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        rootfs = os.path.join(base, "rootfs")
        busybox.build_rootfs(rootfs)
        tar = subprocess.run(["tar", "-C", rootfs, "-c", "."], capture_output=True,
                             check=True).stdout
        engines = [("moord", start_daemon, stop_daemon)]
        if dockerd_available() and not args.no_dockerd:
            engines.append(("dockerd", start_dockerd, stop_dockerd))
        for engine, start, stop in engines:
            home = os.path.join(base, engine)
            os.mkdir(home)
            daemon = start(home)
            servers: dict[str, Dashboard] = {}
            progress(f"{engine}: started")
            try:
                daemon.docker("import", "-", "busybox:latest", input=tar, check=True)
                ids = populate(daemon.host, args.containers, args.running)
                servers[engine] = start_dashboard(daemon.host, home)
                if baseline:
                    servers[f"{engine} {args.baseline}"] = start_dashboard(
                        daemon.host, home, pythonpath=baseline)
                results.update(measure(daemon.host, servers, browser, ids, args.events,
                                       args.loads))
                client = api(daemon.host)
                for container in ids:
                    client.delete(f"/containers/{container}", {"force": True})
                client.close()
            finally:
                for server in servers.values():
                    stop_process(server.process)
                stop(daemon)
        browser.close()
    report(results, args)


def report(results: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    load = os.getloadavg()
    print(f"dashboard with {args.containers} containers ({args.running} running); "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    names = list(results)
    ratios = [("moord", "dockerd")] if "dockerd" in results else []
    if args.baseline:
        ratios.insert(0, ("moord", f"moord {args.baseline}"))
    width = max(16, *(len(n) + 2 for n in names))
    print(f"{'':36}" + "".join(f"{n:>{width}}" for n in names) +
          "".join(f"{f'{a}/{b}':>{width + 2}}" for a, b in ratios))
    for key in results[names[0]]:
        values = [results[n][key] for n in names]
        shown = [results[a][key] / results[b][key] if results[b][key] else float("nan")
                 for a, b in ratios]
        print(f"{key:36}" + "".join(f"{v:{width}.1f}" for v in values) +
              "".join(f"{r:{width + 2}.2f}" for r in shown))


if __name__ == "__main__":
    main()
