"""Log drivers and their options: json-file, local and none.

`json-file` writes Docker's JSON lines at LogPath and rotates them by `max-size`
into at most `max-file` files (the older ones gzipped with `compress`); `local`
keeps the same lines under the container's folder with the local driver's
defaults (20 MB, 5 files, compressed) and no LogPath, as dockerd shows it; `none`
keeps nothing. Options are checked by name at create and by value at start, as
dockerd does, in its words; the json-file options that label entries (labels,
env, tag and their regexes) are refused until entries carry attributes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from moorage.errors import InvalidParameter

_T = TypeVar("_T")

SUPPORTED = ("json-file", "local", "none")
_OPTIONS = {"json-file": ("max-size", "max-file", "compress"),
            "local": ("max-size", "max-file", "compress"), "none": ()}
_NOT_YET = ("labels", "labels-regex", "env", "env-regex", "tag")
_SIZE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_TRUE, _FALSE = ("1", "t", "T", "TRUE", "true", "True"), ("0", "f", "F", "FALSE", "false", "False")


@dataclass(frozen=True, slots=True)
class Rotation:
    max_size: int = 0        # bytes; 0: the file grows without bound
    max_files: int = 1
    compress: bool = False

    def as_tuple(self) -> tuple[int, int, bool]:
        return (self.max_size, self.max_files, self.compress)


def check_driver(driver: str) -> None:
    if driver and driver not in SUPPORTED:
        # dockerd's words for a driver it does not have; syslog, journald, fluentd and
        # the other remote drivers are not in this engine either.
        raise InvalidParameter(f"error looking up logging plugin {driver}: "
                               f'plugin "{driver}" not found')


def check_names(driver: str, options: Mapping[str, str]) -> None:
    """At create: every option is one the driver knows (dockerd's ValidateLogOpts)."""
    check_driver(driver)
    for name in options:
        if name in _OPTIONS.get(driver, ()):
            continue
        if driver == "json-file" and name in _NOT_YET:
            raise InvalidParameter(f"log option '{name}' of the json-file log driver is not "
                                   "supported yet")
        if driver == "json-file":
            raise InvalidParameter(f"unknown log opt '{name}' for json-file log driver")
        raise InvalidParameter(f"unknown log opt '{name}' for log driver {driver}")


def check_defaults(driver: str, options: Mapping[str, str]) -> None:
    """daemon.json's log-driver and log-opts, checked when the daemon starts."""
    try:
        check_names(driver, options)
        rotation(driver, options)
    except InvalidParameter as err:
        raise InvalidParameter(f"unable to configure the daemon: failed to set log opts: "
                               f"{err}") from None


def merged(driver: str, options: Mapping[str, str], default_driver: str,
           default_options: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The container's driver and options with the daemon's defaults (moby
    mergeAndVerifyLogConfig): the daemon's options apply to its own driver only."""
    driver = driver or default_driver
    options = dict(options)
    if driver == default_driver:
        options = {**default_options, **options}
    return driver, options


def rotation(driver: str, options: Mapping[str, str]) -> Rotation:
    """At start: the options' values as dockerd's drivers read them, or its error."""
    try:
        if driver == "local":
            return _local(options)
        if driver == "json-file":
            return _json_file(options)
        return Rotation()
    except ValueError as err:
        raise InvalidParameter(f"failed to initialize logging driver: {err}") from None


def log_path(container_dir: str, container_id: str, driver: str) -> str:
    if driver == "json-file":
        return os.path.join(container_dir, f"{container_id}-json.log")
    if driver == "local":
        return os.path.join(container_dir, "local-logs", "container.log")
    return ""


def _json_file(options: Mapping[str, str]) -> Rotation:
    size = 0
    if "max-size" in options:
        size = _size(options["max-size"])
        if size <= 0:
            raise ValueError("max-size must be a positive number")
    files = 1
    if "max-file" in options:
        files = _atoi(options["max-file"])
        if files < 1:
            raise ValueError("max-file cannot be less than 1")
    compress = False
    if "compress" in options:
        compress = _bool(options["compress"])
        if compress and (files == 1 or not size):
            raise ValueError("compress cannot be true when max-file is less than 2 or "
                             "max-size is not set")
    return Rotation(size, files, compress)


def _local(options: Mapping[str, str]) -> Rotation:
    size, files, compress = 20 * 1024 * 1024, 5, True
    if "max-size" in options:
        size = _read(options, "max-size", _size, "invalid value for max-size: {value}: {err}")
    if "max-file" in options:
        files = _read(options, "max-file", _atoi, "invalid value for max-file: {value}: {err}")
    if "compress" in options:
        compress = _read(options, "compress", _bool, "error reading compress log option: {err}")
    if size < 0:
        raise ValueError("max size should be a positive number")
    if files < 0:
        raise ValueError("max file count cannot be less than 0")
    if compress and files <= 1:
        raise ValueError("compression cannot be enabled when max file count is 1")
    return Rotation(size, max(files, 1), compress)


def _read(options: Mapping[str, str], key: str, parse: Callable[[str], _T], wording: str) -> _T:
    """`options[key]` parsed; a parse error in the driver's `wording` ({value}, {err})."""
    try:
        return parse(options[key])
    except ValueError as err:
        raise ValueError(wording.format(value=options[key], err=err)) from None


def _size(text: str) -> int:
    """go-units FromHumanSize: decimal units."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"invalid size: '{text}'")
    unit = "kmgtp".find((match.group(2) or " ").lower()) + 1
    return int(float(match.group(1)) * 1000 ** unit)


def _atoi(text: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def _bool(text: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')
