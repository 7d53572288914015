"""cnnlab: convolutional neural networks from the classic literature, working for real."""

from cnnlab.errors import CnnlabError, ConfigError, DataError

__version__ = "0.1.0"
__all__ = ["CnnlabError", "ConfigError", "DataError", "__version__"]
