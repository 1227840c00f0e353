"""The few exception types mediasift raises; each says what went wrong and where."""


class MediasiftError(Exception):
    pass


class PayloadError(MediasiftError):
    """A notification body that cannot be understood; `field` names the offending part."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InboxUnavailable(MediasiftError):
    pass


class ObjectReadError(MediasiftError):
    """Reading an object version from the store failed; the message names bucket/key/etag."""


class VersionChanged(ObjectReadError):
    """The key now holds a different version than the one notified (412 on If-Match)."""


class MediaError(MediasiftError):
    """The object's bytes cannot be decoded (corrupt, truncated, mislabelled)."""


class LockHeld(MediasiftError):
    pass


class ModelLoadError(MediasiftError):
    """A configured model cannot be loaded; the message names the model and the setting to fix."""


class StackNotReady(MediasiftError):
    """The embedded stack under MEDIASIFT_HOME did not become ready in time."""


class StoreNotConfigured(MediasiftError):
    """No S3 endpoint is configured and no embedded stack is running to provide one."""
