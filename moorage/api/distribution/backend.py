"""What the registry routes need from the engine: pull, push, login, distribution inspect.

Names mirror moby's (PullImage, PushImage, AuthenticateToRegistry,
GetRepositories/DistributionInspect). Progress goes out as JSON messages
through ``emit``, which the route writes to the response as they come.
"""

from __future__ import annotations

from typing import Protocol

from moorage.model.distribution import AuthConfig, DistributionInspect, PullRequest, PushRequest
from moorage.protocol.jsonmessage import Emit


class DistributionBackend(Protocol):
    async def pull_image(self, request: PullRequest, emit: Emit) -> None:
        """Pull, reporting progress. Errors raised before the first ``emit`` (bad
        reference: InvalidParameter; unknown image: NotFound; refused credentials:
        Unauthorized; unreachable registry: SystemFailure) leave nothing to undo;
        later ones leave the store as it was."""
        ...

    async def push_image(self, request: PushRequest, emit: Emit) -> None:
        """Push the image's tag (every tag of the repository when ``tag`` is empty).
        NotFound when there is no such local image."""
        ...

    async def login(self, auth: AuthConfig) -> str:
        """Check the credentials with the registry; returns an identity token ("" for
        registries that issue none). Unauthorized with the registry's refusal."""
        ...

    async def distribution_inspect(self, name: str, auth: AuthConfig) -> DistributionInspect:
        """Resolve ``name`` on its registry without pulling. Errors as pull_image's."""
        ...
