"""The image service: the store's images as Docker shows them, and how they go away.

It owns the content store, the metadata and the snapshotter under the
data-root, and implements moorage.api.images.backend.ImageBackend; the
container service calls ``resolve``. Import, load and save live in
image_transfer.py, the store check in store_check.py.

Locking: ``lock`` serialises changes that must see a consistent store (adding
an image, deleting, collecting garbage); unpacking runs outside it, inside an
``operation`` that keeps the collector off blobs and snapshots meanwhile.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from moorage.api.distribution.backend import (
    AuthConfig,
    DistributionInspect,
    Emit,
    PullRequest,
    PushRequest,
)
from moorage.api.images.backend import (
    CheckReport,
    DeleteItem,
    HistoryItem,
    ImageDetail,
    ImageExport,
    ImageSummary,
    ImportRequest,
    PruneReport,
)
from moorage.daemon import image_distribution, image_filters, image_transfer, store_check
from moorage.distribution.auth import TokenCache
from moorage.distribution.mirrors import RegistryConfig
from moorage.errors import Conflict, NotFound
from moorage.image import config as image_config
from moorage.image.reference import Reference, parse_normalized
from moorage.store.content import ContentStore
from moorage.store.metadata import ImageRecord, Metadata, RefRecord
from moorage.store.snapshots import Snapshotter

_NO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True, slots=True)
class ResolvedImage:
    """What a container needs of its image."""

    id: str  # "sha256:<hex>", the config digest
    config: dict[str, Any]  # the image config JSON; its "config" has Env, Cmd, Entrypoint…
    lower_dirs: list[str]  # overlay lowerdirs, top layer first; empty for an image without layers
    repo_tags: list[str]


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def familiar(ref: str) -> str:
    return parse_normalized(ref).familiar_string()


class ImageService:
    def __init__(self, data_root: str, registry: RegistryConfig | None = None) -> None:
        self.data_root = data_root
        self.registry = registry or RegistryConfig()
        # Registry tokens outlive one pull: the next pull of the repository reuses them.
        self.tokens = TokenCache()
        self.tmp_dir = os.path.join(data_root, "tmp")
        os.makedirs(self.tmp_dir, mode=0o700, exist_ok=True)
        self.metadata = Metadata(os.path.join(data_root, "moor.db"))
        self.content = ContentStore(os.path.join(data_root, "content"), self.tmp_dir)
        self.snapshots = Snapshotter(os.path.join(data_root, "snapshots"), self.tmp_dir,
                                     self.metadata)
        self.lock = threading.RLock()
        self._operations = 0
        self._in_use: Callable[[str], list[str]] = lambda _image_id: []
        store_check.reconcile(self)

    # --- for the container service ------------------------------------------------

    def set_in_use_check(self, fn: Callable[[str], list[str]]) -> None:
        """``fn(image_id)`` lists the containers that use the image (409 on remove)."""
        self._in_use = fn

    def resolve(self, name: str) -> ResolvedImage:
        """The image ``name`` (reference, ID or unambiguous ID prefix) names.

        Raises NotFound ("No such image: <name>") or InvalidParameter (a
        malformed reference). Reads only; safe from any thread.
        """
        record = self.lookup(name, retained=True)
        config = self.config(record.id)
        lower = self.snapshots.lower_dirs(record.top_chain) if record.top_chain else []
        return ResolvedImage(record.id, config, lower, self.repo_tags(record.id))

    def count(self) -> int:
        return self.metadata.count_images()

    # --- lookups --------------------------------------------------------------------

    def lookup(self, name: str, *, retained: bool = False) -> ImageRecord:
        """moby's GetImage: a digest is an ID, a reference is looked up, then an ID prefix.

        With ``retained``, a full ID also finds an image removed by force that
        containers still use (they keep running on it, as with Docker)."""
        hex_part = name.removeprefix("sha256:")
        if len(hex_part) == 64 and all(c in "0123456789abcdef" for c in hex_part):
            record = self.metadata.image(f"sha256:{hex_part}")
            if record is None or (record.retained and not retained):
                raise NotFound(f"No such image: sha256:{hex_part}")
            return record
        ref = parse_normalized(name)
        tagged = ref.with_default_tag()
        if tagged.tag is not None and tagged.digest is not None:
            tagged = Reference(tagged.domain, tagged.path, None, tagged.digest)
        image_id = self.metadata.ref(str(tagged))
        if image_id is None and _could_be_id(hex_part):
            matches = self.metadata.image_ids_with_prefix(hex_part)
            if len(matches) == 1:
                image_id = matches[0]
        record = self.metadata.image(image_id) if image_id else None
        if record is None or record.retained:
            raise NotFound(f"No such image: {tagged.familiar_string()}")
        return record

    def config(self, image_id: str) -> dict[str, Any]:
        return image_config.decode(self.content.read(image_id), image_id)

    def repo_tags(self, image_id: str) -> list[str]:
        return sorted(familiar(r.ref) for r in self.metadata.refs(image_id) if not r.is_digest)

    def repo_digests(self, image_id: str) -> list[str]:
        return sorted(familiar(r.ref) for r in self.metadata.refs(image_id) if r.is_digest)

    # --- list, inspect, history ---------------------------------------------------------

    def images(self, filters: dict[str, list[str]], all_images: bool) -> list[ImageSummary]:
        selector = image_filters.list_selector(filters, self.lookup)
        summaries = []
        for record in self.metadata.images():
            refs = self.metadata.refs(record.id)
            config = self.config(record.id)
            if not selector(record, refs, config):
                continue
            tags = tuple(sorted(familiar(r.ref) for r in refs if not r.is_digest))
            if "reference" in filters:
                # Docker lists only the tags that matched the pattern.
                tags = tuple(t for t in tags if image_filters.reference_matches(
                    filters["reference"], t))
            summaries.append(ImageSummary(
                id=record.id, parent_id=record.parent, repo_tags=tags,
                repo_digests=tuple(sorted(familiar(r.ref) for r in refs if r.is_digest)),
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
        if items:
            items[0] = HistoryItem(record.id, items[0].created, items[0].created_by,
                                   tuple(self.repo_tags(record.id)), items[0].size,
                                   items[0].comment)
        return items

    def _layer_size(self, chain_id: str) -> int:
        snapshot = self.metadata.snapshot(chain_id)
        return snapshot.size if snapshot else 0

    # --- tag and delete ------------------------------------------------------------------

    def tag_image(self, name: str, repo: str, tag: str) -> None:
        record = self.lookup(name)
        ref = image_transfer.tag_target(repo, tag)
        self.metadata.set_ref(str(ref), record.id, tag_time=image_config.now_rfc3339())

    def add_tag(self, ref: Reference, image_id: str) -> str | None:
        return self.metadata.set_ref(str(ref), image_id, tag_time=image_config.now_rfc3339())

    def image_delete(self, name: str, force: bool, prune: bool) -> list[DeleteItem]:
        """moby daemon/images/image_delete.go ImageDelete, conflict rules included."""
        with self.lock:
            record = self.lookup(name)
            refs = self.metadata.refs(record.id)
            records: list[DeleteItem] = []
            quiet = False
            if not _is_id_prefix(record.id, name):
                users = self._in_use(record.id)
                if not force and _single_reference(refs) and users:
                    raise Conflict(
                        f'conflict: unable to remove repository reference "{name}" (must '
                        f"force) - container {short_id(users[0])} is using its referenced "
                        f"image {short_id(record.id)}")
                removed = self._untag(name, records)
                refs = self.metadata.refs(record.id)
                if not removed.digest and not any(
                        not r.is_digest and parse_normalized(r.ref).name == removed.name
                        for r in refs):
                    # No tag of that repository is left: its digests go too.
                    for r in refs:
                        if r.is_digest and parse_normalized(r.ref).name == removed.name:
                            self.metadata.delete_ref(r.ref)
                            records.append(DeleteItem(untagged=familiar(r.ref)))
                if self.metadata.refs(record.id):
                    return records
                quiet = True
            elif _single_reference(refs):
                self._check_conflict(record.id, force, check_refs=False)
                for r in refs:
                    self.metadata.delete_ref(r.ref)
                    records.append(DeleteItem(untagged=familiar(r.ref)))
            self._delete_helper(record.id, records, force, prune, quiet)
            return records

    def _untag(self, name: str, records: list[DeleteItem]) -> Reference:
        ref = parse_normalized(name).with_default_tag()
        if ref.tag is not None and ref.digest is not None:
            ref = Reference(ref.domain, ref.path, None, ref.digest)
        if not self.metadata.delete_ref(str(ref)):
            raise NotFound(f"No such image: {ref.familiar_string()}")
        records.append(DeleteItem(untagged=ref.familiar_string()))
        return ref

    def _check_conflict(self, image_id: str, force: bool, *, check_refs: bool) -> None:
        """Raise Conflict as moby's checkImageDeleteConflict would."""
        if self.metadata.children(image_id):
            raise Conflict(f"conflict: unable to delete {short_id(image_id)} (cannot be "
                           "forced) - image has dependent child images")
        if force:
            return
        if check_refs and self.metadata.refs(image_id):
            raise Conflict(f"conflict: unable to delete {short_id(image_id)} (must be "
                           "forced) - image is referenced in multiple repositories")
        users = self._in_use(image_id)
        if users:
            raise Conflict(f"conflict: unable to delete {short_id(image_id)} (must be "
                           f"forced) - image is being used by stopped container "
                           f"{short_id(users[0])}")

    def _delete_helper(self, image_id: str, records: list[DeleteItem], force: bool,
                       prune: bool, quiet: bool) -> None:
        try:
            self._check_conflict(image_id, force, check_refs=True)
        except Conflict:
            dangling = not self.metadata.refs(image_id)
            if quiet and (not dangling or self._in_use(image_id)):
                return
            raise
        record = self.metadata.image(image_id)
        for r in self.metadata.refs(image_id):
            self.metadata.delete_ref(r.ref)
            records.append(DeleteItem(untagged=familiar(r.ref)))
        if self._in_use(image_id):
            # Forced while containers use it: hidden now, removed once they are gone,
            # as Docker keeps the layers its containers' read-write layers sit on.
            self.metadata.set_retained(image_id)
            records.append(DeleteItem(deleted=image_id))
            return
        self.metadata.delete_image(image_id)
        records.append(DeleteItem(deleted=image_id))
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
            for record in self.metadata.images():
                refs = self.metadata.refs(record.id)
                if not selector(record, refs, self.config(record.id)):
                    continue
                if self._in_use(record.id) or self.metadata.children(record.id):
                    continue
                for r in refs:
                    self.metadata.delete_ref(r.ref)
                    deleted.append(DeleteItem(untagged=familiar(r.ref)))
                self.metadata.delete_image(record.id)
                deleted.append(DeleteItem(deleted=record.id))
                deleted.extend(DeleteItem(deleted=c) for c in self.collect_garbage())
        return PruneReport(tuple(deleted), max(0, before - self._snapshot_bytes()))

    def _snapshot_bytes(self) -> int:
        return sum(s.size for s in self.metadata.snapshots())

    # --- garbage ---------------------------------------------------------------------

    @contextmanager
    def operation(self) -> Iterator[None]:
        """Mark an import or load in flight: until it ends, collect_garbage leaves
        blobs and snapshots alone, since they may not have their image row yet."""
        with self.lock:
            self._operations += 1
        try:
            yield
        finally:
            with self.lock:
                self._operations -= 1

    def busy(self) -> bool:
        return self._operations > 0

    def collect_garbage(self) -> list[str]:
        """Drop retained images nobody uses any more, then the snapshots and blobs no
        image needs; returns the chain IDs of the snapshots removed (Docker reports
        them as deleted layers), top first. Sweeps nothing while an operation is
        in flight: what it has made may not have its image row yet."""
        with self.lock:
            for record in self.metadata.images(retained=True):
                if record.retained and not self._in_use(record.id):
                    self.metadata.delete_image(record.id)
            if self.busy():
                return []
            chains = self.metadata.referenced_chains()
            removed = [s for s in self.metadata.snapshots() if s.chain_id not in chains]
            # Top first: a layer goes only after what was stacked on it.
            removed.sort(key=lambda s: -self._depth(s.chain_id))
            for snapshot in removed:
                self.snapshots.remove(snapshot.chain_id)
            blobs = self.metadata.referenced_blobs()
            for digest in self.content.walk():
                if digest not in blobs:
                    self.content.delete(digest)
            return [s.chain_id for s in removed]

    def _depth(self, chain_id: str) -> int:
        depth = 0
        record = self.metadata.snapshot(chain_id)
        while record is not None and record.parent is not None:
            depth += 1
            record = self.metadata.snapshot(record.parent)
        return depth

    # --- transfer and check (other modules) ------------------------------------------------

    def load_image(self, stream: BinaryIO) -> list[str]:
        return image_transfer.load(self, stream)

    def export_image(self, names: list[str]) -> ImageExport:
        return image_transfer.export(self, names)

    def import_image(self, request: ImportRequest, body: BinaryIO | None) -> str:
        return image_transfer.import_rootfs(self, request, body)

    def store_check(self, repair: bool) -> CheckReport:
        return store_check.check(self, repair)

    # --- registries (image_distribution.py) --------------------------------------------

    async def pull_image(self, request: PullRequest, emit: Emit) -> None:
        await image_distribution.pull_image(self, request, emit)

    async def push_image(self, request: PushRequest, emit: Emit) -> None:
        await image_distribution.push_image(self, request, emit)

    async def login(self, auth: AuthConfig) -> str:
        return await image_distribution.login_registry(self, auth)

    async def distribution_inspect(self, name: str, auth: AuthConfig) -> DistributionInspect:
        return await image_distribution.distribution_inspect(self, name, auth)


def _could_be_id(s: str) -> bool:
    return 0 < len(s) <= 64 and all(c in "0123456789abcdef" for c in s)


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
