from tests.notify.world import world

__all__ = ["world"]
