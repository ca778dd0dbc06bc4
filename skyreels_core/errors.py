"""Errors a user can act on. Messages say what is wrong and what to do."""

from __future__ import annotations


class SkyReelsError(Exception):
    """Base class for every error skyreels_core raises on purpose."""


class SkyReelsInputError(SkyReelsError, ValueError):
    """A value the user chose is invalid (frames not 4n+1, size not a multiple of 16, ...)."""


class CheckpointError(SkyReelsError, ValueError):
    """A model file is missing, truncated, of the wrong kind, or has unexpected keys."""
