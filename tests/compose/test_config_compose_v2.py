"""`moor compose config` beside Compose v2's own documented output for the same input.

The pairs come from Compose v2's tests (Apache-2.0, their authors'):
- docker/compose `pkg/e2e` (`TestConfig`, `TestLocalComposeConfig` and their `testdata`):
  the output of `docker compose config`, word for word where they give it whole;
- compose-spec/compose-go `loader/normalize_test.go`: the model after normalization, as
  `config` prints it. The adaptations, each because `config` does more than `Normalize`:
  the project is named `myproject` (`config` refuses `myProject`, as Compose v2 does),
  services get an image where they had none (`config` checks that), a path is absolute,
  `restart: false` is not printed (the field's `omitempty`), and an explicit dependency
  gets compose-go's default `required: true`;
- compose-go's former `loader/full-example.yml` and `fullExampleYAML` (at dabd353^): its
  secrets and configs, with the names compose-go's normalization gives them since.

Both renderings are checked: the YAML text, and `--format json` as the same model."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from test_config import compose, write


def config(folder: Path, *args: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    """`config`'s YAML and JSON for the project in `folder`."""
    out = []
    for form in ("yaml", "json"):
        result = compose(folder, *args, "config", "--format", form, env=env)
        assert result.returncode == 0, result.stderr
        out.append(result.stdout)
    return out[0], out[1]


def test_e2e_config_resolves_the_build_context(tmp_path: Path) -> None:
    """docker/compose pkg/e2e TestConfig."""
    write(tmp_path / "compose.yaml", """
        services:
          nginx:
            build:
              context: nginx-build
              dockerfile: Dockerfile
        """)
    write(tmp_path / "nginx-build" / "Dockerfile", "FROM nginx\n")
    text, as_json = config(tmp_path, "-p", "e2e-config")
    expected = textwrap.dedent(f"""\
        name: e2e-config
        services:
          nginx:
            build:
              context: {tmp_path / "nginx-build"}
              dockerfile: Dockerfile
            networks:
              default: null
        networks:
          default:
            name: e2e-config_default
        """)
    assert text == expected
    assert json.loads(as_json) == yaml.safe_load(expected)


def test_e2e_local_compose_config_expands_the_port_shorthand(tmp_path: Path) -> None:
    """docker/compose pkg/e2e TestLocalComposeConfig: the long syntax in compose-go's field
    order, the published port a string (double-quoted, as yaml.v3 writes it)."""
    write(tmp_path / "compose.yaml", """
        services:
          test:
            image: test
            ports:
              - ${PORT:-8080}:80
        """)
    text, as_json = config(tmp_path)
    assert ('\n    ports:\n      - mode: ingress\n        target: 80\n'
            '        published: "8080"\n        protocol: tcp') in text
    assert '"published": "8080"' in as_json


