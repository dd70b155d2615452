"""One root exception, mixed with the builtin each error resembles (rasterio's pattern).

Messages name what is wrong and what to do about it: they are shown verbatim to farmers,
credit officers and operators by the CLI and the HTTP API.
"""


class AssetsError(Exception):
    """Root of every error this package raises on purpose."""


class InputError(AssetsError, ValueError):
    """User-supplied input (a file, a polygon, an option) is unusable."""


class GeometryError(InputError):
    """A field boundary cannot be used: invalid, empty, wrong CRS, too small or too large."""


class ImageryError(InputError):
    """A satellite tile cannot be used: corrupt, no CRS, wrong bands or dtype, all nodata."""


class ModelError(AssetsError, RuntimeError):
    """A model file is missing, corrupt or built for another architecture."""


class StoreError(AssetsError, RuntimeError):
    """The DuckDB store cannot be opened, migrated or written."""


class StoreLockedError(StoreError):
    """Another process holds the DuckDB file open for writing."""


class SensorError(InputError):
    """A sensor message or device registration is invalid."""


class NotFoundError(AssetsError, LookupError):
    """A borrower, claim, tile or device that was asked for does not exist."""


class BrokerError(AssetsError, ConnectionError):
    """The MQTT broker cannot be reached or refused our credentials."""
