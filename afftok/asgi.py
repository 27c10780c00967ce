"""ASGI factories for uvicorn: settings are read from the environment once per process."""

from __future__ import annotations

from core.settings import load_settings


def edge_app():
    from edge.app import create_app

    return create_app(load_settings())


def api_app():
    from api.app import create_app

    return create_app(load_settings())
