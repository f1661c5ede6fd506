"""ctnode: an AI node for chest CT. Settings, command line and logging set-up."""

__version__ = "0.1.0"
__all__ = ["__version__"]
