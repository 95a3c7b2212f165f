"""Running a Dockerfile, step by step, as moby's classic builder does
(builder/dockerfile/builder.go, dispatchers.go): one image per step, RUN in a real
container of the engine, COPY/ADD/WORKDIR in a mounted writable layer, the config
instructions on the image config, each step's result cached."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import json
import os
import posixpath
import secrets
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from moorage.build.dockerfile import (
    Dockerfile,
    Instruction,
    Stage,
    error,
    parse,
)
from moorage.build.words import process_word, process_words
from moorage.daemon.build import copier, instructions
from moorage.daemon.build.cache import BuildCache
from moorage.daemon.build.context import BuildContext
from moorage.daemon.build.instructions import comment_config, step_config
from moorage.daemon.build.mounts import (
    bind_stages,
    bound_context,
    run_command,
    run_mounts,
    run_network,
)
from moorage.daemon.build.run import RunStep, run_container
from moorage.daemon.build.workspace import mounted
from moorage.daemon.containers.service import ContainerService
from moorage.daemon.containers.setup import resolve_user
from moorage.daemon.images.commit import ChildImage, commit_child
from moorage.daemon.images.service import ImageService
from moorage.errors import InvalidParameter, MoorError, NotFound
from moorage.image import config as image_config
from moorage.image.diff import settle_times
from moorage.model.build import BuildRequest
from moorage.protocol.stringid import short_id

Emit = Callable[[dict[str, Any]], Awaitable[None]]
DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Build args every build accepts without an ARG (moby's builtinAllowedBuildArgs).
_BUILTIN_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
                           "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                           "all_proxy"})


@dataclass
class _StageOutput:
    """A stage's messages, held until the stages before it have sent theirs."""

    chunks: list[str] = field(default_factory=list)
    live: bool = False


# The output of the stage the running task builds.
_OUTPUT: contextvars.ContextVar[_StageOutput | None] = contextvars.ContextVar(
    "build_stage_output", default=None)


@dataclass
class _State:
    image_id: str | None
    config: dict[str, Any]
    args: dict[str, str | None] = field(default_factory=dict)
    cmd_set: bool = False
    author: str = ""
    index: int = 0  # the stage's position in the Dockerfile

    @property
    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)

    def env(self) -> dict[str, str]:
        """What ``$VAR`` expands to: the stage's ARGs, overridden by its ENV."""
        values = {k: v for k, v in self.args.items() if v is not None}
        values.update(instructions.env_map(self.config))
        return values


