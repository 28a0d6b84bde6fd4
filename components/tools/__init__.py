"""Offline tools over the plan: the CLI (`python -m components`), the render, the capacity diff."""
