"""Re-ID modules: networks that map a person image to an identity feature."""
from lrreid.models.reid.reid_net import ReIDNet

__all__ = ["ReIDNet"]
