"""Reference models, defined once with no input sizes and built on any backend.

- `lenet5`: LeNet-5; the same definition on 28x28 and 32x32 inputs gives a
  different first `Linear` size (the seed page's example);
- `resnet18`: torchvision's ResNet-18, residual adds through the functional API,
  torchvision's parameter names (11,689,512 parameters on 224x224);
- `resnet50`: torchvision's ResNet-50 (bottleneck blocks), its parameter names
  (25,557,032 parameters);
- `mobilenet_v2`, `efficientnet_b0`: torchvision's, its parameter names (3,504,872
  and 5,288,548 parameters), with their blocks (`conv_norm_activation`,
  `inverted_residual`, `squeeze_excitation`, `mbconv`);
- `bert`, `bert_base`: BERT's encoder with Hugging Face transformers' names
  (``BertModel``), sized by a mapping with ``BertConfig``'s keys (bert-base:
  109,482,240 parameters);
- `gpt2`: a GPT-2-small-shaped stack on token ids ``(B, T)``;
- `lstm_classifier`: an LSTM over ``(B, T, F)`` and a linear head.

Import the module as ``lazyshape.zoo`` (it needs no framework).
"""

from .bert import bert as bert
from .bert import bert_base as bert_base
from .efficientnet import efficientnet_b0 as efficientnet_b0
from .efficientnet import mbconv as mbconv
from .efficientnet import squeeze_excitation as squeeze_excitation
from .gpt import PositionEmbedding as PositionEmbedding
from .gpt import gpt2 as gpt2
from .lenet import lenet5 as lenet5
from .mobilenet import conv_norm_activation as conv_norm_activation
from .mobilenet import inverted_residual as inverted_residual
from .mobilenet import mobilenet_v2 as mobilenet_v2
from .recurrent import LastStep as LastStep
from .recurrent import lstm_classifier as lstm_classifier
from .resnet import basic_block as basic_block
from .resnet import bottleneck as bottleneck
from .resnet import resnet18 as resnet18
from .resnet import resnet50 as resnet50
