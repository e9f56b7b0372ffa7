"""The Gemma 4 catalog: variants, repositories, quantised files and projectors, with lookups.

The shipped data is `catalog.json` next to this file. Repositories the user adds live in the
config folder (`catalog_user.json`); file lists refreshed from the Hub are cached in the cache
folder (`catalog_hub_cache.json`) so the catalog still shows everything offline.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from app.core import paths

USER_FILE = "catalog_user.json"
CACHE_FILE = "catalog_hub_cache.json"

# Quality order, best first: the planner tries quants in this order.
QUANT_ORDER = (
    "Q8_0", "Q6_K", "Q6_K_XL", "Q5_K_M", "Q5_K_S", "Q5_K_XL", "Q4_K_M", "Q4_K_XL", "Q4_K_S",
    "Q4_1", "Q4_0", "IQ4_XS", "IQ4_NL", "Q3_K_XL", "Q3_K_M", "Q3_K_S", "IQ3_M", "IQ3_XXS",
    "Q2_K_XL", "Q2_K", "IQ2_M",
)
# A curated community repo lends the recommendation this quant only (Q4 where ggml-org has none).
CURATED_QUANTS = ("Q4_K_M",)
# Average bits per weight of each quant, for size estimates before a header is read.
QUANT_BITS = {
    "F32": 32.0, "BF16": 16.0, "F16": 16.0, "Q8_0": 8.5, "Q6_K": 6.56, "Q6_K_XL": 6.8,
    "Q5_K_M": 5.7, "Q5_K_S": 5.5, "Q5_K_XL": 5.9, "Q4_K_M": 4.85, "Q4_K_XL": 5.0, "Q4_K_S": 4.6,
    "Q4_1": 5.0, "Q4_0": 4.5, "IQ4_XS": 4.25, "IQ4_NL": 4.5, "Q3_K_XL": 4.0, "Q3_K_M": 3.9,
    "Q3_K_S": 3.5, "IQ3_M": 3.7, "IQ3_XXS": 3.06, "Q2_K_XL": 3.0, "Q2_K": 2.6, "IQ2_M": 2.7,
}
_QUANT_RE = re.compile(
    r"[-_.]((?:UD-)?(?:I?Q\d(?:_[A-Z0-9]+)*|BF16|F16|F32))\.gguf$", re.IGNORECASE
)


class CatalogError(LookupError):
    """An unknown model id or repository; the message lists what exists."""


@dataclass(frozen=True)
class FileEntry:
    """One downloadable GGUF (a model quant or a projector)."""

    quant: str
    filename: str
    size: int
    sha256: str | None = None
    approximate: bool = False


@dataclass(frozen=True)
class Repo:
    """A Hugging Face repository holding GGUFs of one variant."""

    repo_id: str
    official: bool
    files: tuple[FileEntry, ...]
    mmproj: tuple[FileEntry, ...]
    revision: str = "main"
    # False: found in public listings, file names/sizes guessed until a Hub refresh lists it.
    verified: bool = True
    curated: bool = False  # a community repo we ship, which the recommendation may use
    note: str = ""

    @property
    def recommendable(self) -> bool:
        """Shipped (official or curated) and its files confirmed by a listing."""
        return (self.official or self.curated) and self.verified

    @property
    def recommendable_files(self) -> tuple[FileEntry, ...]:
        """What the recommendation may pick here: every official file; of a curated repo, whose
        Hub listing brings every quant it publishes, only the quant it was chosen for."""
        if not self.recommendable:
            return ()
        return self.files if self.official else tuple(
            f for f in self.files if f.quant in CURATED_QUANTS)


@dataclass(frozen=True)
class Variant:
    """One Gemma 4 size with what the planner needs before any header is read."""

    id: str
    label: str
    rank: int
    params_b: float
    active_params_b: float
    inputs: tuple[str, ...]
    max_context: int
    moe: bool
    hparams: dict[str, Any]
    repos: tuple[Repo, ...]
    drafts: tuple[Repo, ...] = ()  # MTP assistant drafts: listed only, not used yet
    projector_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entry:
    """A concrete choice: variant + repository + quant file (+ its projector)."""

    variant: Variant
    repo: Repo
    file: FileEntry

    @property
    def id(self) -> str:
        if self.repo.official:
            return f"{self.variant.id}-{self.file.quant}"
        return f"{self.repo.repo_id}:{self.file.quant}"

    @property
    def quant(self) -> str:
        return self.file.quant

    @property
    def mmproj(self) -> FileEntry | None:
        """The projector to download with it (BF16/F16 first: quantised projectors lose detail)."""
        order = {"BF16": 0, "F16": 1, "F32": 2, "Q8_0": 3}
        ranked = sorted(self.repo.mmproj, key=lambda f: order.get(f.quant.upper(), 9))
        return ranked[0] if ranked else None

    @property
    def label(self) -> str:
        return f"{self.variant.id} {self.file.quant}"


def quant_of(filename: str) -> str | None:
    """The quantisation named in a GGUF filename (e.g. 'Q4_K_M', 'UD-Q4_K_XL', 'BF16')."""
    match = _QUANT_RE.search(filename)
    return match.group(1).upper() if match else None


def quant_rank(quant: str) -> int:
    """Position in QUANT_ORDER (lower is better); unknown quants go last."""
    q = quant.upper().removeprefix("UD-")
    return QUANT_ORDER.index(q) if q in QUANT_ORDER else len(QUANT_ORDER)


def _files(items: Iterable[dict[str, Any]]) -> tuple[FileEntry, ...]:
    return tuple(
        FileEntry(quant=str(i["quant"]), filename=str(i["filename"]), size=int(i.get("size") or 0),
                  sha256=i.get("sha256"), approximate=bool(i.get("approximate", False)))
        for i in items
    )


def _repo(data: dict[str, Any]) -> Repo:
    return Repo(repo_id=str(data["repo_id"]), official=bool(data.get("official", False)),
                files=_files(data.get("files", ())), mmproj=_files(data.get("mmproj", ())),
                revision=str(data.get("revision", "main")),
                verified=bool(data.get("verified", True)), curated=bool(data.get("curated", False)),
                note=str(data.get("note", "")))


def _repo_dict(repo: Repo) -> dict[str, Any]:
    def f(e: FileEntry) -> dict[str, Any]:
        return {"quant": e.quant, "filename": e.filename, "size": e.size, "sha256": e.sha256,
                "approximate": e.approximate}

    return {"repo_id": repo.repo_id, "official": repo.official, "revision": repo.revision,
            "verified": repo.verified, "curated": repo.curated, "note": repo.note,
            "files": [f(e) for e in repo.files], "mmproj": [f(e) for e in repo.mmproj]}


def _write_json(path: Path, data: Any) -> None:
    """Atomic write (temp file + os.replace), so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def files_from_listing(listing: Iterable[Any]) -> tuple[tuple[FileEntry, ...], tuple[FileEntry, ...]]:
    """Split a Hub file listing into (model quants, projectors).

    Accepts dicts or objects with `path`/`name`/`filename`/`rfilename`, `size` and `sha256` or
    `lfs.sha256` (huggingface_hub's RepoFile and the download module's own records).
    """
    models: list[FileEntry] = []
    projectors: list[FileEntry] = []
    for item in listing:
        def get(name: str, obj: Any = item) -> Any:
            return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)

        name = get("path") or get("name") or get("filename") or get("rfilename") or ""
        if not str(name).lower().endswith(".gguf"):
            continue
        name = str(name)
        lfs = get("lfs")
        sha = get("sha256") or (get("sha256", lfs) if lfs is not None else None)
        quant = quant_of(name) or "unknown"
        entry = FileEntry(quant=quant, filename=name, size=int(get("size") or 0), sha256=sha)
        base = name.rsplit("/", 1)[-1].lower()
        if base.startswith("mmproj"):
            projectors.append(entry)
        elif "-of-0" not in base:  # split GGUFs (model-00001-of-00003) are not offered
            models.append(entry)
    models.sort(key=lambda e: quant_rank(e.quant))
    return tuple(models), tuple(projectors)


