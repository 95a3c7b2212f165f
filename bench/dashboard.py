"""`moor dashboard` with 200 containers, in front of moord and of the reference dockerd.

    .venv/bin/python bench/dashboard.py [--containers 200] [--running 20] [--events 15]

The same dashboard serves each engine (it speaks only the Engine API), so the figures
side by side show what the engine behind it costs. With N containers (a few running,
the rest created), in headless Chromium at 1280x800:
- first meaningful paint of the containers view from a warm server (the paint timing
  API's first-contentful-paint: the page is rendered on the server, rows included),
  median of 10 loads, and the server's own answer time for the page;
- an event's delay: a container started through the API, from the engine's timeNano to
  the row shown in the page (median and worst);
- the dashboard's RSS at rest (after the page closed and 3 s idle) and with a page open.
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
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests"), os.path.join(ROOT, "tests", "engine"),
                os.path.join(ROOT, "tests", "registry"), os.path.join(ROOT, "tests", "dashboard")]

from dashkit import CHROMIUM, api, start_dashboard  # noqa: E402
from enginekit import start_daemon, stop_daemon  # noqa: E402
from peers import dockerd_available, start_dockerd, stop_dockerd, stop_process  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from moorage.devkit import busybox  # noqa: E402


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024  # type: ignore[union-attr]


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


def measure(engine_host: str, base: str, browser: Any, ids: list[str],
            events: int) -> dict[str, float]:
    server = start_dashboard(engine_host, base)
    found: dict[str, float] = {}
    try:
        client = api(engine_host)
        page_url = f"{server.url}/containers"
        import urllib.request

        answers = []
        for _ in range(11):  # the first warms the server (templates, connections)
            start = time.perf_counter()
            with urllib.request.urlopen(page_url) as answer:
                answer.read()
            answers.append(time.perf_counter() - start)
        found["server answer (ms)"] = statistics.median(answers[1:]) * 1000
        paints = []
        for _ in range(10):
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            page = context.new_page()
            page.goto(page_url)
            page.wait_for_selector(f"#c-{ids[-1]}", state="attached")
            paints.append(page.evaluate(
                "performance.getEntriesByName('first-contentful-paint')[0].startTime"))
            context.close()
        found["first paint (ms)"] = statistics.median(paints)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(page_url)
        page.wait_for_selector('body[data-live="open"]', state="attached")
        delays = []
        stopped = ids[-events:]
        for container in stopped:
            client.post(f"/containers/{container}/start")
            page.wait_for_selector(f'#c-{container}[data-state="running"]', state="attached")
            shown = page.evaluate(
                f"window.moorEvents.filter(e => e.id === '{container}' && "
                "e.state === 'running')[0]")
            delays.append((shown["shown"] - shown["emitted"]) * 1000)
        found["event shown, median (ms)"] = statistics.median(delays)
        found["event shown, worst (ms)"] = max(delays)
        time.sleep(2)
        found["RSS, a page open (MiB)"] = rss_mib(server.process.pid)
        context.close()
        for container in stopped:
            client.post(f"/containers/{container}/kill")
        client.close()
        time.sleep(3)
        found["RSS at rest (MiB)"] = rss_mib(server.process.pid)
    finally:
        stop_process(server.process)
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=200)
    parser.add_argument("--running", type=int, default=20)
    parser.add_argument("--events", type=int, default=15)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as base, \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        rootfs = os.path.join(base, "rootfs")
        busybox.build_rootfs(rootfs)
        tar = subprocess.run(["tar", "-C", rootfs, "-c", "."], capture_output=True,
                             check=True).stdout
        engines = [("moord", start_daemon, stop_daemon)]
        if dockerd_available():
            engines.append(("dockerd", start_dockerd, stop_dockerd))
        for name, start, stop in engines:
            home = os.path.join(base, name)
            os.mkdir(home)
            daemon = start(home)
            try:
                daemon.docker("import", "-", "busybox:latest", input=tar, check=True)
                ids = populate(daemon.host, args.containers, args.running)
                results[name] = measure(daemon.host, home, browser, ids, args.events)
                client = api(daemon.host)
                for container in ids:
                    client.delete(f"/containers/{container}", {"force": True})
                client.close()
            finally:
                stop(daemon)
        browser.close()
    load = os.getloadavg()
    print(f"dashboard with {args.containers} containers ({args.running} running); "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    names = list(results)
    print(f"{'':30}" + "".join(f"{n:>12}" for n in names) +
          ("       ratio" if len(names) == 2 else ""))
    for key in results["moord"]:
        values = [results[n][key] for n in names]
        ratio = f"{values[0] / values[1]:12.2f}" if len(values) == 2 and values[1] else ""
        print(f"{key:30}" + "".join(f"{v:12.1f}" for v in values) + ratio)


if __name__ == "__main__":
    main()
