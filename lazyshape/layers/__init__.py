"""The built-in layers, one module per family (``linear``, ``activation``,
``reshape``, ``merge``, ``conv``, ``pool``, ``norm``, ``embedding``, ``attention``,
``recurrent``, ``resample``): each holds the family's rules (pure functions of specs and
hyperparameters), then its layer classes."""
