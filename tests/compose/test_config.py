"""The file model and `moor compose config`, against docker-compose 1.29 where they agree.

No engine: `config` reads files only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from composekit import DOCKER_COMPOSE, MOOR


def compose(cwd: Path, *args: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    return subprocess.run([MOOR, "compose", *args], cwd=cwd, capture_output=True, text=True,
                          env={**clean, **(env or {})}, timeout=30)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def config(cwd: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    result = compose(cwd, *args, "config", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    loaded: dict = json.loads(result.stdout)
    return loaded


def test_interpolation_forms(tmp_path: Path) -> None:
    write(tmp_path / "compose.yaml", """
        services:
          s:
            image: busybox
            environment:
              SET: ${SET}
              DEFAULT_UNSET: ${UNSET:-d1}
              DEFAULT_EMPTY_COLON: ${EMPTY:-d2}
              DEFAULT_EMPTY_DASH: ${EMPTY-d3}
              ALT: ${SET:+alt}
              ALT_UNSET: ${UNSET:+alt}
              NESTED: ${UNSET:-${SET}-x}
              DOLLAR: $$HOME
              BARE: $SET
        """)
    env = config(tmp_path, env={"SET": "v", "EMPTY": ""})["services"]["s"]["environment"]
    assert env == {"SET": "v", "DEFAULT_UNSET": "d1", "DEFAULT_EMPTY_COLON": "d2",
                   "DEFAULT_EMPTY_DASH": "", "ALT": "alt", "ALT_UNSET": "", "NESTED": "v-x",
                   "DOLLAR": "$HOME", "BARE": "v"}


def test_dotenv_and_env_file_and_process_env(tmp_path: Path) -> None:
    write(tmp_path / ".env", "TAG=from-dotenv\nexport OTHER='quoted # not a comment'\n")
    write(tmp_path / "alt.env", "TAG=from-alt\n")
    write(tmp_path / "svc.env", "# comment\nA=1\nB=\"two\\nlines\"\nC=${TAG}\n")
    write(tmp_path / "compose.yaml", """
        services:
          s:
            image: busybox:${TAG}
            env_file: svc.env
            environment:
              A: overridden
              O: ${OTHER}
        """)
    model = config(tmp_path)
    assert model["services"]["s"]["image"] == "busybox:from-dotenv"
    assert model["services"]["s"]["environment"] == {
        "A": "overridden", "B": "two\nlines", "C": "from-dotenv",
        "O": "quoted # not a comment"}
    assert config(tmp_path, "--env-file", "alt.env")["services"]["s"]["image"] == \
        "busybox:from-alt"
    assert config(tmp_path, env={"TAG": "from-process"})["services"]["s"]["image"] == \
        "busybox:from-process"


def test_project_name_in_interpolation(tmp_path: Path) -> None:
    """compose-go gives the files the project's name as ${COMPOSE_PROJECT_NAME}, wherever
    the name comes from (-p, the variable, `name:`, the directory)."""
    write(tmp_path / "shop" / "compose.yaml", """
        services:
          app:
            image: ${COMPOSE_PROJECT_NAME}-app
        """)
    folder = tmp_path / "shop"
    assert config(folder)["services"]["app"]["image"] == "shop-app"
    assert config(folder, "-p", "other")["services"]["app"]["image"] == "other-app"
    (folder / "compose.yaml").write_text("name: ${TEAM}-shop\n" +
                                         (folder / "compose.yaml").read_text())
    model = config(folder, env={"TEAM": "blue"})
    assert (model["name"], model["services"]["app"]["image"]) == ("blue-shop", "blue-shop-app")


def test_merge_of_several_files(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", """
        services:
          web:
            image: busybox
            command: sleep 1
            environment: [A=1, B=2]
            ports: ["8080:80", "9090:90"]
            volumes: ["/a:/data", "/b:/other"]
            cap_add: [NET_ADMIN]
            labels: {one: "1"}
        """)
    write(tmp_path / "b.yaml", """
        services:
          web:
            command: ["echo", "replaced"]
            environment: {B: "3", C: "4"}
            ports: ["8080:80"]
            volumes: ["/c:/data"]
            cap_add: [SYS_ADMIN]
            labels: [two=2]
        """)
    web = config(tmp_path, "-f", "a.yaml", "-f", "b.yaml")["services"]["web"]
    assert web["command"] == ["echo", "replaced"]
    assert web["environment"] == {"A": "1", "B": "3", "C": "4"}
    assert [p["published"] for p in web["ports"]] == ["8080", "9090"]
    assert {v["target"]: v["source"] for v in web["volumes"]} == {"/data": "/c",
                                                                 "/other": "/b"}
    assert web["cap_add"] == ["NET_ADMIN", "SYS_ADMIN"]
    assert web["labels"] == {"one": "1", "two": "2"}


def test_discovery_upward_override_and_project_name(tmp_path: Path) -> None:
    project = tmp_path / "My_Proj"
    write(project / "compose.yaml", "services:\n  s:\n    image: busybox\n")
    write(project / "compose.override.yaml", "services:\n  s:\n    user: app\n")
    deep = project / "a" / "b"
    deep.mkdir(parents=True)
    model = config(deep)
    assert model["name"] == "my_proj"
    assert model["services"]["s"]["user"] == "app"
    assert config(deep, "-p", "other")["name"] == "other"
    assert config(deep, env={"COMPOSE_PROJECT_NAME": "fromenv"})["name"] == "fromenv"
    bad = compose(deep, "-p", "Bad!", "config")
    assert bad.returncode == 1
    assert bad.stderr.startswith('invalid project name "Bad!": must consist only of lowercase')
    nothing = compose(tmp_path, "config")
    assert (nothing.returncode, nothing.stderr) == (
        1, "no configuration file provided: not found\n")


def test_extends_include_profiles_anchors_extensions(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", """
        services:
          common:
            image: busybox
            environment: {FROM_BASE: "1"}
            user: app
        """)
    write(tmp_path / "sub" / "compose.yaml", """
        services:
          included:
            image: busybox
            build: .
        """)
    write(tmp_path / "compose.yaml", """
        include:
          - sub/compose.yaml
        x-defaults: &defaults
          restart: always
          init: true
        services:
          child:
            <<: *defaults
            extends: {file: base.yaml, service: common}
            environment: {OWN: "2"}
          sibling:
            extends: child
            user: root
          debug:
            image: busybox
            profiles: [debug]
        """)
    model = config(tmp_path)
    assert set(model["services"]) == {"child", "sibling", "included"}
    assert model["x-defaults"] == {"restart": "always", "init": True}
    child = model["services"]["child"]
    assert child["environment"] == {"FROM_BASE": "1", "OWN": "2"}
    assert (child["user"], child["restart"], child["init"]) == ("app", "always", True)
    assert model["services"]["sibling"]["user"] == "root"
    assert model["services"]["included"]["build"]["context"] == str(tmp_path / "sub")
    assert "debug" in config(tmp_path, "--profile", "debug")["services"]
    assert "debug" in config(tmp_path, env={"COMPOSE_PROFILES": "debug"})["services"]


def test_long_and_short_syntaxes_normalized(tmp_path: Path) -> None:
    write(tmp_path / "compose.yaml", """
        services:
          s:
            image: busybox
            entrypoint: /bin/sh -c
            command: ["echo", "a b"]
            ports:
              - "127.0.0.1:8000-8001:80-81/udp"
              - target: 443
                published: 8443
            expose: [3000, "4000/udp"]
            volumes:
              - data:/data:ro
              - ./src:/src
              - type: tmpfs
                target: /tmp
            depends_on: [d]
            healthcheck:
              test: curl -f http://localhost
              interval: 5s
            secrets: [token]
          d:
            image: busybox
            networks: [back]
        volumes:
          data:
        networks:
          back:
          ext: {external: true}
        secrets:
          token: {file: ./token.txt}
        """)
    model = config(tmp_path)
    s = model["services"]["s"]
    assert s["entrypoint"] == ["/bin/sh", "-c"]
    assert s["ports"] == [
        {"host_ip": "127.0.0.1", "mode": "ingress", "protocol": "udp", "published": "8000",
         "target": 80},
        {"host_ip": "127.0.0.1", "mode": "ingress", "protocol": "udp", "published": "8001",
         "target": 81},
        {"mode": "ingress", "protocol": "tcp", "published": "8443", "target": 443}]
    assert s["expose"] == ["3000", "4000/udp"]
    assert s["volumes"][0] == {"read_only": True, "source": "data", "target": "/data",
                               "type": "volume", "volume": {}}
    assert s["volumes"][1]["source"] == str(tmp_path / "src")
    assert s["depends_on"] == {"d": {"condition": "service_started", "required": True}}
    assert s["healthcheck"]["test"] == ["CMD-SHELL", "curl -f http://localhost"]
    assert s["networks"] == {"default": None}
    assert s["secrets"] == [{"source": "token"}]
    assert model["networks"] == {"back": {"name": f"{tmp_path.name}_back"},
                                 "default": {"name": f"{tmp_path.name}_default"},
                                 "ext": {"external": True, "name": "ext"}}
    assert model["volumes"] == {"data": {"name": f"{tmp_path.name}_data"}}
    assert model["secrets"]["token"]["file"] == str(tmp_path / "token.txt")
    assert compose(tmp_path, "config", "--volumes").stdout == "data\n"


@pytest.mark.parametrize(("text", "env", "message"), [
    ("services:\n  s:\n    image: busybox\n    bogus: 1\n", {},
     "validating {file}:4: services.s Additional property bogus is not allowed"),
    ("services:\n  s:\n    image: busybox\n    ports: 8080\n", {},
     "validating {file}:4: services.s.ports must be a list"),
    ("servics:\n  s:\n    image: busybox\n", {},
     "validating {file}:1: (root) Additional property servics is not allowed"),
    ("services:\n  s:\n    image: busybox\n    environment: {A: [1]}\n", {},
     "validating {file}:4: services.s.environment.A must be a string, number, boolean or null"),
    ("services:\n  s:\n    image: busybox\n    environment: 5\n", {},
     "validating {file}:4: services.s.environment Invalid type. Expected: object, given: integer"),
    ("services:\n  s:\n    image: busybox\n    volumes: [':/x']\n", {},
     "invalid spec: :/x: empty section between colons"),
    ("services:\n  s:\n    image: busybox\n    ports: [{target: abc}]\n", {},
     "Invalid containerPort: abc"),
    ("services:\n  s:\n    image: busybox\n    restart: 3\n", {},
     "validating {file}:4: services.s.restart must be a string"),
    ("services:\n  s:\n    image: busybox: latest\n", {},
     "parsing {file}: yaml: line 3: mapping values are not allowed in this context"),
    ("services:\n  s:\n    image: ${TAG:?TAG must be set}\n", {},
     "error while interpolating services.s.image at {file}:3: required variable TAG is "
     "missing a value: TAG must be set"),
    ("services:\n  s:\n    image: ${TAG?}\n", {},
     "error while interpolating services.s.image at {file}:3: required variable TAG is "
     "missing a value"),
    ("services:\n  s:\n    image: busybox:${}\n", {},
     "invalid interpolation format for services.s.image at {file}:3.\nYou may need to "
     "escape any $ with another $.\nbusybox:${}"),
    ("x-base: &base\n  image: busybox\nservices:\n  s:\n    <<: *base\n    command:\n"
     "      - sh\n      - ${CMD:?}\n    healthcheck:\n      test: [CMD, 'true']\n"
     "      intervall: 3s\n", {"CMD": "x"},
     "validating {file}:11: services.s.healthcheck Additional property intervall is not "
     "allowed"),
    ("services:\n  s:\n    image: busybox\n    command:\n      - sh\n      - ${CMD:?}\n", {},
     "error while interpolating services.s.command[1] at {file}:6: required variable CMD is "
     "missing a value"),
    ("services:\n  a:\n    image: busybox\n    depends_on: [b]\n"
     "  b:\n    image: busybox\n    depends_on: [a]\n", {},
     "dependency cycle detected: a -> b -> a"),
    ("services:\n  a:\n    image: busybox\n    depends_on: [nope]\n", {},
     'service "a" depends on undefined service "nope": invalid compose project'),
    ("services:\n  a:\n    image: busybox\n    links: [nope]\n", {},
     'service "a" depends on undefined service "nope": invalid compose project'),
    ("services:\n  a:\n    image: busybox\n    networks: [nope]\n", {},
     'service "a" refers to undefined network nope: invalid compose project'),
    ("services:\n  a:\n    image: busybox\n    volumes: ['nope:/x']\n", {},
     'service "a" refers to undefined volume nope: invalid compose project'),
])
def test_bad_input(tmp_path: Path, text: str, env: dict[str, str], message: str) -> None:
    path = write(tmp_path / "compose.yaml", text)
    result = compose(tmp_path, "config", env=env)
    assert (result.returncode, result.stderr) == (1, message.replace("{file}", str(path)) + "\n")


def test_unknown_command_and_flag(tmp_path: Path) -> None:
    write(tmp_path / "compose.yaml", "services:\n  a:\n    image: busybox\n")
    for args, message in ((["scale", "a=2"], 'unknown docker command: "compose scale"'),
                          (["up", "--bogus"], "unknown flag: --bogus")):
        result = compose(tmp_path, *args)
        assert (result.returncode, result.stderr) == (1, message + "\n")


def test_bad_input_leaves_nothing_for_up(tmp_path: Path) -> None:
    """A model error stops `up` before it talks to any engine (none is reachable here)."""
    write(tmp_path / "compose.yaml", "services:\n  a:\n    image: busybox\n    nope: 1\n")
    result = subprocess.run([MOOR, "-H", f"unix://{tmp_path}/none.sock", "compose", "up", "-d"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "Additional property nope is not allowed" in result.stderr


def test_refused_until_built(tmp_path: Path) -> None:
    """What is not built is refused before any engine is asked (none is reachable here)."""
    write(tmp_path / "compose.yaml", "services:\n  a:\n    image: busybox\n    gpus: all\n")
    host = ["-H", f"unix://{tmp_path}/none.sock"]
    for args, message in ((["watch"], "none of the selected services is configured for watch, "
                                      "consider setting a 'develop' section"),
                          (["up", "-d"], "services.a.gpus: not supported by moor compose yet")):
        result = subprocess.run([MOOR, *host, "compose", *args], cwd=tmp_path,
                                capture_output=True, text=True, timeout=30)
        assert (result.returncode, result.stderr) == (1, message + "\n")


@pytest.mark.skipif(not shutil.which(DOCKER_COMPOSE), reason="needs docker-compose 1.29")
def test_services_and_volumes_agree_with_docker_compose(tmp_path: Path) -> None:
    write(tmp_path / "docker-compose.yml", """
        services:
          web: {image: busybox, depends_on: [db], volumes: [logs:/logs]}
          db: {image: busybox, volumes: [data:/data]}
          cache: {image: busybox}
        volumes: {data: {}, logs: {}}
        """)
    for flag in ("--services", "--volumes"):
        ours = compose(tmp_path, "config", flag)
        theirs = subprocess.run([DOCKER_COMPOSE, "config", flag], cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
        assert ours.returncode == theirs.returncode == 0, ours.stderr + theirs.stderr
        assert sorted(ours.stdout.split()) == sorted(theirs.stdout.split())


def test_moor_compose_script_starts_without_engine_imports(tmp_path: Path) -> None:
    write(tmp_path / "compose.yaml", "services:\n  a:\n    image: busybox\n")
    script = os.path.join(os.path.dirname(sys.executable), "moor-compose")
    result = subprocess.run([sys.executable, "-X", "importtime", script, "config", "-q"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()[1:]}
    assert not {m for m in imported if m.split(".")[:2] in (
        ["moorage", "daemon"], ["moorage", "api"], ["moorage", "cli"], ["aiohttp"])}


def test_reset_and_override_tags(tmp_path: Path) -> None:
    write(tmp_path / "compose.yaml", """
        services:
          app:
            image: myapp
            ports: ["8080:80"]
            environment: {FOO: BAR, KEEP: "1"}
            volumes: ["/a:/a"]
        """)
    write(tmp_path / "compose.override.yaml", """
        services:
          app:
            ports: !override
              - "8443:443"
            environment:
              FOO: !reset null
            volumes: !reset []
        """)
    app = config(tmp_path)["services"]["app"]
    assert [p["target"] for p in app["ports"]] == [443]
    assert app["environment"] == {"KEEP": "1"}
    assert "volumes" not in app


def test_what_compose_gos_full_example_showed(tmp_path: Path) -> None:
    """What compose-go's own full example showed `config` got wrong: label files, the
    deprecated `external: {name: x}`, `~` in a secret's file, numbers in driver_opts,
    units and label forms."""
    write(tmp_path / "base.label", "FROM_FILE=file\nBOTH=file\n")
    write(tmp_path / "compose.yaml", """
        services:
          app:
            image: busybox
            label_file: ./base.label
            labels: {BOTH: service}
            networks: [outside]
            secrets: [token]
            stop_grace_period: 90s
            build: {context: ., labels: [A=1], additional_contexts: {more: ./more}}
            deploy:
              labels: [EMPTY]
              resources: {limits: {cpus: '0.5', memory: 50M}}
              restart_policy: {window: 120s}
        networks:
          outside:
            external: {name: their-net}
        volumes:
          data:
            driver_opts: {size: 1}
        secrets:
          token: {file: ~/token.txt}
        """)
    model = config(tmp_path, env={"HOME": str(tmp_path / "home")})
    assert model["services"]["app"]["labels"] == {"FROM_FILE": "file", "BOTH": "service"}
    assert "label_file" not in model["services"]["app"]
    assert model["networks"]["outside"] == {"name": "their-net", "external": True}
    assert model["volumes"]["data"]["driver_opts"] == {"size": "1"}
    assert model["secrets"]["token"]["file"] == str(tmp_path / "home" / "token.txt")
    # compose-go's units: Go durations, bytes, numbers, labels as mappings of strings
    app = model["services"]["app"]
    assert app["stop_grace_period"] == "1m30s"
    assert app["build"]["labels"] == {"A": "1"}
    assert app["build"]["additional_contexts"] == {"more": str(tmp_path / "more")}
    assert app["deploy"] == {"labels": {"EMPTY": ""},
                             "resources": {"limits": {"cpus": 0.5, "memory": "52428800"}},
                             "restart_policy": {"window": "2m0s"}}
