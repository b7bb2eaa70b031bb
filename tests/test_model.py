import pytest
import torch

from quest_lab.model import MODEL_SIZES, ModelConfig, build_model, get_size, non_embedding_params, training_flops
from quest_lab.quant import QuantConfig, QuantLinear

# docs/design.md §2 (QuEST paper sizes)
PAPER_N = {
    "30M": 30_482_560,
    "50M": 49_556_736,
    "100M": 102_777_856,
    "200M": 203_188_480,
    "430M": 443_068_288,
    "800M": 822_151_168,
}
PAPER_LR = {"30M": 1.2e-3, "50M": 1.2e-3, "100M": 6e-4, "200M": 3e-4, "430M": 1.5e-4, "800M": 7.5e-5}


@pytest.mark.parametrize("name", sorted(PAPER_N))
def test_paper_sizes_match_design_table(name):
    assert non_embedding_params(name) == PAPER_N[name]
    assert MODEL_SIZES[name].peak_lr == PAPER_LR[name]
    assert MODEL_SIZES[name].head_dim == 128


@pytest.mark.parametrize("name", ["30M", "100M"])
def test_counter_matches_meta_model(name):
    with torch.device("meta"):
        model = build_model(name, vocab_size=50304, seq_len=512, device="meta")
    assert model.num_params(non_embedding=True) == PAPER_N[name]


@pytest.mark.parametrize("name", ["nano", "micro", "tiny", "small", "base"])
def test_tiny_sizes_counter_matches_model(name):
    model = build_model(name, vocab_size=300, seq_len=32)
    assert model.num_params() == non_embedding_params(name)
    assert non_embedding_params(name) < 5_000_000


def test_sizes_grow_monotonically():
    ns = [non_embedding_params(n) for n in MODEL_SIZES]
    assert ns == sorted(ns)


def test_forward_shapes_and_quantized_linears():
    model = build_model("nano", QuantConfig(name="quest", w_bits=4, a_bits=4), vocab_size=300, seq_len=16)
    idx = torch.randint(0, 300, (3, 16))
    assert model(idx).shape == (3, 16, 300)
    qlinears = [m for m in model.modules() if isinstance(m, QuantLinear)]
    assert len(qlinears) == 4 * model.cfg.n_layer  # qkv, o, gate_up, down per block
    assert not isinstance(model.lm_head, QuantLinear)
    with pytest.raises(ValueError, match="seq_len"):
        model(torch.randint(0, 300, (1, 17)))


def test_residual_projection_init_is_scaled():
    torch.manual_seed(0)
    model = build_model("base", vocab_size=300, seq_len=16)
    std_o = model.blocks[0].attn.o_proj.weight.std().item()
    std_q = model.blocks[0].attn.qkv_proj.weight.std().item()
    assert std_q == pytest.approx(0.02, rel=0.05)
    assert std_o == pytest.approx(0.02 / (2 * model.cfg.n_layer) ** 0.5, rel=0.05)


def test_training_flops_is_6nd_plus_attention():
    cfg = get_size("100M")
    d = 1_000_000
    assert training_flops("100M", d) == pytest.approx(6 * PAPER_N["100M"] * d + 6 * cfg.n_layer * 512 * 1024 * d)


def test_bad_sizes():
    with pytest.raises(ValueError, match="allowed: pico, nano"):
        get_size("huge")
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig("x", n_layer=1, n_embd=30, n_head=4, peak_lr=1e-3)


@pytest.mark.parametrize("name", ["quest", "ste", "clip", "fp4"])
def test_fused_qkv_quantizes_like_separate_layers(name):
    """Per-output-row weight scales and per-token activation scales make fusion exact."""
    torch.manual_seed(0)
    qcfg = QuantConfig(name=name, w_bits=4, a_bits=4)
    fused = QuantLinear(64, 3 * 64, qconfig=qcfg)
    x = torch.randn(5, 64)
    parts = []
    for i in range(3):
        sep = QuantLinear(64, 64, qconfig=qcfg)
        with torch.no_grad():
            sep.weight.copy_(fused.weight[64 * i:64 * (i + 1)])
        parts.append(sep(x))
    torch.testing.assert_close(fused(x), torch.cat(parts, dim=-1), rtol=1e-5, atol=1e-6)
