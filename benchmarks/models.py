"""The benchmark models, described once, with a builder per framework.

The reference models, and a GPT-2-small stack:

- **A**: 1000 x (``Linear(64)``, ``ReLU``) on ``(8, 32)``: 2000 modules, each
  a distinct layer object;
- **B**: ``Linear(4096), ReLU, Linear(4096), ReLU, Linear(1000)`` on ``(32, 1024)``;
- **C**: ResNet-18 on ``(8, 3, 224, 224)`` (``lazyshape.zoo.resnet18()``; a
  torchvision-style hand-written ResNet-18 for torch, with ``Lazy*`` modules
  for the lazy contenders; flax and Keras ResNet-18s, channels-last as those
  frameworks' convolutions are);
- **D**: 12 blocks of (``LayerNorm``, ``Linear(3*768)``, ``Linear(768)``,
  ``LayerNorm``, ``Linear(3072)``, ``GELU``, ``Linear(768)``) on ``(4, 128, 768)``:
  a transformer's layer shapes without the attention arithmetic;
- **gpt2**: ``lazyshape.zoo.gpt2()`` (12 pre-norm blocks of causal
  self-attention and a GELU MLP, embed 768) on token ids ``(4, 128)``.

A, B and D are chains, written once as *plans* (``("linear", 64)``,
``("relu",)``, ...) that every framework's builder reads; C and gpt2 are
written out per framework below. Every builder makes *fresh* layer objects on
each call: a benchmark that rebuilds its model per repeat gets no help from
any cache. Keras models are built in `benchmarks._keras` (its own process).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Plan", "RefModel", "REFERENCE", "mlp_stack", "mlp", "transformer_stack", "mlp4096",
    "FORWARD_MODELS", "to_lazyshape", "to_torch", "to_torch_lazy", "to_flax",
    "lazyshape_model", "torch_lazy_model", "torch_model", "flax_model", "channels_last",
    "numpy_hand", "jax_hand",
]

Step = tuple[Any, ...]


@dataclass(frozen=True)
class Plan:
    """A chain model as ``input_shape`` plus steps; ``blocks`` is how many
    repeated blocks it has (what "per block" figures divide by)."""

    name: str
    input_shape: tuple[int, ...]
    steps: tuple[Step, ...]
    blocks: int = 1
    description: str = ""

    @property
    def in_features(self) -> int:
        return self.input_shape[-1]

    @property
    def layers(self) -> int:
        """Number of modules (a Linear and a ReLU count one each)."""
        return len(self.steps)


def mlp_stack(blocks: int, width: int = 64, in_features: int = 32, batch: int = 8) -> Plan:
    """``blocks`` x (Linear(width), ReLU()), on ``(batch, in_features)`` inputs."""
    steps: tuple[Step, ...] = (("linear", width), ("relu",)) * blocks
    return Plan(f"mlp_stack{blocks}", (batch, in_features), steps, blocks,
                f"{blocks} x [Linear({width}), ReLU()] on ({batch}, {in_features})")


def mlp(hidden: int = 256, out: int = 10, in_features: int = 20) -> Plan:
    """``Linear(hidden), ReLU(), Linear(out)`` on inputs of ``in_features``."""
    return Plan(f"mlp{in_features}_{hidden}_{out}", (2, in_features),
                (("linear", hidden), ("relu",), ("linear", out)), 1,
                f"Linear({hidden}), ReLU(), Linear({out}) from {in_features} features")


def mlp4096() -> Plan:
    """Model B: ``Linear(4096), ReLU, Linear(4096), ReLU, Linear(1000)`` on (32, 1024)."""
    steps: tuple[Step, ...] = (("linear", 4096), ("relu",), ("linear", 4096), ("relu",),
                               ("linear", 1000))
    return Plan("mlp4096", (32, 1024), steps, 1,
                "Linear(4096), ReLU, Linear(4096), ReLU, Linear(1000) on (32, 1024)")


def transformer_stack(blocks: int = 12, embed: int = 768, mlp_dim: int = 3072,
                      batch: int = 4, seq: int = 128) -> Plan:
    """Model D: ``blocks`` x (LayerNorm, Linear(3E), Linear(E), LayerNorm,
    Linear(mlp_dim), GELU, Linear(E)) on ``(batch, seq, E)``."""
    block: tuple[Step, ...] = (("layernorm",), ("linear", 3 * embed), ("linear", embed),
                               ("layernorm",), ("linear", mlp_dim), ("gelu",),
                               ("linear", embed))
    return Plan(f"transformer{blocks}", (batch, seq, embed), block * blocks, blocks,
                f"{blocks} x [LayerNorm, Linear({3 * embed}), Linear({embed}), LayerNorm, "
                f"Linear({mlp_dim}), GELU, Linear({embed})] on ({batch}, {seq}, {embed})")


# -- chain builders: plan -> a fresh model of one framework -----------------------

def _build(plan: Plan, table: dict[str, Callable[..., Any]]) -> list[Any]:
    layers = []
    for kind, *args in plan.steps:
        make = table.get(kind)
        if make is None:
            raise NotImplementedError(f"no builder for step {kind!r}")
        layers.append(make(*args))
    return layers


def to_lazyshape(plan: Plan) -> Any:
    """A lazyshape ``Sequential`` with no input sizes."""
    import lazyshape as ls

    return ls.Sequential(*_build(plan, {"linear": ls.Linear, "relu": ls.ReLU,
                                        "layernorm": ls.LayerNorm, "gelu": ls.GELU}))


def to_torch_lazy(plan: Plan) -> Any:
    """torch's own deferred initialization: ``nn.Sequential`` of ``nn.LazyLinear``.

    torch has no lazy ``LayerNorm``: it gets its size (the input's last dim,
    which every step of the plans keeps) spelled out."""
    from torch import nn

    width = plan.in_features
    return nn.Sequential(*_build(plan, {"linear": nn.LazyLinear, "relu": nn.ReLU,
                                        "layernorm": lambda: nn.LayerNorm(width),
                                        "gelu": nn.GELU}))


def to_torch(plan: Plan) -> Any:
    """The hand-written torch model: ``nn.Linear(in, out)`` with sizes spelled out."""
    from torch import nn

    layers: list[Any] = []
    width = plan.in_features
    for kind, *args in plan.steps:
        if kind == "linear":
            layers.append(nn.Linear(width, args[0]))
            width = args[0]
        elif kind == "relu":
            layers.append(nn.ReLU())
        elif kind == "layernorm":
            layers.append(nn.LayerNorm(width))
        elif kind == "gelu":
            layers.append(nn.GELU())
        else:
            raise NotImplementedError(f"no builder for step {kind!r}")
    return nn.Sequential(*layers)


def to_flax(plan: Plan) -> Any:
    """A flax linen ``nn.Sequential`` (``Dense`` sizes the input lazily, as
    lazyshape does; ``LayerNorm`` with torch's epsilon, exact GELU)."""
    import functools

    from flax import linen as nn

    return nn.Sequential(_build(plan, {
        "linear": nn.Dense, "relu": lambda: nn.relu,
        "layernorm": lambda: nn.LayerNorm(epsilon=1e-5),
        "gelu": lambda: functools.partial(nn.gelu, approximate=False),
    }))


# -- ResNet-18 -------------------------------------------------------------------

def _torch_resnet18(lazy: bool) -> Any:
    """torchvision's ResNet-18 written by hand (module names as torchvision's);
    ``lazy``: ``LazyConv2d`` / ``LazyBatchNorm2d`` / ``LazyLinear``, sizes inferred."""
    from collections import OrderedDict

    import torch
    from torch import nn

    def conv(cin: int, cout: int, k: int, stride: int = 1, padding: int = 0) -> nn.Module:
        if lazy:
            return nn.LazyConv2d(cout, k, stride, padding, bias=False)
        return nn.Conv2d(cin, cout, k, stride, padding, bias=False)

    def bn(n: int) -> nn.Module:
        return nn.LazyBatchNorm2d() if lazy else nn.BatchNorm2d(n)

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
            super().__init__()
            self.conv1 = conv(cin, planes, 3, stride, 1)
            self.bn1 = bn(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = conv(planes, planes, 3, 1, 1)
            self.bn2 = bn(planes)
            self.downsample: nn.Module | None = None
            if stride != 1 or cin != planes:
                self.downsample = nn.Sequential(conv(cin, planes, 1, stride), bn(planes))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + identity)

    class ResNet18(nn.Module):
        def __init__(self, num_classes: int = 1000) -> None:
            super().__init__()
            self.conv1 = conv(3, 64, 7, 2, 3)
            self.bn1 = bn(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = 64
            for i, (planes, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
                blocks = [BasicBlock(cin, planes, stride), BasicBlock(planes, planes)]
                self.add_module(f"layer{i + 1}",
                                nn.Sequential(OrderedDict([("0", blocks[0]), ("1", blocks[1])])))
                cin = planes
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.LazyLinear(num_classes) if lazy else nn.Linear(512, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet18()


def _flax_resnet18() -> Any:
    """ResNet-18 in flax linen (NHWC): the same convs, batch norms (running
    averages, as in eval), pooling and head."""
    import jax.numpy as jnp
    from flax import linen as nn

    class Block(nn.Module):
        planes: int
        stride: int = 1
        down: bool = False

        @nn.compact
        def __call__(self, x: Any) -> Any:
            s = (self.stride, self.stride)
            h = nn.Conv(self.planes, (3, 3), s, padding=((1, 1), (1, 1)), use_bias=False)(x)
            h = nn.relu(nn.BatchNorm(use_running_average=True)(h))
            h = nn.Conv(self.planes, (3, 3), padding=((1, 1), (1, 1)), use_bias=False)(h)
            h = nn.BatchNorm(use_running_average=True)(h)
            if self.down:
                x = nn.Conv(self.planes, (1, 1), s, padding="VALID", use_bias=False)(x)
                x = nn.BatchNorm(use_running_average=True)(x)
            return nn.relu(h + x)

    class ResNet18(nn.Module):
        num_classes: int = 1000

        @nn.compact
        def __call__(self, x: Any) -> Any:
            x = nn.Conv(64, (7, 7), (2, 2), padding=((3, 3), (3, 3)), use_bias=False)(x)
            x = nn.relu(nn.BatchNorm(use_running_average=True)(x))
            x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
            for planes, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
                x = Block(planes, stride, down=stride != 1 or planes != 64)(x)
                x = Block(planes)(x)
            return nn.Dense(self.num_classes)(jnp.mean(x, axis=(1, 2)))

    return ResNet18()


# -- GPT-2 small -------------------------------------------------------------------

GPT2 = {"vocab": 50257, "max_len": 1024, "layers": 12, "embed": 768, "heads": 12, "mlp": 3072}


def _torch_gpt2() -> Any:
    """The GPT-2-small stack by hand in torch (sizes spelled out: torch has no
    lazy attention or LayerNorm), ``nn.MultiheadAttention`` with a causal mask."""
    import torch
    from torch import nn

    c = GPT2

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln_1 = nn.LayerNorm(c["embed"])
            self.attn = nn.MultiheadAttention(c["embed"], c["heads"], batch_first=True)
            self.ln_2 = nn.LayerNorm(c["embed"])
            self.c_fc = nn.Linear(c["embed"], c["mlp"])
            self.act = nn.GELU("tanh")
            self.c_proj = nn.Linear(c["mlp"], c["embed"])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = x.shape[1]
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            h = self.ln_1(x)
            x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
            return x + self.c_proj(self.act(self.c_fc(self.ln_2(x))))

    class GPT2Stack(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wte = nn.Embedding(c["vocab"], c["embed"])
            self.wpe = nn.Parameter(torch.empty(c["max_len"], c["embed"]).normal_(std=0.02))
            self.h = nn.Sequential(*[Block() for _ in range(c["layers"])])
            self.ln_f = nn.LayerNorm(c["embed"])

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            x = self.wte(ids) + self.wpe[: ids.shape[1]]
            return self.ln_f(self.h(x))

    return GPT2Stack()


def _flax_gpt2() -> Any:
    """The GPT-2-small stack in flax linen: ``Embed``, a learned position
    embedding, pre-norm blocks of causal ``MultiHeadDotProductAttention`` and a
    GELU MLP."""
    import jax.numpy as jnp
    from flax import linen as nn

    c = GPT2

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x: Any) -> Any:
            mask = nn.make_causal_mask(jnp.ones(x.shape[:2]))
            h = nn.LayerNorm(epsilon=1e-5)(x)
            x = x + nn.MultiHeadDotProductAttention(num_heads=c["heads"])(h, h, mask=mask)
            h = nn.Dense(c["mlp"])(nn.LayerNorm(epsilon=1e-5)(x))
            return x + nn.Dense(c["embed"])(nn.gelu(h, approximate=True))

    class GPT2Stack(nn.Module):
        @nn.compact
        def __call__(self, ids: Any) -> Any:
            x = nn.Embed(c["vocab"], c["embed"])(ids)
            wpe = self.param("wpe", nn.initializers.normal(0.02), (c["max_len"], c["embed"]))
            x = x + wpe[: ids.shape[1]]
            for _ in range(c["layers"]):
                x = Block()(x)
            return nn.LayerNorm(epsilon=1e-5)(x)

    return GPT2Stack()


# -- the reference models -------------------------------------------------------------

@dataclass(frozen=True)
class RefModel:
    """One reference model: its input (channels-first, PyTorch's layout), the
    symbolic input lazyshape also resolves, and ``plan`` for chains."""

    key: str
    name: str
    description: str
    input_shape: tuple[int, ...]
    symbolic_shape: tuple[Any, ...]
    input_dtype: str = "float32"
    plan: Plan | None = None


REFERENCE: dict[str, RefModel] = {
    m.key: m
    for m in (
        RefModel("A", "A: 1000 x (Linear, ReLU)", mlp_stack(1000).description, (8, 32),
                 ("B", 32), plan=mlp_stack(1000)),
        RefModel("B", "B: MLP 4096", mlp4096().description, (32, 1024), ("B", 1024),
                 plan=mlp4096()),
        RefModel("C", "C: ResNet-18", "lazyshape.zoo.resnet18() on (8, 3, 224, 224)",
                 (8, 3, 224, 224), ("B", 3, "H", "W")),
        RefModel("D", "D: 12 transformer blocks", transformer_stack().description,
                 (4, 128, 768), ("B", "T", 768), plan=transformer_stack()),
        RefModel("gpt2", "GPT-2 small", "lazyshape.zoo.gpt2() on token ids (4, 128)",
                 (4, 128), ("B", "T"), input_dtype="int64"),
    )
}


def lazyshape_model(key: str) -> Any:
    """A fresh lazyshape model (no input sizes)."""
    ref = REFERENCE[key]
    if ref.plan is not None:
        return to_lazyshape(ref.plan)
    from lazyshape import zoo

    return zoo.resnet18() if key == "C" else zoo.gpt2()


def torch_lazy_model(key: str) -> Any:
    """torch's deferred model: ``Lazy*`` modules where torch has them."""
    ref = REFERENCE[key]
    if ref.plan is not None:
        return to_torch_lazy(ref.plan)
    return _torch_resnet18(lazy=True) if key == "C" else _torch_gpt2()


def torch_model(key: str) -> Any:
    """The hand-written torch model, every size spelled out."""
    ref = REFERENCE[key]
    if ref.plan is not None:
        return to_torch(ref.plan)
    return _torch_resnet18(lazy=False) if key == "C" else _torch_gpt2()


def flax_model(key: str) -> Any:
    """The flax linen model (``Dense`` infers its input size)."""
    ref = REFERENCE[key]
    if ref.plan is not None:
        return to_flax(ref.plan)
    return _flax_resnet18() if key == "C" else _flax_gpt2()


def channels_last(key: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The input shape in flax's / Keras's image layout (NHWC for C)."""
    if key == "C":
        n, c, h, w = shape
        return (n, h, w, c)
    return shape


#: models whose forward after materialization is timed, with the batch sizes
FORWARD_MODELS: tuple[tuple[Plan, tuple[int, ...]], ...] = (
    (mlp(), (2, 256)),
    (mlp_stack(1000), (8,)),
    (mlp4096(), (32,)),
    (transformer_stack(), (4,)),
)


# -- hand-written forwards (NumPy, JAX) for the chain plans --------------------------

def numpy_hand(plan: Plan, weights: list[tuple[Any, ...]]) -> Callable[[Any], Any]:
    """What a NumPy user writes: a loop over the layers, ``x @ w.T + b``."""
    import math

    import numpy as np

    if tuple(kind for kind, *_ in plan.steps) == ("linear", "relu", "linear"):
        (w0, b0), (w1, b1) = weights

        def mlp3(x: Any) -> Any:
            return np.maximum(x @ w0.T + b0, 0) @ w1.T + b1

        return mlp3

    try:  # what the NumPy backend uses too (SciPy comes with JAX)
        from scipy.special import erf
    except ImportError:
        erf = np.vectorize(math.erf, otypes=[np.float32])

    def layer_norm(x: Any, w: Any, b: Any) -> Any:
        mu = x.mean(-1, keepdims=True)
        var = x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + np.float32(1e-5)) * w + b

    def gelu(x: Any) -> Any:
        return x * np.float32(0.5) * (np.float32(1) + erf(x * np.float32(1 / math.sqrt(2))))

    fns: list[Callable[[Any], Any]] = []
    it = iter(weights)
    for kind, *_ in plan.steps:
        if kind == "linear":
            w, b = next(it)
            wt = w.T
            fns.append(lambda x, wt=wt, b=b: x @ wt + b)
        elif kind == "layernorm":
            w, b = next(it)
            fns.append(lambda x, w=w, b=b: layer_norm(x, w, b))
        elif kind == "relu":
            fns.append(lambda x: np.maximum(x, 0))
        elif kind == "gelu":
            fns.append(gelu)
        else:
            raise NotImplementedError(kind)

    def run(x: Any) -> Any:
        for f in fns:
            x = f(x)
        return x

    return run


def jax_hand(plan: Plan) -> Callable[[Any, Any], Any]:
    """A hand-written JAX function of a chain plan over a list of weight tuples."""
    import jax
    import jax.numpy as jnp

    kinds = [kind for kind, *_ in plan.steps]

    def apply(weights: Any, x: Any) -> Any:
        it = iter(weights)
        for kind in kinds:
            if kind == "linear":
                w, b = next(it)
                x = x @ w.T + b
            elif kind == "layernorm":
                w, b = next(it)
                mu = x.mean(-1, keepdims=True)
                var = ((x - mu) ** 2).mean(-1, keepdims=True)
                x = (x - mu) * jax.lax.rsqrt(var + 1e-5) * w + b
            elif kind == "relu":
                x = jnp.maximum(x, 0)
            elif kind == "gelu":
                x = jax.nn.gelu(x, approximate=False)
        return x

    return apply


def param_indices(plan: Plan) -> list[int]:
    """Indices of the steps with parameters (Linear, LayerNorm)."""
    return [i for i, (kind, *_) in enumerate(plan.steps) if kind in ("linear", "layernorm")]
