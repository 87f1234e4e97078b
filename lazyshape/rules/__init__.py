"""Pure shape and parameter rules, one module per layer family.

A rule is a function of input specs and hyperparameters. It never sees a
backend or an array, and works unchanged on ints and symbolic dims.
"""
