"""``ls.init``: backend-neutral initializers with PyTorch's names and arguments.

``ls.init.kaiming_uniform(a=0, mode="fan_in", nonlinearity="relu")`` describes a
distribution; fans come from the parameter's shape ``(out, in, *kernel)``.
"""

from ._init import Initializer as Initializer
from ._init import calculate_gain as calculate_gain
from ._init import constant as constant
from ._init import fan_in_uniform as fan_in_uniform
from ._init import fans as fans
from ._init import kaiming_normal as kaiming_normal
from ._init import kaiming_uniform as kaiming_uniform
from ._init import normal as normal
from ._init import ones as ones
from ._init import orthogonal as orthogonal
from ._init import trunc_normal as trunc_normal
from ._init import uniform as uniform
from ._init import xavier_normal as xavier_normal
from ._init import xavier_uniform as xavier_uniform
from ._init import zeros as zeros
