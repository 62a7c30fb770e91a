"""The release number, in one place: hatch reads it for the wheel (``[tool.hatch.version]``),
the package root re-exports it, and the library imports it from here rather than from the
package root (whose children must not import their parent)."""

__version__ = "0.1.0"
