"""dltool: train, tune, evaluate and use PyTorch image models from the command line."""

__version__ = "0.1.0"
