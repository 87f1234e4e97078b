"""The built-in layer classes, one module per family."""
