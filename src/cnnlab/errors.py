"""Exceptions with messages a user can act on; the CLI prints them as one line and exits non-zero."""


class CnnlabError(Exception):
    """Base class of every error cnnlab raises on purpose."""


class ConfigError(CnnlabError, ValueError):
    """A configuration file, flag or layer list is wrong (the message names the field)."""


class DataError(CnnlabError, ValueError):
    """A data file is missing, unreadable or inconsistent (the message names the file)."""


class RunError(CnnlabError):
    """A run folder is missing or lacks what the command needs."""


class TrainingDiverged(CnnlabError):
    """The training loss became NaN or infinite; the run stopped, its folder keeps the epochs before."""
