"""Random container names, adjective_surname like Docker's namesgenerator."""

from __future__ import annotations

import random
from collections.abc import Callable

_LEFT = ("admiring", "brave", "calm", "clever", "dreamy", "eager", "festive", "gallant",
         "happy", "jolly", "keen", "lucid", "modest", "nifty", "optimistic", "quirky",
         "relaxed", "serene", "tender", "upbeat", "vibrant", "wizardly", "youthful", "zen")
_RIGHT = ("babbage", "curie", "darwin", "euler", "fermi", "galois", "hopper", "hypatia",
          "johnson", "kepler", "lovelace", "meitner", "noether", "pascal", "ritchie",
          "shannon", "thompson", "turing", "wilson", "wozniak")


def generate_name(taken: Callable[[str], bool]) -> str:
    for attempt in range(100):
        name = f"{random.choice(_LEFT)}_{random.choice(_RIGHT)}"
        if attempt > 10:
            name += str(random.randint(0, 9999))
        if not taken(name):
            return name
    raise RuntimeError("no free container name")
