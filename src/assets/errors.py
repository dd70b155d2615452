"""One root exception, mixed with the builtin each error resembles (rasterio's pattern).

Messages name what is wrong and what to do about it: they are shown verbatim to farmers,
credit officers and operators by the CLI and the HTTP API.
"""


class AssetsError(Exception):
    """Root of every error this package raises on purpose.

    ``code`` (None for most) names the case for a face that words it in the reader's language (the
    map translates a proposal's "no field here"); the message stays the English explanation."""

    code: str | None = None


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


class ConcurrentChangeError(StoreError):
    """What a write was computed from changed before it could be written (another run decided the
    same borrower's fields meanwhile); the writer retries with the new state."""


class StoreFullError(StoreError):
    """The disk holding the database is full; the write was rolled back."""


class SensorError(InputError):
    """A sensor message or device registration is invalid."""


class NotFoundError(AssetsError, LookupError):
    """A borrower, claim, tile or device that was asked for does not exist."""


class NoImageryHere(NotFoundError):
    """A tapped point outside every tile the platform holds."""

    code = "no_imagery"


class NoFieldHere(NotFoundError):
    """A tapped point where the segmentation finds no field."""

    code = "no_field"


class BrokerError(AssetsError, ConnectionError):
    """The MQTT broker cannot be reached or refused our credentials."""


class AuthenticationError(AssetsError, PermissionError):
    """No credentials, or a token or sign-in code that is unknown, expired, revoked or used (HTTP 401)."""


class SignInEndedError(AuthenticationError):
    """A real token or sign-in code, presented with its right secret, that is revoked, expired, used
    or of the other kind: its holder, not a guesser, so it never counts as a failed sign-in."""


class PermissionDeniedError(AssetsError, PermissionError):
    """Signed in, but this role may not use this resource (HTTP 403)."""


class RateLimitError(AssetsError, RuntimeError):
    """Too many requests or failed sign-ins from one token or address (HTTP 429, ``retry_after_s``)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TooLargeError(InputError):
    """A request is bigger than a configured limit: body bytes, features or vertices (HTTP 413)."""