class Builder:
    def __init__(self, images: ImageService, containers: ContainerService, cache: BuildCache,
                 work_root: str, request: BuildRequest, context: BuildContext,
                 emit: Emit) -> None:
        self.images = images
        self.containers = containers
        self.cache = cache
        self.work_root = work_root
        self.request = request
        self.context = context
        self.emit = emit
        self.done: dict[int, asyncio.Future[str | None]] = {}
        self.total = 0
        self.escape = "\\"
        self.used_args: set[str] = set()
        self.meta: dict[str, str | None] = {}
        self.cache_mounts = os.path.join(os.path.dirname(work_root), "cache-mounts")
        self.dockerfile: Dockerfile | None = None
        self.to_build: list[Stage] = []

    async def say(self, text: str) -> None:
        if self.request.quiet:
            return
        output = _OUTPUT.get()
        if output is None or output.live:
            await self.emit({"stream": text})
        else:
            output.chunks.append(text)

    # --- the whole build ---------------------------------------------------------------

    async def prepare(self) -> None:
        """Read, parse and check the Dockerfile: what fails here fails the request
        before any output (dockerd answers it with an HTTP error)."""
        text = await asyncio.to_thread(self.context.dockerfile, self.request.dockerfile)
        if not text.strip():
            raise InvalidParameter(f"the Dockerfile ({self.request.dockerfile or 'Dockerfile'})"
                                   " cannot be empty")
        self.dockerfile = parse(text)
        self.escape = self.dockerfile.escape
        self.to_build = self._stages_to_build(self.dockerfile)

    async def build(self) -> str:
        dockerfile, stages = self.dockerfile, self.to_build
        assert dockerfile is not None, "prepare() first"
        for warning in dockerfile.warnings:
            await self.say(f"[WARNING]: {warning}\n")
        if self.request.labels:
            label = "LABEL " + " ".join(f"{json.dumps(k)}={json.dumps(v)}"
                                        for k, v in sorted(self.request.labels.items()))
            stages[-1].instructions.append(Instruction("label", label[6:], label, 0))
        self.total = sum(1 + len(s.instructions) for s in stages)
        self.meta = self._meta_args(dockerfile)
        image_id = await self._stages_in_parallel(dockerfile, stages)
        unused = sorted(set(self.request.build_args) - self.used_args - _BUILTIN_ARGS)
        if unused:
            await self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not "
                           "consumed\n")
        if image_id is None:
            raise InvalidParameter("No image was generated. Is your Dockerfile empty?")
        return image_id

    def _stages_to_build(self, dockerfile: Dockerfile) -> list[Stage]:
        """The target (the last stage by default) and the stages it needs, through FROM,
        COPY --from and RUN --mount=from=, in Dockerfile order: the others are skipped."""
        stages = dockerfile.stages
        target = len(stages) - 1
        if self.request.target:
            names = [s.name for s in stages]
            if self.request.target.lower() not in names:
                raise InvalidParameter(f"failed to reach build target {self.request.target} "
                                       "in Dockerfile")
            target = names.index(self.request.target.lower())
        needed = {target}
        pending = [target]
        while pending:
            stage = stages[pending.pop()]
            references = [stage.base] + [i.flags["from"] for i in stage.instructions
                                         if "from" in i.flags]
            references += [ref for i in stage.instructions if i.name == "run"
                           for ref in bind_stages(i)]
            for ref in references:
                index = _stage_index(stages, ref.lower(), stages.index(stage))
                if index is not None and index not in needed:
                    needed.add(index)
                    pending.append(index)
        return [s for i, s in enumerate(stages) if i in needed]

    def _meta_args(self, dockerfile: Dockerfile) -> dict[str, str | None]:
        values: dict[str, str | None] = {}
        for inst in dockerfile.meta_args:
            for name, default in self._arg_items(inst, values):
                self.used_args.add(name)
                given = self.request.build_args.get(name)
                values[name] = given if given is not None else \
                    default if default is not None else platform_args().get(name)
        return values

    def _arg_items(self, inst: Instruction,
                   env: dict[str, str | None]) -> list[tuple[str, str | None]]:
        known = {k: v for k, v in env.items() if v is not None}
        items: list[tuple[str, str | None]] = []
        for word in process_words(inst.args, known, self.escape):
            name, sep, default = word.partition("=")
            if not name:
                raise error(inst.line, "ARG names can not be blank")
            items.append((name, default if sep else None))
        return items

    # --- one stage ---------------------------------------------------------------------

    async def _stages_in_parallel(self, dockerfile: Dockerfile,
                                  stages: list[Stage]) -> str | None:
        """Every stage starts at once and waits only for the stages it uses (FROM, COPY
        --from); their output goes out in Dockerfile order, each stage's as soon as the
        ones before it are done."""
        loop = asyncio.get_running_loop()
        indexes = [dockerfile.stages.index(s) for s in stages]
        self.done = {i: loop.create_future() for i in indexes}
        outputs = {i: _StageOutput() for i in indexes}
        tasks = []
        step = 0
        for index, stage in zip(indexes, stages, strict=True):
            tasks.append(asyncio.create_task(self._stage_task(index, stage, step,
                                                              outputs[index])))
            step += 1 + len(stage.instructions)
        image_id: str | None = None
        try:
            for index, task in zip(indexes, tasks, strict=True):
                output = outputs[index]
                while output.chunks:
                    await self.emit({"stream": output.chunks.pop(0)})
                output.live = True
                image_id = await task
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return image_id

    async def _stage_task(self, index: int, stage: Stage, step: int,
                          output: _StageOutput) -> str | None:
        _OUTPUT.set(output)
        done = self.done[index]
        try:
            image_id = await self._stage(index, stage, self.meta, step)
        except BaseException as err:
            if not done.done():
                done.set_exception(err if isinstance(err, Exception)
                                   else InvalidParameter("the stage was cancelled"))
                done.exception()  # retrieved: the stages waiting on it get it
            raise
        done.set_result(image_id)
        return image_id

    async def _stage_image(self, index: int) -> str | None:
        """The image stage ``index`` makes, once it is made."""
        return await asyncio.shield(self.done[index])

    async def _stage(self, index: int, stage: Stage, meta: dict[str, str | None],
                     step: int) -> str | None:
        step += 1
        await self.say(f"Step {step}/{self.total} : FROM {stage_text(stage)}\n")
        state = await self._from(index, stage, meta)
        state.index = index
        # moby's setDefaultPath: every stage has a PATH.
        if "PATH" not in instructions.env_map(state.config):
            state.config["Env"] = [*(state.config.get("Env") or ()), "PATH=" + DEFAULT_PATH]
        await self.say(f" ---> {short_id(state.image_id) if state.image_id else ''}\n"
                       if state.image_id else "")
        triggers = list(state.config.get("OnBuild") or [])
        if triggers:
            state.config["OnBuild"] = None
            await self.say(f"# Executing {len(triggers)} build trigger"
                           f"{'s' if len(triggers) > 1 else ''}\n")
            for trigger in triggers:
                inst = parse("FROM scratch\n" + trigger).stages[0].instructions[0]
                await self._instruction(state, inst, announce=False)
            await self._commit(state, None, "", label=None)
        for inst in stage.instructions:
            step += 1
            await self.say(f"Step {step}/{self.total} : {inst.original}\n")
            await self._instruction(state, inst, announce=True)
        return state.image_id

    async def _from(self, index: int, stage: Stage, meta: dict[str, str | None]) -> _State:
        known = {k: v for k, v in meta.items() if v is not None}
        base = process_word(stage.base, known, self.escape)
        platform = process_word(stage.platform, known, self.escape) if stage.platform else ""
        if platform and platform not in host_platforms():
            raise InvalidParameter(f"image with reference {base} was found but does not "
                                   f"match the specified platform: wanted {platform}, "
                                   f"actual: linux/{image_config.host_architecture()}")
        if base == "scratch":
            return _State(None, {})
        earlier = _stage_index(self.dockerfile.stages, base.lower(), index) \
            if self.dockerfile and not base.isdigit() else None
        if earlier is not None:
            image_id = await self._stage_image(earlier)
            config = self.images.config(image_id)["config"] if image_id else {}
            return _State(image_id, copy.deepcopy(dict(config or {})))
        image = await self._base_image(base)
        return _State(image.id, copy.deepcopy(dict(image.config.get("config") or {})))

    async def _base_image(self, name: str) -> Any:
        if not self.request.pull:
            try:
                return await asyncio.to_thread(self.images.resolve, name)
            except NotFound:
                pass
        await self.pull(name)
        return await asyncio.to_thread(self.images.resolve, name)

    async def pull(self, name: str) -> None:
        from moorage.image.reference import parse_normalized
        from moorage.model.distribution import AuthConfig, PullRequest

        ref = parse_normalized(name)
        messages: list[Any] = []
        request = PullRequest(ref.name, ref.tag or ref.digest or "latest", "", AuthConfig())
        await self.images.pull_image(request, messages.append)
        for message in messages:
            text = getattr(message, "error", None) or (
                message.get("error") if isinstance(message, dict) else None)
            if text:
                raise NotFound(str(text))

    # --- instructions ------------------------------------------------------------------

    async def _instruction(self, state: _State, inst: Instruction, *, announce: bool) -> None:
        name = inst.name
        env = state.env()
        esc = self.escape
        config = state.config
        if name == "run":
            await self._run(state, inst)
            return
        if name in ("copy", "add"):
            await self._copy(state, inst)
            return
        if name == "workdir":
            path = instructions.workdir(config, inst, env, esc)
            # dockerd makes WORKDIR's folder in a container (ContainerCreateWorkdir).
            await self._filesystem_step(state, f"WORKDIR {path}", ("workdir", path),
                                        lambda rootfs: _mkdir(rootfs, path), in_container=True)
            return
        if name == "arg":
            parts = []
            for arg, default in self._arg_items(inst, env):
                self.used_args.add(arg)
                given = self.request.build_args.get(arg)
                if default is None:
                    # A global ARG's value, redeclared; BuildKit's platform ARGs have theirs.
                    default = self.meta.get(arg) if arg in self.meta else \
                        platform_args().get(arg)
                state.args[arg] = given if given is not None else default
                parts.append(arg if default is None else f"{arg}={default}")
            await self._commit(state, inst, "ARG " + " ".join(parts))
            return
        if name == "env":
            comment = instructions.apply_env(config, instructions.pairs(inst, env, esc))
        elif name == "label":
            comment = instructions.apply_label(config, instructions.pairs(inst, env, esc))
        elif name == "cmd":
            comment = instructions.apply_cmd(config, inst, state.shell)
            state.cmd_set = True
        elif name == "entrypoint":
            comment = instructions.apply_entrypoint(config, inst, state.shell, state.cmd_set)
        elif name == "expose":
            comment = instructions.apply_expose(config, inst, env, esc)
        elif name == "volume":
            comment = instructions.apply_volume(config, inst, env, esc)
        elif name == "user":
            config["User"] = process_word(inst.args, env, esc)
            comment = f"USER {config['User']}"
        elif name == "shell":
            comment = instructions.apply_shell(config, inst)
        elif name == "stopsignal":
            comment = instructions.apply_stopsignal(config, inst, env, esc)
        elif name == "healthcheck":
            comment = instructions.apply_healthcheck(config, inst)
        elif name == "onbuild":
            comment = instructions.apply_onbuild(config, inst)
        elif name == "maintainer":
            state.author = process_word(inst.args, env, esc)
            comment = f"MAINTAINER {state.author}"
        else:  # the parser knows no other instruction
            raise error(inst.line, f"unknown instruction: {name.upper()}")
        await self._commit(state, inst, comment)

    async def _commit(self, state: _State, inst: Instruction | None, comment: str, *,
                      label: str | None = "") -> None:
        """A step that changes only the config: an image with no new layer."""
        # dockerd's Cmd of a config step: the comment as two arguments (withCmdComment).
        nop = [*state.shell, "#(nop) ", comment]
        created_by = " ".join(nop)
        key = self.cache.key(state.image_id, created_by, state.config, state.author)
        image_id = await self._cached(key)
        if image_id is None:
            # dockerd makes (and removes) a container for the step: its id is recorded.
            container = secrets.token_hex(32)
            image_id = await asyncio.to_thread(
                commit_child, self.images, state.image_id,
                ChildImage(config=step_config(state.config, state.image_id),
                           created_by=created_by, author=state.author, container=container,
                           container_config=comment_config(state.config, nop,
                                                           state.image_id, container)))
            await asyncio.to_thread(self.cache.put, key, image_id)
        state.image_id = image_id
        if label is not None:
            await self.say(f" ---> {short_id(image_id)}\n")

    async def _cached(self, key: str) -> str | None:
        if self.request.no_cache:
            return None
        image_id = await asyncio.to_thread(self.cache.get, key, self.images)
        if image_id is not None:
            await self.say(" ---> Using cache\n")
        return image_id

    async def _filesystem_step(self, state: _State, comment: str, identity: Any,
                               change: Callable[[str], None], *,
                               in_container: bool = False) -> None:
        # WORKDIR, COPY and ADD keep the comment as one argument (withCmdCommentString).
        nop = [*state.shell, "#(nop) " + comment]
        key = self.cache.key(state.image_id, " ".join(nop), state.config, identity)
        image_id = await self._cached(key)
        if image_id is None:
            image_id = await asyncio.to_thread(self._change_and_commit, state, nop, change,
                                               secrets.token_hex(32) if in_container else "")
            await asyncio.to_thread(self.cache.put, key, image_id)
        state.image_id = image_id
        await self.say(f" ---> {short_id(image_id)}\n")

    def _change_and_commit(self, state: _State, nop: list[str],
                           change: Callable[[str], None], container: str) -> str:
        """`container`: the id of the one dockerd would make the change in ("" for none)."""
        with mounted(self.images, self.work_root, state.image_id) as workspace:
            change(workspace.rootfs)
            settle_times(workspace.upper, workspace.lowers)
            return commit_child(self.images, state.image_id, ChildImage(
                config=step_config(state.config, state.image_id), created_by=" ".join(nop),
                upper=workspace.upper, author=state.author, container=container,
                container_config=comment_config(state.config, nop, state.image_id,
                                                container)))

    # --- COPY and ADD ------------------------------------------------------------------

    async def _copy(self, state: _State, inst: Instruction) -> None:
        verb = inst.name.upper()
        env = state.env()
        words = inst.json_args()
        if words is None:
            words = process_words(inst.args, env, self.escape)
        else:
            words = [process_word(w, env, self.escape) for w in words]
        fetched = tempfile.mkdtemp(prefix="add-", dir=self.work_root)
        if len(words) < 2:
            raise InvalidParameter(f"{verb} requires at least two arguments, but only one "
                                   "was provided. Destination could not be determined.")
        *sources, dest = words
        sources = [self._heredoc_file(inst, s, state, fetched) if s.startswith("<<") else s
                   for s in sources] if inst.heredocs else sources
        workdir = state.config.get("WorkingDir") or "/"
        keep_slash = dest.endswith("/") or dest.endswith("/.") or dest == "."
        dest = posixpath.normpath(posixpath.join(workdir, dest)) + ("/" if keep_slash else "")
        dest = dest.replace("//", "/")
        source_from = inst.flags.get("from", "")
        chown = process_word(inst.flags.get("chown", ""), env, self.escape)
        chmod = process_word(inst.flags.get("chmod", ""), env, self.escape)
        mode = copier.parse_mode(chmod) if chmod else None
        try:
            await self._copy_from(state, verb, sources, dest, source_from, chown, mode,
                                  fetched)
        finally:
            await asyncio.to_thread(_rmtree, fetched)

    def _heredoc_file(self, inst: Instruction, word: str, state: _State, directory: str) -> str:
        """A ``<<NAME`` source: the heredoc's body as a file of the build's own (0644)."""
        name = word.lstrip("<-").strip("\"'")
        doc = next(h for h in inst.heredocs if h.name == name)
        body = process_word(doc.body, state.env(), self.escape) if doc.expand else doc.body
        path = os.path.join(directory, "heredocs", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(body)
        os.chmod(path, 0o644)
        return path

    async def _copy_from(self, state: _State, verb: str, sources: list[str], dest: str,
                         source_from: str, chown: str, mode: int | None, fetched: str) -> None:
        local = [s for s in sources if not _is_url(s) and not s.startswith(fetched)]
        urls = [s for s in sources if _is_url(s)]
        if urls and verb == "COPY":
            raise InvalidParameter("source can't be a URL for COPY")
        if source_from:
            image_id = await self._from_image(source_from, state.index)
            with contextlib.ExitStack() as stack:
                other = await asyncio.to_thread(
                    stack.enter_context, mounted(self.images, self.work_root, image_id))
                try:
                    paths = await asyncio.to_thread(copier.resolve_sources, other.rootfs,
                                                    local, verb)
                    await self._copy_paths(state, verb, paths, dest, chown, mode,
                                           extract=False, origin=f"from {source_from}")
                finally:
                    await asyncio.to_thread(stack.close)
            return
        paths = await asyncio.to_thread(copier.resolve_sources, self.context.root, local, verb)
        paths += [copier.Source.of(s) for s in sources if s.startswith(fetched)]
        for url in urls:
            paths.append(copier.Source.of(await asyncio.to_thread(copier.fetch, url, fetched)))
        await self._copy_paths(state, verb, paths, dest, chown, mode, extract=verb == "ADD",
                               origin="")

    async def _copy_paths(self, state: _State, verb: str, paths: list[copier.Source],
                          dest: str, chown: str, mode: int | None, *, extract: bool,
                          origin: str) -> None:
        digest = await asyncio.to_thread(copier.content_hash, paths,
                                         {} if origin else self.context.digests)
        kind = "multi" if len(paths) > 1 else ("dir" if os.path.isdir(paths[0].path)
                                                and not os.path.islink(paths[0].path)
                                                else "file")
        comment = f"{verb} {kind}:{digest} in {dest} "

        def change(rootfs: str) -> None:
            uid, gid = (0, 0)
            if chown:
                uid, gid, _ = resolve_user(rootfs, chown, ())
            copier.copy_into(rootfs, copier.CopySpec(verb, [], dest, uid, gid, extract, mode),
                             paths)

        await self._filesystem_step(state, comment, (digest, chown, mode, origin), change)

    async def _from_image(self, name: str, current: int) -> str | None:
        earlier = _stage_index(self.dockerfile.stages, name.lower(), current) \
            if self.dockerfile else None
        if earlier is not None:
            return await self._stage_image(earlier)
        if name.isdigit():
            raise InvalidParameter(f"invalid from flag value {name}: refers to current "
                                   "build stage")
        try:
            return (await self._base_image(name)).id  # type: ignore[no-any-return]
        except MoorError as err:
            raise InvalidParameter(f"invalid from flag value {name}: {err}") from None

    # --- RUN ---------------------------------------------------------------------------

    async def _run(self, state: _State, inst: Instruction) -> None:
        if state.image_id is None:
            raise InvalidParameter("RUN needs a filesystem to run in: the stage is FROM "
                                   "scratch and has no files yet")
        cmd = run_command(inst, state.shell)
        stages = {name: await self._from_image(name, state.index) for name in bind_stages(inst)}
        bound = await asyncio.to_thread(
            lambda: [copier.content_hash([copier.Source.of(path)], self.context.digests)
                     for path in bound_context(inst, self.context.root)])
        network = run_network(inst)
        declared = {k: v for k, v in state.args.items() if v is not None}
        overridden = set(instructions.env_map(state.config))
        build_env = {k: v for k, v in sorted(declared.items()) if k not in overridden}
        for name in _BUILTIN_ARGS:
            if self.request.build_args.get(name) is not None:
                build_env.setdefault(name, self.request.build_args[name] or "")
        # dockerd records the build args the step saw ahead of its command (prependEnvOnCmd).
        recorded = [f"|{len(build_env)}", *(f"{k}={v}" for k, v in build_env.items()), *cmd] \
            if build_env else cmd
        created_by = " ".join(recorded)
        key = self.cache.key(state.image_id, created_by, state.config,
                             ["run", inst.flags.get("mount", ""), network, stages, bound])
        image_id = await self._cached(key)
        if image_id is None:
            assert state.image_id is not None
            with contextlib.ExitStack() as views:
                try:
                    # The stages bind mounts read from, each mounted for this step only.
                    roots = {name: (await asyncio.to_thread(views.enter_context, mounted(
                        self.images, self.work_root, image))).rootfs
                        for name, image in stages.items()}
                    scratch = tempfile.mkdtemp(prefix="run-", dir=self.work_root)
                    views.callback(shutil.rmtree, scratch, ignore_errors=True)
                    mounts = await asyncio.to_thread(run_mounts, inst, self.context.root,
                                                     self.cache_mounts, roots, scratch)
                    image_id = await run_container(RunStep(
                        self.images, self.containers, self.request, self.say, state.image_id,
                        step_config(state.config, state.image_id), state.author, cmd,
                        build_env, created_by, mounts,
                        comment_config(state.config, recorded, state.image_id),
                        network))
                finally:
                    await asyncio.to_thread(views.close)
            await asyncio.to_thread(self.cache.put, key, image_id)
        state.image_id = image_id
        await self.say(f" ---> {short_id(image_id)}\n")


def _stage_index(stages: list[Stage], ref: str, before: int) -> int | None:
    """The earlier stage ``ref`` names (a name or an index), None for an image."""
    if ref.isdigit():
        return int(ref) if int(ref) < before else None
    for index, stage in enumerate(stages[:before]):
        if stage.name and stage.name == ref:
            return index
    return None


def stage_text(stage: Stage) -> str:
    text = stage.base
    if stage.platform:
        text = f"--platform={stage.platform} {text}"
    return f"{text} AS {stage.name}" if stage.name else text


def host_platforms() -> set[str]:
    arch = image_config.host_architecture()
    return {f"linux/{arch}", "linux", arch}


def platform_args() -> dict[str, str]:
    """The values BuildKit gives its platform ARGs when a Dockerfile declares them
    without a default: the host's platform, built for and built on."""
    arch = image_config.host_architecture()
    values = {"PLATFORM": f"linux/{arch}", "OS": "linux", "ARCH": arch, "VARIANT": ""}
    return {prefix + key: value for prefix in ("TARGET", "BUILD")
            for key, value in values.items()}


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _rmtree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _mkdir(rootfs: str, path: str) -> None:
    # dockerd 20.10's classic builder makes it root's, whatever USER says; the epoch as
    # its time keeps the layer the same from one build to the next.
    for directory in copier.make_dirs(rootfs, path, 0, 0):
        os.utime(directory, (0, 0))


