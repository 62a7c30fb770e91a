"""The commands' signal handling is the library's (``dltool._signals``): tune's worker processes need it too."""

from dltool._signals import Stop, stop_on_signals

__all__ = ["Stop", "stop_on_signals"]
