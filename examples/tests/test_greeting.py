from acme import greet


def test_greets_by_name() -> None:
    assert greet("ada") == "hello, ada"


def test_blank_name_greets_world() -> None:
    assert greet("  ") == "hello, world"