NORMALIZED = [
    pytest.param(
        """
        name: myproject
        services:
          foo:
            build:
              context: ./testdata
              args:
                FOO: null
                ZOT: null
        networks:
          myExternalnet:
            external: true
          myNamedNet:
            name: CustomName
          mynet: {}
        """,
        """
        name: myproject
        services:
          foo:
            build:
              context: {dir}/testdata
              dockerfile: Dockerfile
              args:
                FOO: BAR
            networks:
              default: null
        networks:
          default:
            name: myproject_default
          myExternalnet:
            name: myExternalnet
            external: true
          myNamedNet:
            name: CustomName
          mynet:
            name: myproject_mynet
        """, {"FOO": "BAR"}, id="NetworkNames"),
    pytest.param(
        """
        name: myproject
        volumes:
          myExternalVol:
            external: true
          myvol: {}
          myNamedVol:
            name: CustomName
        """,
        """
        name: myproject
        services: {{}}
        volumes:
          myExternalVol:
            name: myExternalVol
            external: true
          myNamedVol:
            name: CustomName
          myvol:
            name: myproject_myvol
        """, {}, id="Volumes"),
    pytest.param(
        """
        name: myproject
        services:
          foo:
            image: busybox
            depends_on:
              bar:
                condition: service_healthy
                required: true
                restart: true
            network_mode: service:zot
          bar:
            image: busybox
            volumes_from:
              - zot
              - container:xxx
          zot:
            image: busybox
        """,
        """
        name: myproject
        services:
          bar:
            depends_on:
              zot:
                condition: service_started
                required: true
            image: busybox
            networks:
              default: null
            volumes_from:
              - zot
              - container:xxx
          foo:
            depends_on:
              bar:
                condition: service_healthy
                restart: true
                required: true
              zot:
                condition: service_started
                restart: true
                required: true
            image: busybox
            network_mode: service:zot
          zot:
            image: busybox
            networks:
              default: null
        networks:
          default:
            name: myproject_default
        """, {}, id="DependsOn"),
    pytest.param(
        # without compose-go's `cgroup: service:bar`, which its own schema refuses
        """
        name: myproject
        services:
          test:
            image: busybox
            ipc: service:foo
            uts: service:baz
            pid: service:qux
            volumes_from: [quux]
            links: [corge]
            depends_on:
              foo:
                condition: service_healthy
          foo: {image: busybox}
          baz: {image: busybox}
          qux: {image: busybox}
          quux: {image: busybox}
          corge: {image: busybox}
        """,
        """
        name: myproject
        services:
          baz:
            image: busybox
            networks:
              default: null
          corge:
            image: busybox
            networks:
              default: null
          foo:
            image: busybox
            networks:
              default: null
          quux:
            image: busybox
            networks:
              default: null
          qux:
            image: busybox
            networks:
              default: null
          test:
            depends_on:
              baz:
                condition: service_started
                restart: true
                required: true
              corge:
                condition: service_started
                restart: true
                required: true
              foo:
                condition: service_healthy
                required: true
              quux:
                condition: service_started
                required: true
              qux:
                condition: service_started
                restart: true
                required: true
            image: busybox
            ipc: service:foo
            links:
              - corge
            networks:
              default: null
            pid: service:qux
            uts: service:baz
            volumes_from:
              - quux
        networks:
          default:
            name: myproject_default
        """, {}, id="ImplicitDependencies"),
    pytest.param(
        """
        name: myproject
        services:
          test:
            build: {}
        """,
        """
        name: myproject
        services:
          test:
            build:
              context: {dir}
              dockerfile: Dockerfile
            networks:
              default: null
        networks:
          default:
            name: myproject_default
        """, {}, id="ImplicitContextPath"),
    pytest.param(
        """
        name: myproject
        services:
          test:
            image: test
            networks:
              my_network: null
        networks:
          my_network: null
        """,
        """
        name: myproject
        services:
          test:
            image: test
            networks:
              my_network: null
        networks:
          my_network:
            name: myproject_my_network
        """, {}, id="CustomNetwork"),
    pytest.param(
        """
        name: myproject
        services:
          test:
            image: test
            environment:
              - FOO
              - BAR
              - ZOT=QIX
        """,
        """
        name: myproject
        services:
          test:
            environment:
              BAR: bar
              FOO: null
              ZOT: QIX
            image: test
            networks:
              default: null
        networks:
          default:
            name: myproject_default
        """, {"BAR": "bar", "ZOT": "zot"}, id="Environment"),
    pytest.param(
        """
        name: full_example_project_name
        services: {}
        secrets:
          secret1:
            file: ./secret_data
            labels:
              foo: bar
          secret2:
            external:
              name: my_secret
          secret3:
            external: true
          secret4:
            name: bar
            environment: BAR
            x-bar: baz
            x-foo: bar
          secret5:
            file: /abs/secret_data
        configs:
          config1:
            file: ./config_data
            labels:
              foo: bar
          config2:
            external:
              name: my_config
          config3:
            external: true
          config4:
            name: foo
            file: ~/config_data
            x-bar: baz
            x-foo: bar
        """,
        """
        name: full_example_project_name
        services: {{}}
        secrets:
          secret1:
            name: full_example_project_name_secret1
            file: {dir}/secret_data
            labels:
              foo: bar
          secret2:
            name: my_secret
            external: true
          secret3:
            name: secret3
            external: true
          secret4:
            name: bar
            environment: BAR
            x-bar: baz
            x-foo: bar
          secret5:
            name: full_example_project_name_secret5
            file: /abs/secret_data
        configs:
          config1:
            name: full_example_project_name_config1
            file: {dir}/config_data
            labels:
              foo: bar
          config2:
            name: my_config
            external: true
          config3:
            name: config3
            external: true
          config4:
            name: foo
            file: {home}/config_data
            x-bar: baz
            x-foo: bar
        """, {}, id="FullExampleSecretsConfigs"),
]


@pytest.mark.parametrize(("given", "expected", "env"), NORMALIZED)
def test_compose_go_normalization(tmp_path: Path, given: str, expected: str,
                                  env: dict[str, str]) -> None:
    folder = tmp_path / "project"
    write(folder / "compose.yaml", given)
    home = tmp_path / "home"
    text, as_json = config(folder, env={**env, "HOME": str(home)})
    wanted = textwrap.dedent(expected).lstrip().format(dir=folder, home=home)
    assert text == wanted
    assert json.loads(as_json) == yaml.safe_load(wanted)
