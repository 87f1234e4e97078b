"""``ls.dims``: the symbolic dim algebra and the three-valued helpers rules use.

A dim is an ``int`` or an `Expr` over named symbols (each assumed ``>= 1``).
Never use ``==`` to decide a possibly symbolic dim in a rule: use
`definitely_equal`, or ``resolve(eq(a, b), default=...)``.
"""

from ._dims import Dim as Dim
from ._dims import DimLike as DimLike
from ._dims import Expr as Expr
from ._dims import NotConcreteError as NotConcreteError
from ._dims import Sym as Sym
from ._dims import SymbolicComparisonError as SymbolicComparisonError
from ._dims import as_dim as as_dim
from ._dims import bind as bind
from ._dims import bind_shape as bind_shape
from ._dims import definitely_equal as definitely_equal
from ._dims import definitely_not_equal as definitely_not_equal
from ._dims import dim_max as dim_max
from ._dims import dim_min as dim_min
from ._dims import eq as eq
from ._dims import format_dim as format_dim
from ._dims import format_shape as format_shape
from ._dims import free_symbols as free_symbols
from ._dims import ge as ge
from ._dims import gt as gt
from ._dims import is_symbolic as is_symbolic
from ._dims import le as le
from ._dims import lt as lt
from ._dims import ne as ne
from ._dims import parse as parse
from ._dims import prod as prod
from ._dims import resolve as resolve
from ._dims import unknown as unknown

max = dim_max  # noqa: A001 - `ls.dims.max(a, b)` reads as the docs say
min = dim_min  # noqa: A001
