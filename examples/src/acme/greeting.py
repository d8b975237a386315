def greet(name: str) -> str:
    """A greeting for ``name``; blank names greet the world."""
    name = name.strip() or "world"
    return f"hello, {name}"
