"""Invoke collections, one module per namespace: lint, test, version, image, helm, archive,
build. Each module exports ``ns``; :data:`buildkit_tasks.ns` holds them all."""
