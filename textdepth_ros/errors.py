"""Errors a user can act on. CLIs print their message as one line and exit non-zero;
the node logs them. Anything else is a bug and keeps its traceback."""


class UserError(Exception):
    """Bad input, a missing file, an impossible option: the message says what to do."""


class CheckpointError(UserError):
    """A checkpoint is missing, corrupt, unsafe, or belongs to another architecture."""


class WeightsUnavailableError(UserError):
    """Pretrained weights were asked for but cannot be found offline."""
