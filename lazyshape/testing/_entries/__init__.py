"""The harness entries of the built-in layers, one module per layer family
(the same name as the family's module in ``lazyshape.layers``). Each module
registers its layers' entries when imported (see ``lazyshape.testing.register``)."""

#: the family modules, imported by the registry on first use
FAMILIES = (
    "linear", "activation", "reshape", "merge", "conv", "pool", "norm", "embedding",
    "attention", "recurrent", "resample",
)
