"""Container events on the engine's bus, with dockerd's actions and attributes: the
container's labels, its image as given and its name, plus what the action adds."""

from __future__ import annotations

from moorage.daemon.containers.context import Context
from moorage.model.records import ContainerRecord

# State machine notices and the events dockerd publishes for them.
_TRANSITIONS = {"start": "start", "pause": "pause", "unpause": "unpause", "exit": "die",
                "removed": "destroy"}


def publish(ctx: Context, record: ContainerRecord, action: str, **extra: str) -> None:
    attributes = {**record.config.labels, "image": record.config.image,
                  "name": record.name.lstrip("/"), **extra}
    ctx.events.publish("container", action, record.id, attributes)


def follow_transitions(ctx: Context) -> None:
    """Publish what the state machine tells: start, die (exitCode), pause, destroy."""

    def on_transition(event: str, record: ContainerRecord, _error: str) -> None:
        action = _TRANSITIONS.get(event)
        if action == "die":
            publish(ctx, record, action, exitCode=str(record.state.exit_code))
        elif action:
            publish(ctx, record, action)

    ctx.states.listen(on_transition)