class Catalog:
    """The variants with their repositories; lookups by model id, variant and repo."""

    def __init__(self, variants: Iterable[Variant]) -> None:
        self.variants: list[Variant] = sorted(variants, key=lambda v: v.rank)

    # -- lookups ---------------------------------------------------------------------------
    def variant(self, variant_id: str) -> Variant:
        for v in self.variants:
            if v.id.lower() == variant_id.lower():
                return v
        raise CatalogError(
            f"No Gemma 4 size '{variant_id}'. Known: {', '.join(v.id for v in self.variants)}."
        )

    def entries(self, *, official_only: bool = False) -> list[Entry]:
        out: list[Entry] = []
        for v in self.variants:
            for r in v.repos:
                files = r.recommendable_files if official_only else r.files
                out.extend(Entry(v, r, f) for f in sorted(files, key=lambda f: quant_rank(f.quant)))
        return out

    def entry(self, model_id: str) -> Entry:
        """Look up 'E4B-Q4_K_M' (official repo) or 'owner/repo:Q4_K_M' (any repo)."""
        wanted = model_id.strip().lower()
        for e in self.entries():
            if e.id.lower() == wanted:
                return e
        known = ", ".join(e.id for e in self.entries())
        raise CatalogError(f"No model '{model_id}' in the catalog. Known ids: {known}.")

    def find_by_filename(self, filename: str) -> Entry | None:
        base = Path(filename).name.lower()
        for e in self.entries():
            if e.file.filename.rsplit("/", 1)[-1].lower() == base:
                return e
        return None

    def variant_for_repo(self, repo_id: str) -> Variant | None:
        for v in self.variants:
            if any(r.repo_id.lower() == repo_id.lower() for r in v.repos):
                return v
            if f"gemma-4-{v.id.lower()}-" in repo_id.lower():
                return v
        return None

    # -- changes (return new catalogs; persistence is explicit) ----------------------------
    def with_repo(self, variant_id: str, repo: Repo) -> Catalog:
        variants = []
        for v in self.variants:
            if v.id.lower() == variant_id.lower():
                kept = tuple(r for r in v.repos if r.repo_id.lower() != repo.repo_id.lower())
                # Official repositories stay first whatever is added.
                repos = tuple(sorted(kept + (repo,), key=lambda r: not r.official))
                v = replace(v, repos=repos)
            variants.append(v)
        return Catalog(variants)


