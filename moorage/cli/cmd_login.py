"""login and logout: credentials in ~/.docker/config.json's "auths", as the docker CLI
keeps them without a credential helper (base64 of "user:password" under "auth"), so
either tool can use, replace or remove what the other stored."""

from __future__ import annotations

import sys

from moorage.cli.flags import BOOL, STR, Spec, flag
from moorage.cli.output import write
from moorage.cli.session import CommandError
from moorage.client.credentials import INDEX_SERVER, stored

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from moorage.cli.flags import Options
    from moorage.cli.session import Session

def server_key(server: str | None) -> str:
    """The key docker stores a registry under: Hub's v1 URL, otherwise the bare host
    (registry.ConvertToHostname: no scheme, no path)."""
    if not server or server in ("docker.io", "index.docker.io", INDEX_SERVER):
        return INDEX_SERVER
    return server.removeprefix("https://").removeprefix("http://").split("/", 1)[0]


def _prompt(opts: Options, key: str) -> tuple[str, str]:
    """docker's interactive login: the username (the stored one as default), then the
    password without echo."""
    if not sys.stdin.isatty():
        raise CommandError("Error: Cannot perform an interactive login from a non TTY device")
    import getpass

    username = opts.username
    if not username:
        default = stored(key)[0]
        write(f"Username ({default}): " if default else "Username: ")
        sys.stdout.flush()
        username = sys.stdin.readline().strip() or default
        if not username:
            raise CommandError("Error: Non-null Username Required")
    password = getpass.getpass("Password: ")
    if not password:
        raise CommandError("Error: Password Required")
    return username, password


def _save(key: str, username: str, password: str) -> str:
    import base64

    from moorage.client.contexts import config_dir, read_config, write_config

    config = read_config()
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    config.setdefault("auths", {})[key] = {"auth": token}
    write_config(config)
    return f"{config_dir()}/config.json"


def login(session: Session, opts: Options, args: list[str]) -> int:
    key = server_key(args[0] if args else None)
    if opts.password_stdin:
        if not opts.username:
            raise CommandError("the --password-stdin option requires --username to be set")
        if opts.password:
            raise CommandError("conflicting options: cannot specify both --password and "
                               "--password-stdin")
        opts.password = sys.stdin.readline().rstrip("\r\n")
    username, password = opts.username, opts.password
    if not username and not password and all(saved := stored(key)):
        sys.stderr.write(f"Authenticating with existing credentials... [Username: {saved[0]}]"
                         "\n\n Info -> To login with a different account, run 'moor logout' "
                         "followed by 'moor login'\n\n\n")
        username, password = saved
    elif not (username and password):
        username, password = _prompt(opts, key)
    from moorage.client.errors import APIError

    body: dict[str, Any] = {"username": username, "password": password,
                            "serveraddress": key}
    try:
        result = session.client.post("/auth", body=body) or {}
    except APIError as err:
        raise CommandError(f"Error response from daemon: {err.message}") from None
    path = _save(key, username, password)
    sys.stderr.write(f"\nWARNING! Your credentials are stored unencrypted in '{path}'.\n"
                     "Configure a credential helper to remove this warning. See\n"
                     "https://docs.docker.com/go/credential-store/\n\n")
    write(f"{result.get('Status') or 'Login Succeeded'}\n")
    return 0


def logout(_session: Session, _opts: Options, args: list[str]) -> int:
    from moorage.client.contexts import read_config, write_config

    key = server_key(args[0] if args else None)
    write(f"Removing login credentials for {key}\n")
    config = read_config()
    if key in (config.get("auths") or {}):
        del config["auths"][key]
        write_config(config)
    return 0


SPECS = {
    "login": Spec("[OPTIONS] [SERVER]", login, (
        flag("p|password", STR, "Password"),
        flag("password-stdin", BOOL, "Take the password from stdin"),
        flag("u|username", STR, "Username")), max_args=1),
    "logout": Spec("[SERVER]", logout, max_args=1),
}
