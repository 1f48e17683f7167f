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
