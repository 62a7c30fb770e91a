"""The commands' signal handling is the library's (``dltool._signals``): tune's worker processes need it too."""

from dltool._signals import stop_on_signals

__all__ = ["stop_on_signals"]
