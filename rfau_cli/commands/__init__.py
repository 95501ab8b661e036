"""The engines of the `rfau` commands, one module a command (unlearn, retrain, audit, bench).

cli.py imports a command's module only when that command runs; the library modules below
(checkpoint, data, audit, methods, ...) never import from here.
"""
