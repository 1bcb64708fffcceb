"""Checkpoints shipped with the package, by name."""

from __future__ import annotations

from pathlib import Path

__all__ = ["PRETRAINED", "resolve_checkpoint"]

PRETRAINED = {"pretrained": "pretrained-v2.zip"}  # names of checkpoints shipped in mcm_gym/learn/shipped


def resolve_checkpoint(spec: str) -> str:
    """A checkpoint path, or the name of one shipped with the package (``pretrained``)."""
    if spec in PRETRAINED:
        from importlib import resources

        path = Path(str(resources.files("mcm_gym.learn") / "shipped" / PRETRAINED[spec]))
        if not path.exists():
            raise FileNotFoundError(f"the shipped checkpoint {spec!r} is missing from this install ({path})")
        return str(path)
    if not Path(spec).exists():
        raise FileNotFoundError(f"checkpoint not found: {spec} (or use one of: {', '.join(PRETRAINED)})")
    return spec
