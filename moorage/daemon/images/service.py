"""The image service: the store's images as Docker shows them, how they go away,
and the writable layers containers run on.

It builds on the image store (store.py) and implements the Protocol the image
routes need (moorage.api.images.backend.ImageBackend) with the models of
moorage.model.image; registries are in distribution.py, import, load and save
in transfer.py, the store check in check.py. The container service calls
``resolve``, ``prepare_rootfs`` and ``remove_rootfs``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO, Self

from moorage.daemon.events.bus import EventBus
from moorage.daemon.images import check, transfer
from moorage.daemon.images import filters as image_filters
from moorage.daemon.images.distribution import Distribution, Emit, pull_reference
from moorage.daemon.images.store import ImageStore, familiar
from moorage.distribution.mirrors import RegistryConfig
from moorage.errors import Conflict, InvalidParameter, NotFound
from moorage.image import config as image_config
from moorage.image.reference import Reference, parse_normalized
from moorage.model.distribution import AuthConfig, DistributionInspect, PullRequest, PushRequest
from moorage.model.image import (
    CheckReport,
    DeleteItem,
    HistoryItem,
    ImageDetail,
    ImageSummary,
    ImportRequest,
    PruneReport,
)
from moorage.protocol.stringid import short_id
from moorage.store.metadata import DOCKER_NAMESPACE, NAMESPACES, Metadata, RefRecord
from moorage.store.snapshots import Mount

_NO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True, slots=True)
class ResolvedImage:
    """What a container needs of its image to create it."""

    id: str  # "sha256:<hex>", the config digest
    config: dict[str, Any]  # the image config JSON; its "config" has Env, Cmd, Entrypoint…
    repo_tags: list[str]


class ImageService(ImageStore):
    def __init__(self, data_root: str, registry: RegistryConfig | None = None,
                 metadata: Metadata | None = None, events: EventBus | None = None) -> None:
        super().__init__(data_root, metadata)
        self.events = events or EventBus()
        self.distribution = Distribution(self, registry or RegistryConfig())
        # The image namespace of a lease's holder (the engine tells its containers
        # apart): a removal minds only the containers of its own namespace.
        self.holder_namespace: Callable[[str], str] = lambda holder: DOCKER_NAMESPACE
        check.reconcile(self)

    def namespaced(self, namespace: str) -> Self:
        """The service over another namespace's images (the CRI's k8s.io): its pulls,
        tags and removals are its own, and so are its events (``docker events`` does not
        show them, as containerd keeps a namespace's events in it)."""
        view = super().namespaced(namespace)
        view.events = EventBus()
        view.distribution = Distribution(view, self.distribution.registry)
        return view

    # --- for the container service ------------------------------------------------

    def resolve(self, name: str) -> ResolvedImage:
        """The image ``name`` (reference, ID or unambiguous ID prefix) names.

        Raises NotFound ("No such image: <name>") or InvalidParameter (a
        malformed reference). Reads only (disk I/O: run it in a thread). The
        Docker API's containers still find, by full ID, an image removed by force
        that others use; another namespace's view finds only its own images.
        """
        record = self.lookup(name, retained=self.namespace == DOCKER_NAMESPACE)
        return ResolvedImage(record.id, self.config(record.id), self.repo_tags(record.id))

    def prepare_rootfs(self, container_id: str, image_id: str,
                       init: bool = False) -> list[Mount]:
        """The writable layer of ``container_id`` on image ``image_id`` (a full ID; an
        image removed by force that the container holds is still found), on the init
        layer when ``init`` (a Docker container's, not a CRI one's), and the mounts
        that assemble its root filesystem; the caller mounts them. The
        container leases the image, so it cannot be removed (Conflict) or pruned
        until ``remove_rootfs``. Idempotent: a second call returns the same layer.
        NotFound when the image is gone. Blocking."""
        with self.lock:
            existing = self.metadata.active_snapshot(container_id)
            if existing is not None:
                return self.snapshots.mounts(existing)
            record = self.lookup(image_id, retained=True)
            self.leases.acquire(container_id, record.id)
            try:
                return self.snapshots.prepare(container_id, record.top_chain, init)
            except BaseException:
                self.leases.release(container_id)
                raise

    def prepare_layer(self, key: str, image_id: str | None) -> list[Mount]:
        """``prepare_rootfs`` for a build step, whose base may be scratch (None)."""
        if image_id is not None:
            return self.prepare_rootfs(key, image_id)
        with self.lock:
            return self.snapshots.prepare(key, None)

    def rootfs_mounts(self, container_id: str) -> list[Mount]:
        """The mounts of the writable layer ``prepare_rootfs`` made; NotFound without one."""
        return self.snapshots.mounts(self.snapshots.active(container_id))

    def remove_rootfs(self, container_id: str, *, later: bool = False) -> None:
        """Delete the container's writable layer (unmounted by the caller) and release
        its lease: an image removed by force goes now if nobody else holds it. With
        `later` the layer's files are only out of sight, deleted by `empty_trash`.
        Idempotent. Blocking."""
        with self.lock:
            self.snapshots.remove_active(container_id, later=later)
            released = self.metadata.lease_resources(container_id, "image")
            self.leases.release(container_id)
            if any(self._retained_and_free(image_id) for image_id in released):
                self.collect_garbage()

    def discard(self, path: str) -> None:
        """Put a folder of the data-root out of sight now, for `empty_trash` to delete."""
        self.snapshots.trash.discard(path)

    def empty_trash(self) -> None:
        """Delete what `discard` and `remove_rootfs(later=True)` put aside. Blocking."""
        self.snapshots.trash.empty()

    def _retained_and_free(self, image_id: str) -> bool:
        record = self.metadata.image(image_id)
        return record is not None and record.retained and not self.leases.holders(image_id)

    def count(self) -> int:
        return self.metadata.count_images(self.namespace)

    # --- list, inspect, history ---------------------------------------------------------

    def images(self, filters: dict[str, list[str]], all_images: bool) -> list[ImageSummary]:
        selector = image_filters.list_selector(filters, self.lookup)
        summaries = []
        for record in self.metadata.images(self.namespace):
            refs = self.refs(record.id)
            # moby's Images: an untagged image that others were built on (a build's
            # intermediate step) shows with --all only.
            if not all_images and not refs and self.metadata.children(
                    record.id, namespace=self.namespace):
                continue
            config = self.config(record.id)
            if not selector(record, refs, config):
                continue
            names = [(familiar(r.ref), r.is_digest) for r in refs]
            if "reference" in filters:
                # moby lists only the tags and digests that matched the pattern: a digest
                # of another repository would show as a row of its own, tagged <none>.
                names = [(name, is_digest) for name, is_digest in names
                         if image_filters.reference_matches(filters["reference"], name)]
            summaries.append(ImageSummary(
                id=record.id, parent_id=record.parent,
                repo_tags=tuple(sorted(name for name, is_digest in names if not is_digest)),
                repo_digests=tuple(sorted(name for name, is_digest in names if is_digest)),
                created=int(record.created), size=record.size,
                labels=(config.get("config") or {}).get("Labels")))
        return summaries

    def image_inspect(self, name: str) -> ImageDetail:
        record = self.lookup(name)
        config = self.config(record.id)
        layers = self.metadata.layers(record.id)
        graph: dict[str, str] = {}
        if layers:
            dirs = self.snapshots.lower_dirs(layers[-1].chain_id)
            top = self.snapshots.dir_of(layers[-1].chain_id)
            graph = {"MergedDir": os.path.join(top, "merged"), "UpperDir": dirs[0],
                     "WorkDir": os.path.join(top, "work")}
            if len(dirs) > 1:
                graph["LowerDir"] = ":".join(dirs[1:])
        return ImageDetail(
            id=record.id, repo_tags=tuple(self.repo_tags(record.id)),
            repo_digests=tuple(self.repo_digests(record.id)), parent=record.parent,
            comment=config.get("comment", ""), created=config.get("created", _NO_TIME),
            container=config.get("container", ""),
            container_config=image_config.container_config(config.get("container_config")),
            docker_version=config.get("docker_version", ""), author=config.get("author", ""),
            config=image_config.container_config(config.get("config")),
            architecture=config.get("architecture", ""), variant=config.get("variant", ""),
            os=config.get("os", ""), os_version=config.get("os.version", ""),
            size=record.size, graph_driver_data=graph,
            layers=tuple(image_config.diff_ids(config)),
            last_tag_time=record.last_tag_time or _NO_TIME)

    def image_history(self, name: str) -> list[HistoryItem]:
        """moby's ImageHistory: one entry per history item, the layers' sizes on the
        non-empty ones, the image's ID and tags on the newest only."""
        record = self.lookup(name)
        config = self.config(record.id)
        layers = self.metadata.layers(record.id)
        sizes = [self._layer_size(lay.chain_id) for lay in layers]
        history = config.get("history") or [{}] * len(layers)
        items: list[HistoryItem] = []
        layer = 0
        for entry in history:
            size = 0
            if not entry.get("empty_layer") and layer < len(sizes):
                size, layer = sizes[layer], layer + 1
            items.append(HistoryItem(
                id="<missing>", created=int(image_config.parse_time(entry.get("created", ""))),
                created_by=entry.get("created_by", ""), tags=(), size=size,
                comment=entry.get("comment", "")))
        items.reverse()
        # moby's ImageHistory: the newest entries get the IDs and tags of the image and
        # of its parents (commits and builds record them), as far as the chain is local.
        image_id: str | None = record.id
        for index, item in enumerate(items):
            if not image_id:
                break
            items[index] = HistoryItem(image_id, item.created, item.created_by,
                                       tuple(self.repo_tags(image_id)), item.size,
                                       item.comment)
            parent = self.metadata.image(image_id)
            image_id = parent.parent if parent is not None else None
            if image_id and self.metadata.image(image_id) is None:
                break
        return items

    def _layer_size(self, chain_id: str) -> int:
        snapshot = self.metadata.snapshot(chain_id)
        return snapshot.size if snapshot else 0

    # --- tag and delete ------------------------------------------------------------------

    def tag_image(self, name: str, repo: str, tag: str) -> None:
        record = self.lookup(name)
        ref = transfer.tag_target(repo, tag)
        self.add_tag(ref, record.id)
        self.events.publish("image", "tag", record.id, {"name": ref.familiar_string()})

    def image_delete(self, name: str, force: bool, prune: bool) -> list[DeleteItem]:
        """moby daemon/images/image_delete.go ImageDelete, conflict rules included."""
        image_id = self.lookup(name).id
        records = self._image_delete(name, force, prune)
        for item in records:  # dockerd names the image by its id in both
            if item.untagged:
                self.events.publish("image", "untag", image_id, {"name": image_id})
            else:
                self.events.publish("image", "delete", item.deleted, {"name": item.deleted})
        return records

    def _image_delete(self, name: str, force: bool, prune: bool) -> list[DeleteItem]:
        with self.lock:
            record = self.lookup(name)
            refs = self.refs(record.id)
            records: list[DeleteItem] = []
            quiet = False
            if not _is_id_prefix(record.id, name):
                users = self._users(record.id)
                if not force and _single_reference(refs) and users:
                    raise Conflict(
                        f'conflict: unable to remove repository reference "{name}" (must '
                        f"force) - container {short_id(users[0])} is using its referenced "
                        f"image {short_id(record.id)}")
                removed = self._untag(name, records)
                refs = self.refs(record.id)
                if not removed.digest and not any(
                        not r.is_digest and parse_normalized(r.ref).name == removed.name
                        for r in refs):
                    # No tag of that repository is left: its digests go too.
                    for r in refs:
                        if r.is_digest and parse_normalized(r.ref).name == removed.name:
                            self.delete_ref(r.ref)
                            records.append(DeleteItem(untagged=familiar(r.ref)))
                if self.refs(record.id):
                    # The image stays; a manifest only the digests removed named goes
                    # (pulled by two names in two formats, it has one manifest each).
                    self.collect_garbage()
                    return records
                quiet = True
            elif _single_reference(refs):
                self._check_conflict(record.id, force, check_refs=False)
                for r in refs:
                    self.delete_ref(r.ref)
                    records.append(DeleteItem(untagged=familiar(r.ref)))
            self._delete_helper(record.id, records, force, prune, quiet)
            return records

    def _untag(self, name: str, records: list[DeleteItem]) -> Reference:
        ref = parse_normalized(name).with_default_tag()
        if ref.tag is not None and ref.digest is not None:
            ref = Reference(ref.domain, ref.path, None, ref.digest)
        if not self.delete_ref(str(ref)):
            raise NotFound(f"No such image: {ref.familiar_string()}")
        records.append(DeleteItem(untagged=ref.familiar_string()))
        return ref

    def _check_conflict(self, image_id: str, force: bool, *, check_refs: bool) -> None:
        """Raise Conflict as moby's checkImageDeleteConflict would."""
        if self.metadata.children(image_id, namespace=self.namespace):
            raise Conflict(f"conflict: unable to delete {short_id(image_id)} (cannot be "
                           "forced) - image has dependent child images")
        if force:
            return
        if check_refs and self.refs(image_id):
            raise Conflict(f"conflict: unable to delete {short_id(image_id)} (must be "
                           "forced) - image is referenced in multiple repositories")
        users = self._users(image_id)
        if users:
            raise Conflict(f"conflict: unable to delete {short_id(image_id)} (must be "
                           f"forced) - image is being used by stopped container "
                           f"{short_id(users[0])}")

    def _users(self, image_id: str) -> list[str]:
        """The containers a removal from this namespace must mind: its own, as the CRI's
        containers use the CRI's reference to the image, not the Docker API's."""
        return [h for h in self.leases.holders(image_id)
                if self.holder_namespace(h) == self.namespace]

    def _delete_helper(self, image_id: str, records: list[DeleteItem], force: bool,
                       prune: bool, quiet: bool) -> None:
        try:
            self._check_conflict(image_id, force, check_refs=True)
        except Conflict:
            dangling = not self.refs(image_id)
            if quiet and (not dangling or self._users(image_id)):
                return
            raise
        record = self.metadata.image(image_id)
        for r in self.refs(image_id):
            self.delete_ref(r.ref)
            records.append(DeleteItem(untagged=familiar(r.ref)))
        # Forced while containers use it: hidden now, removed once they are gone, as
        # Docker keeps the layers its containers' read-write layers sit on. Another
        # namespace's image stays too, but is gone from this one's view.
        gone = self.drop_image(image_id)
        records.append(DeleteItem(deleted=image_id))
        if not gone:
            return
        records.extend(DeleteItem(deleted=c) for c in self.collect_garbage())
        if prune and record is not None and record.parent:
            parent = self.metadata.image(record.parent)
            if parent is not None and not parent.retained:
                self._delete_helper(parent.id, records, False, True, True)

    def images_prune(self, filters: dict[str, list[str]]) -> PruneReport:
        selector = image_filters.prune_selector(filters)
        deleted: list[DeleteItem] = []
        before = self._snapshot_bytes()
        with self.lock:
            for record in self.metadata.images(self.namespace):
                refs = self.refs(record.id)
                if not selector(record, refs, self.config(record.id)):
                    continue
                if self._users(record.id) or self.metadata.children(
                        record.id, namespace=self.namespace):
                    continue
                for r in refs:
                    self.delete_ref(r.ref)
                    deleted.append(DeleteItem(untagged=familiar(r.ref)))
                self.drop_image(record.id)
                deleted.append(DeleteItem(deleted=record.id))
                deleted.extend(DeleteItem(deleted=c) for c in self.collect_garbage())
        return PruneReport(tuple(deleted), max(0, before - self._snapshot_bytes()))

    def _snapshot_bytes(self) -> int:
        return sum(s.size for s in self.metadata.snapshots())

    # --- transfer and check (other modules) ------------------------------------------------

    def load_image(self, stream: BinaryIO, namespace: str = "",
                   progress: transfer.LayerProgress | None = None) -> list[str]:
        if namespace and namespace != self.namespace:
            if namespace not in NAMESPACES:
                raise InvalidParameter(f"unknown image namespace {namespace!r}: "
                                       f"one of {', '.join(NAMESPACES)}")
            return self.namespaced(namespace).load_image(stream, progress=progress)
        lines = transfer.load(self, stream, progress)
        for line in lines:
            for prefix in ("Loaded image ID: ", "Loaded image: "):
                if line.startswith(prefix):
                    image_id = self.lookup(line[len(prefix):]).id
                    self.events.publish("image", "load", image_id, {"name": image_id})
        return lines

    def export_image(self, names: list[str]) -> transfer.ImageArchive:
        archive = transfer.export(self, names)
        for name in names:
            image_id = self.lookup(name).id
            self.events.publish("image", "save", image_id, {"name": image_id})
        return archive

    def import_image(self, request: ImportRequest, body: BinaryIO | None) -> str:
        image_id = transfer.import_rootfs(self, request, body)
        if request.repo:  # dockerd tags first, then reports the import
            name = transfer.tag_target(request.repo, request.tag).familiar_string()
            self.events.publish("image", "tag", image_id, {"name": name})
        self.events.publish("image", "import", image_id, {"name": image_id})
        return image_id

    def store_check(self, repair: bool) -> CheckReport:
        return check.check(self, repair)

    # --- registries (distribution.py) --------------------------------------------------

    async def pull_image(self, request: PullRequest, emit: Emit) -> None:
        await self.distribution.pull_image(request, emit)
        name = pull_reference(request.from_image, request.tag).familiar_string()
        self.events.publish("image", "pull", name, {"name": name})

    async def push_image(self, request: PushRequest, emit: Emit) -> None:
        await self.distribution.push_image(request, emit)
        name = f"{request.name}:{request.tag}" if request.tag else request.name
        self.events.publish("image", "push", name, {"name": name})

    async def login(self, auth: AuthConfig) -> str:
        return await self.distribution.login(auth)

    async def distribution_inspect(self, name: str, auth: AuthConfig) -> DistributionInspect:
        return await self.distribution.distribution_inspect(name, auth)


def _is_id_prefix(image_id: str, name: str) -> bool:
    return image_id.startswith(name) or image_id.removeprefix("sha256:").startswith(name)


def _single_reference(refs: Iterable[RefRecord]) -> bool:
    """moby's isSingleReference: one tag, plus at most digests of the same repository."""
    refs = list(refs)
    if len(refs) <= 1:
        return len(refs) == 1
    tags = [r for r in refs if not r.is_digest]
    if len(tags) > 1:
        return False
    digest_names = {parse_normalized(r.ref).name for r in refs if r.is_digest}
    single = tags[0] if tags else refs[0]
    return len(digest_names) == 1 and parse_normalized(single.ref).name in digest_names