def _variant(data: dict[str, Any]) -> Variant:
    return Variant(
        id=str(data["id"]), label=str(data["label"]), rank=int(data["rank"]),
        params_b=float(data["params_b"]), active_params_b=float(data["active_params_b"]),
        inputs=tuple(data["inputs"]), max_context=int(data["max_context"]),
        moe=bool(data.get("moe", False)), hparams=dict(data["hparams"]),
        repos=tuple(_repo(r) for r in data["repos"]),
        drafts=tuple(_repo(r) for r in data.get("drafts", ())),
        projector_types=tuple(data.get("projector_types", ())),
    )


def builtin_catalog() -> Catalog:
    """The catalog shipped in the package, without user additions or Hub refreshes."""
    text = resources.files("app.core.catalog").joinpath("catalog.json").read_text("utf-8")
    return Catalog(_variant(v) for v in json.loads(text)["variants"])


def load_catalog() -> Catalog:
    """Shipped catalog + the user's repositories + cached Hub listings (no network)."""
    catalog = builtin_catalog()
    user = _read_json(paths.config_dir() / USER_FILE) or {}
    for item in user.get("repos", []):
        try:
            catalog = catalog.with_repo(item["variant"], _repo(item["repo"]))
        except (KeyError, TypeError, ValueError):
            continue
    cache = _read_json(paths.cache_dir() / CACHE_FILE) or {}
    for item in cache.get("repos", []):
        try:
            catalog = _merge_listing(catalog, item["variant"], _repo(item["repo"]))
        except (KeyError, TypeError, ValueError):
            continue
    return catalog


