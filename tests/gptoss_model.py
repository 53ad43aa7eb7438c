"""A tiny gpt-oss-architecture GGUF, written by the tests in seconds (never committed).

    path = build_tiny_gptoss(tmp_path / "tiny-harmony.gguf")
    backend = LlamaCppBackend.load(path, context_length=4096)

Everything llama.cpp's gpt-oss loader (`LLM_ARCH_OPENAI_MOE`) requires, at toy size: alternating
sliding-window and full attention layers (sliding first) with attention sinks, biased q/k/v/o, a
biased router over a few experts (top-k) whose weights are MXFP4 as in the real files. The
tokenizer is the whole o200k_harmony vocabulary, made offline from the o200k_base ranks that
mcp_host already ships: 201,088 tokens, the Harmony specials 199,998-201,087 as control tokens,
and the 446,189 merges a real gpt-oss GGUF carries (every split of a token into two tokens,
ordered by the merged token's rank, as Hugging Face's tiktoken converter writes them).

The weights are seeded random numbers, so the model says nothing sensible; one nudge makes its
garbage interesting to a Harmony parser: every token embedding shares a constant component
that only the output rows of `FAVOURED_TEXTS` (Harmony markers, channel and tool names, JSON
pieces) read, so those tokens make up a good share of what it samples.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from numpy.typing import NDArray

from mcp_host.prompt.vocab import VOCAB_FILE, ensure_vocabulary, harmony_encoding

ARCH = "gpt-oss"
VOCAB_SIZE = 201_088
FIRST_SPECIAL = 199_998  # <|startoftext|>; the o200k_base ranks are 0 … 199,997
BOS, PAD, EOS = 199_998, 199_999, 200_002  # <|startoftext|>, <|endoftext|>, <|return|> (as gpt-oss's GGUFs say)
REAL_MERGE_COUNT = 446_189  # tokenizer.ggml.merges in ggml-org's gpt-oss-20b GGUF

# A short chat template that writes Harmony (gpt-oss's own is ~10 kB); LM Studio shows and uses it.
CHAT_TEMPLATE = (
    "{#- Harmony, shortened for a test model -#}"
    "{%- for message in messages -%}"
    "{%- if message.role == 'assistant' -%}"
    "<|start|>assistant<|channel|>final<|message|>{{ message.content }}<|end|>"
    "{%- else -%}"
    "<|start|>{{ message.role }}<|message|>{{ message.content }}<|end|>"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|start|>assistant{%- endif -%}"
)
# What random sampling should often pick: Harmony's markers, its header words, a tool of the fixture server, JSON.
FAVOURED_TEXTS = (
    "<|return|>",
    "<|constrain|>",
    "<|channel|>",
    "<|start|>",
    "<|end|>",
    "<|message|>",
    "<|call|>",
    "assistant",
    "analysis",
    "commentary",
    "final",
    " to=functions.fx__echo",
    "add",
    "json",
    '{"text": "hi"}',
)


@dataclass(frozen=True)
class TinyShape:
    """Toy dimensions. MXFP4 experts need `width` and `expert_ffn` to be multiples of 32."""

    layers: int = 4
    width: int = 64
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 32  # Q is heads × head_dim wide (128), not `width`: llama.cpp reads it from key_length
    experts: int = 4
    experts_used: int = 2
    expert_ffn: int = 64
    sliding_window: int = 128  # gpt-oss's own
    context_length: int = 131_072
    original_context: int = 4096  # YaRN ×32, as gpt-oss
    rope_base: float = 150_000.0


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable character map, which `gpt2` vocabularies in GGUF are written in."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {byte: chr(char) for byte, char in zip(printable, chars, strict=True)}


@dataclass(frozen=True)
class HarmonyVocabulary:
    tokens: list[str]
    token_types: list[int]
    merges: list[str]


@functools.cache
def o200k_harmony_vocabulary() -> HarmonyVocabulary:
    """The gpt-oss vocabulary as GGUF writes it, from the verified o200k_base file mcp_host unpacks (no network)."""
    ranks: dict[bytes, int] = {}
    for line in (ensure_vocabulary() / VOCAB_FILE).read_bytes().splitlines():
        token, rank = line.split()
        ranks[base64.b64decode(token)] = int(rank)
    assert sorted(ranks.values()) == list(range(FIRST_SPECIAL)), "o200k_base ranks are 0 … 199,997"
    table = str.maketrans({chr(byte): char for byte, char in byte_to_unicode().items()})
    by_rank = sorted(ranks, key=ranks.__getitem__)
    texts = [token.decode("latin-1").translate(table) for token in by_rank]
    encoding = harmony_encoding()
    specials = [encoding.decode([token]) for token in range(FIRST_SPECIAL, VOCAB_SIZE)]
    types = [int(gguf.TokenType.NORMAL)] * FIRST_SPECIAL + [int(gguf.TokenType.CONTROL)] * len(specials)
    # Every split of a token into two tokens is a merge, ranked by the merged token, then by its parts' ranks:
    # llama.cpp then merges exactly as tiktoken does (lowest-ranked result first).
    merges: list[str] = []
    for token in by_rank:
        found: list[tuple[int, int]] = []
        for i in range(1, len(token)):
            left, right = ranks.get(token[:i]), ranks.get(token[i:])
            if left is not None and right is not None:
                found.append((left, right))
        merges.extend(f"{texts[a]} {texts[b]}" for a, b in sorted(found))
    return HarmonyVocabulary(texts + specials, types, merges)


def favoured_tokens() -> list[int]:
    encoding = harmony_encoding()
    return sorted({t for text in FAVOURED_TEXTS for t in encoding.encode(text, allowed_special="all")})


def build_tiny_gptoss(
    path: Path,
    *,
    shape: TinyShape | None = None,
    seed: int = 0,
    name: str = "gpt-oss tiny (test)",
    chat_template: str | None = CHAT_TEMPLATE,
    expert_type: Q = Q.MXFP4,
    favour: float = 2.5,
) -> Path:
    """Write the GGUF to `path` and return it. `favour` scales how often `FAVOURED_TEXTS` tokens are sampled."""
    s = shape or TinyShape()
    rng = np.random.default_rng(seed)
    vocab = o200k_harmony_vocabulary()
    writer = gguf.GGUFWriter(path, ARCH)

    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_string("general.basename", "gpt-oss")
    writer.add_string("general.size_label", "tiny")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_MXFP4_MOE if expert_type == Q.MXFP4 else gguf.LlamaFileType.ALL_F32)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(s.context_length)
    writer.add_embedding_length(s.width)
    writer.add_block_count(s.layers)
    writer.add_feed_forward_length(s.expert_ffn)
    writer.add_head_count(s.heads)
    writer.add_head_count_kv(s.kv_heads)
    writer.add_key_length(s.head_dim)
    writer.add_value_length(s.head_dim)
    writer.add_rope_freq_base(s.rope_base)
    writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    writer.add_rope_scaling_factor(s.context_length / s.original_context)
    writer.add_rope_scaling_orig_ctx_len(s.original_context)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_expert_count(s.experts)
    writer.add_expert_used_count(s.experts_used)
    writer.add_expert_feed_forward_length(s.expert_ffn)
    writer.add_sliding_window(s.sliding_window)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-4o")
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.token_types)
    writer.add_token_merges(vocab.merges)
    writer.add_bos_token_id(BOS)
    writer.add_eos_token_id(EOS)
    writer.add_pad_token_id(PAD)
    writer.add_add_bos_token(False)  # a Harmony prompt is rendered whole, <|start|> first
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    def normal(*dims: int, std: float) -> NDArray[np.float32]:
        return (rng.standard_normal(dims) * std).astype(np.float32)

    def add(tensor_name: str, data: NDArray[np.float32], kind: Q = Q.F32) -> None:
        if kind == Q.F32:
            writer.add_tensor(tensor_name, data)
        elif kind == Q.F16:
            writer.add_tensor(tensor_name, data.astype(np.float16))
        else:
            writer.add_tensor(tensor_name, gguf.quants.quantize(data, kind), raw_dtype=kind)

    # numpy shapes are llama.cpp's dimensions reversed: token_embd {width, vocab} is (vocab, width).
    embeddings = normal(VOCAB_SIZE, s.width, std=1.0)
    embeddings[:, 0] = 4.0  # the shared component the favoured output rows read (see the module docstring)
    output = normal(VOCAB_SIZE, s.width, std=0.14)
    output[:, 0] = 0.0
    output[favoured_tokens(), 0] = favour
    add("token_embd.weight", embeddings, Q.F16)
    add("output_norm.weight", np.ones(s.width, np.float32))
    add("output.weight", output, Q.F16)
    q_width, kv_width = s.heads * s.head_dim, s.kv_heads * s.head_dim
    for layer in range(s.layers):
        block = f"blk.{layer}"
        add(f"{block}.attn_norm.weight", np.ones(s.width, np.float32))
        add(f"{block}.post_attention_norm.weight", np.ones(s.width, np.float32))
        add(f"{block}.attn_q.weight", normal(q_width, s.width, std=0.1), Q.F16)
        add(f"{block}.attn_k.weight", normal(kv_width, s.width, std=0.1), Q.F16)
        add(f"{block}.attn_v.weight", normal(kv_width, s.width, std=0.1), Q.F16)
        add(f"{block}.attn_output.weight", normal(s.width, q_width, std=0.02), Q.F16)
        add(f"{block}.attn_q.bias", normal(q_width, std=0.02))
        add(f"{block}.attn_k.bias", normal(kv_width, std=0.02))
        add(f"{block}.attn_v.bias", normal(kv_width, std=0.02))
        add(f"{block}.attn_output.bias", normal(s.width, std=0.02))
        add(f"{block}.attn_sinks.weight", normal(s.heads, std=1.0))
        add(f"{block}.ffn_gate_inp.weight", normal(s.experts, s.width, std=0.1))
        add(f"{block}.ffn_gate_inp.bias", normal(s.experts, std=0.1))
        add(f"{block}.ffn_gate_exps.weight", normal(s.experts, s.expert_ffn, s.width, std=0.1), expert_type)
        add(f"{block}.ffn_up_exps.weight", normal(s.experts, s.expert_ffn, s.width, std=0.1), expert_type)
        add(f"{block}.ffn_down_exps.weight", normal(s.experts, s.width, s.expert_ffn, std=0.02), expert_type)
        add(f"{block}.ffn_gate_exps.bias", normal(s.experts, s.expert_ffn, std=0.02))
        add(f"{block}.ffn_up_exps.bias", normal(s.experts, s.expert_ffn, std=0.02))
        add(f"{block}.ffn_down_exps.bias", normal(s.experts, s.width, std=0.02))

    path.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def tiny_gptoss(
    factory: pytest.TempPathFactory, file_name: str = "tiny-harmony.gguf", *, chat_template: str | None = CHAT_TEMPLATE
) -> Path:
    """The model for this test session: built on first use under pytest's base temporary folder, then reused.

    The default file name says nothing of gpt-oss, so that mcp_host must tell Harmony from the file's metadata.
    """
    path = factory.getbasetemp() / "tiny-gptoss" / file_name
    if not path.is_file():
        partial = path.with_suffix(".partial")
        build_tiny_gptoss(partial, chat_template=chat_template)
        partial.replace(path)
    return path
