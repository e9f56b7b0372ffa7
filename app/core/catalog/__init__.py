"""Gemma 4 variants, quantisations and repositories (data in catalog.json, lookups in catalog.py)."""

from __future__ import annotations

from app.core.catalog.catalog import (
    Catalog,
    CatalogError,
    Entry,
    FileEntry,
    Repo,
    Variant,
    add_user_repo,
    builtin_catalog,
    files_from_listing,
    listing_age,
    load_catalog,
    quant_of,
    refresh_from_hub,
)

__all__ = [
    "Catalog", "CatalogError", "Entry", "FileEntry", "Repo", "Variant", "add_user_repo",
    "builtin_catalog", "files_from_listing", "listing_age", "load_catalog", "quant_of", "refresh_from_hub",
]
