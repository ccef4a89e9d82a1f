import sdl


def test_registry_lists_methods():
    assert "rk4" in sdl.integrators.names()