def _merge_listing(catalog: Catalog, variant_id: str, listed: Repo) -> Catalog:
    """Replace a repo's files by a Hub listing, keeping its official flag."""
    try:
        variant = catalog.variant(variant_id)
    except CatalogError:
        return catalog
    current = next((r for r in variant.repos if r.repo_id.lower() == listed.repo_id.lower()), None)
    official = current.official if current else listed.official
    curated = current.curated if current else listed.curated
    # A listing from the Hub confirms the files: the repo is verified from now on.
    return catalog.with_repo(variant_id, replace(listed, official=official, curated=curated,
                                                 verified=True))


def listing_age() -> float | None:
    """Seconds since a refresh last listed the Hub; None if none ever did."""
    listed_at = (_read_json(paths.cache_dir() / CACHE_FILE) or {}).get("listed_at")
    return max(0.0, time.time() - listed_at) if isinstance(listed_at, (int, float)) else None


def add_user_repo(variant_id: str, repo_id: str, listing: Iterable[Any] = ()) -> Catalog:
    """Add another repository (e.g. 'unsloth/gemma-4-E4B-it-GGUF') and remember it."""
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise CatalogError(f"'{repo_id}' is not a repository id; write it as owner/name.")
    catalog = load_catalog()
    variant = catalog.variant(variant_id)
    models, projectors = files_from_listing(listing)
    repo = Repo(repo_id=repo_id, official=False, files=models, mmproj=projectors)
    store = paths.config_dir() / USER_FILE
    data = _read_json(store) or {"schema_version": 1, "repos": []}
    data["repos"] = [i for i in data.get("repos", [])
                     if i.get("repo", {}).get("repo_id", "").lower() != repo_id.lower()]
    data["repos"].append({"variant": variant.id, "repo": _repo_dict(repo)})
    _write_json(store, data)
    return load_catalog()


ListRemote = Callable[[str, str], Iterable[Any]]


def refresh_from_hub(list_remote_files: ListRemote | None = None) -> Catalog:
    """List every repository on the Hub, cache the result, and return the refreshed catalog.

    `list_remote_files(repo_id, revision)` defaults to the download module's
    `ModelStore().list_remote_files`; a repo that cannot be listed (offline, gated, gone) keeps
    its cached or shipped files, and the reasons are kept in the cache under "errors".
    """
    if list_remote_files is None:
        from app.core.download import ModelStore

        list_remote_files = ModelStore().list_remote_files
    catalog = load_catalog()
    cache = _read_json(paths.cache_dir() / CACHE_FILE) or {"schema_version": 1, "repos": []}
    cached = {i["repo"]["repo_id"].lower(): i for i in cache.get("repos", []) if "repo" in i}
    errors = []
    listed_any = False
    for variant in catalog.variants:
        for repo in variant.repos:
            try:
                models, projectors = files_from_listing(list_remote_files(repo.repo_id, repo.revision))
            except Exception as exc:  # noqa: BLE001 - one failing repo must not stop the others
                errors.append(f"{repo.repo_id}: {exc}")
                continue
            listed = replace(repo, files=models, mmproj=projectors, verified=True)
            cached[repo.repo_id.lower()] = {"variant": variant.id, "repo": _repo_dict(listed)}
            listed_any = True
    cache["repos"] = list(cached.values())
    cache["errors"] = errors
    if listed_any:  # a refresh that reached nothing (offline) is tried again next time
        cache["listed_at"] = time.time()
    _write_json(paths.cache_dir() / CACHE_FILE, cache)
    return load_catalog()
