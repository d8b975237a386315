from buildkit_tasks import ns  # noqa: F401
