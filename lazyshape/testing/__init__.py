"""``lazyshape.testing``: the property-based harness for shape rules.

Hypothesis strategies for dims, shapes, specs, layers and whole models, and
`check_layer`, which checks a layer's shape and parameter rules against what
every installed backend computes and against external oracles
(``torch.nn.functional``, ``jax.eval_shape``, ONNX shape inference)::

    from lazyshape.testing import check_layer
    check_layer(MyLayer, hparams={"out_features": st.integers(1, 8)})

See the guide "Testing your layer's shape rule".
"""

from ._check import CheckResult as CheckResult
from ._check import check_layer as check_layer
from ._check import forward_on as forward_on
from ._check import input_arrays as input_arrays
from ._check import scaled_settings as scaled_settings
from ._fuzz import ModelCheckError as ModelCheckError
from ._fuzz import check_model as check_model
from ._fuzz import perturbed_inputs as perturbed_inputs
from ._known import KNOWN_ISSUES as KNOWN_ISSUES
from ._known import KnownIssue as KnownIssue
from ._mutation import MutationReport as MutationReport
from ._mutation import mutation_score as mutation_score
from ._registry import Deviation as Deviation
from ._registry import LayerEntry as LayerEntry
from ._registry import NotApplicable as NotApplicable
from ._registry import Oracle as Oracle
from ._registry import entries as entries
from ._registry import entry_for as entry_for
from ._registry import kinds as kinds
from ._registry import register as register
from ._report import PROPERTIES as PROPERTIES
from ._report import LayerCheckError as LayerCheckError
from .strategies import dims as dims
from .strategies import inputs as inputs
from .strategies import invalid_inputs as invalid_inputs
from .strategies import layers as layers
from .strategies import models as models
from .strategies import probes as probes
from .strategies import shapes as shapes
from .strategies import specs as specs
from .strategies import symbolize as symbolize

__all__ = [
    "CheckResult",
    "Deviation",
    "KNOWN_ISSUES",
    "KnownIssue",
    "MutationReport",
    "LayerCheckError",
    "LayerEntry",
    "ModelCheckError",
    "NotApplicable",
    "Oracle",
    "PROPERTIES",
    "check_layer",
    "check_model",
    "dims",
    "entries",
    "entry_for",
    "forward_on",
    "input_arrays",
    "inputs",
    "invalid_inputs",
    "kinds",
    "layers",
    "models",
    "mutation_score",
    "perturbed_inputs",
    "probes",
    "register",
    "scaled_settings",
    "shapes",
    "specs",
    "symbolize",
]
