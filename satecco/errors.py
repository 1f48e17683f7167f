"""Project error types. Bad user input that is not a plain bad value raises one of these."""


class SateccoError(Exception):
    """Base class of every error satecco raises on purpose."""


class VideoError(SateccoError):
    """A video file or frame folder that cannot be read or written.

    The message always starts with the path, so that a failure inside a batch of thousands of files
    names the file to look at.
    """

    def __init__(self, path, cause: str):
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")

    def __reduce__(self):
        # Exceptions cross process boundaries (Ray workers) by pickling; the default reduce would call
        # VideoError(message) with one argument.
        return (type(self), (self.path, self.cause))


def input_error(source: str, error: BaseException, local: str | None = None) -> str:
    """The one-line message of ``error`` met while working on input ``source``: ``<source>: <cause>``.

    ``local``: the local copy ``source`` was read from (a fetched remote input): a :class:`VideoError`
    about it is told about ``source``, the name the user gave. An error of an unexpected type keeps its
    type's name, since its message alone may not say what went wrong.
    """
    if isinstance(error, VideoError) and error.path in (source, local):
        return f"{source}: {error.cause}"
    text = str(error)
    if text.startswith(source):
        return text
    if not isinstance(error, SateccoError | OSError | ValueError):
        text = f"{type(error).__name__}: {text}"
    return f"{source}: {text}"
