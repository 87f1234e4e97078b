"""The NN operations for torch tensors: the backend op protocol (`lazyshape.backend.OPS`),
the same names and signatures in every backend's ``ops`` module (``ls.ops``
dispatches here). Each layer family's ops live in the module of the family's
name; this module gathers them."""

from lazyshape.backend import OPS

from .activation import *  # noqa: F403
from .attention import *  # noqa: F403
from .conv import *  # noqa: F403
from .embedding import *  # noqa: F403
from .linear import *  # noqa: F403
from .pool import *  # noqa: F403
from .recurrent import *  # noqa: F403

__all__ = list(OPS)

# the families without ops of their own: their native modules register on import
from . import merge as merge  # noqa: E402
from . import norm as norm  # noqa: E402
from . import resample as resample  # noqa: E402
from . import reshape as reshape  # noqa: E402
