"""Reference models, defined once with no input sizes and built on any backend.

- `lenet5`: LeNet-5; the same definition on 28x28 and 32x32 inputs gives a
  different first `Linear` size (the layers guide's example);
- `resnet18`: torchvision's ResNet-18, residual adds through the functional API,
  torchvision's parameter names (11,689,512 parameters on 224x224);
- `resnet50`: torchvision's ResNet-50 (bottleneck blocks), its parameter names
  (25,557,032 parameters);
- `mobilenet_v2`, `efficientnet_b0`: torchvision's, its parameter names (3,504,872
  and 5,288,548 parameters), with their blocks (`conv_norm_activation`,
  `inverted_residual`, `squeeze_excitation`, `mbconv`);
- `vit`, `vit_b_16`, `convnext`, `convnext_tiny`: torchvision's, its parameter
  names (86,567,656 and 28,589,128 parameters), with their blocks
  (`encoder_block`, `cn_block`, `LayerNorm2d`);
- `bert`, `bert_base`: BERT's encoder with Hugging Face transformers' names
  (``BertModel``), sized by a mapping with ``BertConfig``'s keys (bert-base:
  109,482,240 parameters);
- `gpt2`: a GPT-2-small-shaped stack on token ids ``(B, T)``;
- `llama`: Llama as Hugging Face transformers' ``LlamaForCausalLM`` (its names),
  sized by a mapping with ``LlamaConfig``'s keys, token ids ``(B, T)`` -> logits;
  a tied head is a `TiedEmbedding` called twice;
- `lstm_classifier`: an LSTM over ``(B, T, F)`` and a linear head.

Import the module as ``lazyshape.zoo`` (it needs no framework).
"""

from .bert import bert as bert
from .bert import bert_base as bert_base
from .convnext import LayerNorm2d as LayerNorm2d
from .convnext import cn_block as cn_block
from .convnext import convnext as convnext
from .convnext import convnext_tiny as convnext_tiny
from .efficientnet import efficientnet_b0 as efficientnet_b0
from .efficientnet import mbconv as mbconv
from .efficientnet import squeeze_excitation as squeeze_excitation
from .gpt import PositionEmbedding as PositionEmbedding
from .gpt import gpt2 as gpt2
from .lenet import lenet5 as lenet5
from .llama import LLAMA_PRESETS as LLAMA_PRESETS
from .llama import TiedEmbedding as TiedEmbedding
from .llama import llama as llama
from .mobilenet import conv_norm_activation as conv_norm_activation
from .mobilenet import inverted_residual as inverted_residual
from .mobilenet import mobilenet_v2 as mobilenet_v2
from .recurrent import LastStep as LastStep
from .recurrent import lstm_classifier as lstm_classifier
from .resnet import basic_block as basic_block
from .resnet import bottleneck as bottleneck
from .resnet import resnet18 as resnet18
from .resnet import resnet50 as resnet50
from .vit import encoder_block as encoder_block
from .vit import vit as vit
from .vit import vit_b_16 as vit_b_16
