"""Models: transformer shapes, parameter counts and FLOPs (data/models.toml, every value sourced).

Conventions (the ones Megatron-LM SC'21, Korthikanti et al. 2022 and PaLM use):

* FLOPs count matrix multiplications only, 2 FLOPs per multiply-add. Norms, softmax,
  activations and biases are left out: they are below 1% of the total at these sizes and
  the published formulas leave them out too.
* The attention core (QK^T and AV) is counted WITHOUT causal halving: 4 * tokens *
  seq_len * heads * head_dim per layer for MHA.
* A training step costs 3x the forward pass (backward = 2x forward); that is the MFU
  numerator. Recomputation is added on top for the hardware FLOPs (HFU).
* params() is the main model: DeepSeek-V3's 671B excludes its multi-token-prediction (MTP)
  module, so params() does too; mtp_params() counts the MTP module. MTP compute IS part of
  a training step, so forward_flops() includes it unless asked not to.
"""

import tomllib
from dataclasses import dataclass, field, fields
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from podsim.errors import SpecError, check, shown
from podsim.fields import Boolean, Choice, Integer, String, Table, check_all, provenance_fields

ATTENTIONS = ("mha", "gqa", "mla")
MLPS = ("gelu", "swiglu")
_MLA_DIMS = ("q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
_MOE_FIELDS = ("top_k", "shared_experts", "expert_ffn_hidden", "dense_layers")
# Fields a scenario's [model] table or a catalog entry may leave out.
_OPTIONAL = {"kv_heads", "head_dim", "attention", "mlp", *_MLA_DIMS, "experts", *_MOE_FIELDS}
_OPTIONAL |= {"mtp_depth", "tied_embeddings", "bias", "learned_positions", "sources", "notes"}
_OPTIONAL |= {"max_routed_nodes", "router_score", "expert_groups", "topk_groups", "dropout"}
ROUTER_SCORES = ("softmax", "sigmoid")

Projection = tuple[int, int]  # (inputs, outputs) of one weight matrix

_WIDTH = 10_000_000  # the widest hidden or feed-forward dimension accepted
_HEADS = 100_000


def _int(name: str, doc: str, low: int, high: int, default: object = 0) -> Integer:
    return Integer(name, doc, default, low=low, high=high)


MODEL_FIELDS = Table(
    "model",
    "the model: a catalog preset with optional overrides, or explicit fields",
    fields=(
        String("preset", "a catalog model id (`podsim models`)", None, nonempty=True),
        String("name", "a name for the model", "custom", nonempty=True),
        _int("layers", "transformer layers", 1, 10_000, None),
        _int("hidden", "hidden size", 1, _WIDTH, None),
        _int("heads", "attention (query) heads", 1, _HEADS, None),
        _int(
            "ffn_hidden", "feed-forward inner width of a dense layer (0: all-MoE)", 0, _WIDTH, None
        ),
        _int("vocab", "vocabulary size", 1, _WIDTH, None),
        _int("kv_heads", "key/value heads (0 = heads)", 0, _HEADS),
        _int("head_dim", "width of one head (0 = hidden / heads)", 0, _WIDTH),
        Choice(
            "attention",
            "attention kind (auto: gqa if kv_heads < heads)",
            "auto",
            choices=("auto", *ATTENTIONS),
        ),
        Choice("mlp", "feed-forward kind", "gelu", choices=MLPS),
        _int("q_lora_rank", "MLA: query compression rank (0 = none)", 0, _WIDTH),
        _int("kv_lora_rank", "MLA: key/value compression rank", 0, _WIDTH),
        _int("qk_nope_head_dim", "MLA: query/key head width without rotary part", 0, _WIDTH),
        _int("qk_rope_head_dim", "MLA: rotary part of a query/key head", 0, _WIDTH),
        _int("v_head_dim", "MLA: value head width", 0, _WIDTH),
        _int("experts", "routed experts per MoE layer (0 = dense model)", 0, _HEADS),
        _int("top_k", "routed experts per token", 0, _HEADS),
        _int("shared_experts", "always-on experts per MoE layer", 0, _HEADS),
        _int("expert_ffn_hidden", "inner width of one expert", 0, _WIDTH),
        _int("dense_layers", "leading dense layers of an MoE model", 0, 10_000),
        _int("mtp_depth", "multi-token-prediction modules", 0, 100),
        _int("max_routed_nodes", "node-limited routing: nodes per token (0 = no limit)", 0, _HEADS),
        Choice("router_score", "router score function", "softmax", choices=ROUTER_SCORES),
        _int("expert_groups", "groups of group-limited routing (0 = none)", 0, _HEADS),
        _int("topk_groups", "groups a token may route to (group-limited routing)", 0, _HEADS),
        Boolean("dropout", "trained with dropout (its masks are kept in memory)", True),
        Boolean("tied_embeddings", "output head tied to the input embedding", False),
        Boolean("bias", "GPT-style biases and LayerNorms (false: Llama style)", False),
        _int("learned_positions", "rows of a learned position table (0: rotary)", 0, _WIDTH),
        *provenance_fields(),
    ),
)
_CHECKED = MODEL_FIELDS.keys


@dataclass(frozen=True)
class Model:
    """A decoder-only transformer.

    kv_heads = 0 means heads; head_dim = 0 means hidden // heads; attention = "auto" means
    "gqa" when kv_heads < heads, else "mha". These are resolved at construction.
    MLA (DeepSeek-V2/V3) uses the five MLA dims; q_lora_rank = 0 means an uncompressed query.
    MoE: experts routed experts (0 = dense model) of width expert_ffn_hidden, top_k of them
    per token plus shared_experts always-on ones; the first dense_layers layers are dense
    (width ffn_hidden). bias: GPT-2/3 style biased linears and LayerNorms (weight and bias);
    False means Llama style, no biases and RMSNorm. learned_positions: rows of a learned
    position-embedding table (GPT-3: 2048); 0 for rotary.
    """

    name: str
    layers: int
    hidden: int
    heads: int
    ffn_hidden: int
    vocab: int
    kv_heads: int = 0
    head_dim: int = 0
    attention: str = "auto"
    mlp: str = "gelu"
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    experts: int = 0
    top_k: int = 0
    shared_experts: int = 0
    expert_ffn_hidden: int = 0
    dense_layers: int = 0
    mtp_depth: int = 0
    # Node-limited routing: a token goes to experts on at most this many nodes and crosses the
    # network once per node (DeepSeek-V3: 4); 0 = no limit.
    max_routed_nodes: int = 0
    # Router: the score function and group-limited routing (DeepSeek-V3: sigmoid, 8 groups,
    # top-4 groups); expert_groups = 0 routes over all experts at once.
    router_score: str = "softmax"
    expert_groups: int = 0
    topk_groups: int = 0
    tied_embeddings: bool = False
    bias: bool = False
    # Trained with dropout (Korthikanti et al.'s activation counts keep its 1-byte masks);
    # DeepSeek-V3 trains without.
    dropout: bool = True
    learned_positions: int = 0
    sources: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    notes: str = ""

    def __post_init__(self) -> None:
        _CHECKED["name"].check(self.name, "model.name")
        self._check_integers()
        self._resolve_heads()
        self._check_attention()
        _CHECKED["mlp"].check(self.mlp, "model.mlp")
        self._check_moe()
        self._check_router()
        if not isinstance(self.sources, MappingProxyType):
            object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))

    def _check_integers(self) -> None:
        names = [f.name for f in MODEL_FIELDS.fields if isinstance(f, Integer | Boolean)]
        check_all({name: getattr(self, name) for name in names}, _CHECKED, "model")
        _CHECKED["notes"].check(self.notes, "model.notes")
        _CHECKED["sources"].check(self.sources, "model.sources")

    def _resolve_heads(self) -> None:
        if self.head_dim == 0:
            check(
                self.hidden % self.heads == 0,
                "model.heads",
                self.heads,
                f"a divisor of hidden ({self.hidden}) unless head_dim is given",
            )
            object.__setattr__(self, "head_dim", self.hidden // self.heads)
        if self.kv_heads == 0:
            object.__setattr__(self, "kv_heads", self.heads)
        check(
            self.kv_heads <= self.heads and self.heads % self.kv_heads == 0,
            "model.kv_heads",
            self.kv_heads,
            f"a divisor of heads ({self.heads})",
        )
        if self.attention == "auto":
            attention = "gqa" if self.kv_heads < self.heads else "mha"
            object.__setattr__(self, "attention", attention)

    def _check_attention(self) -> None:
        check(self.attention in ATTENTIONS, "model.attention", self.attention, "mha | gqa | mla")
        if self.attention == "mha":
            check(
                self.kv_heads == self.heads,
                "model.kv_heads",
                self.kv_heads,
                f"equal to heads ({self.heads}) for attention = 'mha' (fewer is 'gqa')",
            )
        for name in _MLA_DIMS:
            value = getattr(self, name)
            if self.attention != "mla":
                check(value == 0, f"model.{name}", value, "0 unless attention = 'mla'")
            elif name != "q_lora_rank":  # a query without low-rank compression is allowed
                check(value >= 1, f"model.{name}", value, "an integer >= 1 for attention = 'mla'")

    def _check_moe(self) -> None:
        if self.experts == 0:
            for name in _MOE_FIELDS:
                value = getattr(self, name)
                check(value == 0, f"model.{name}", value, "0 for a dense model (experts = 0)")
            check(self.ffn_hidden >= 1, "model.ffn_hidden", self.ffn_hidden, "an integer >= 1")
            return
        check(
            1 <= self.top_k <= self.experts,
            "model.top_k",
            self.top_k,
            f"an integer in [1, experts = {self.experts}]",
        )
        check(
            self.expert_ffn_hidden >= 1,
            "model.expert_ffn_hidden",
            self.expert_ffn_hidden,
            "an integer >= 1 for an MoE model (experts > 0)",
        )
        check(
            self.dense_layers < self.layers,
            "model.dense_layers",
            self.dense_layers,
            f"an integer in [0, layers - 1 = {self.layers - 1}]",
        )
        if self.dense_layers:
            check(
                self.ffn_hidden >= 1,
                "model.ffn_hidden",
                self.ffn_hidden,
                "an integer >= 1 when there are dense layers",
            )

    def _check_router(self) -> None:
        score = self.router_score
        check(score in ROUTER_SCORES, "model.router_score", score, " | ".join(ROUTER_SCORES))
        if self.expert_groups:
            check(
                self.experts % self.expert_groups == 0,
                "model.expert_groups",
                self.expert_groups,
                f"a divisor of experts ({self.experts})",
            )
        check(
            self.topk_groups <= self.expert_groups,
            "model.topk_groups",
            self.topk_groups,
            f"an integer in [0, expert_groups = {self.expert_groups}]",
        )

    # --- shapes -------------------------------------------------------------------------

    @property
    def qk_head_dim(self) -> int:
        """Width of one query/key head (MLA: the no-position part plus the rotary part)."""
        if self.attention == "mla":
            return self.qk_nope_head_dim + self.qk_rope_head_dim
        return self.head_dim

    @property
    def v_dim(self) -> int:
        """Width of one value head."""
        return self.v_head_dim if self.attention == "mla" else self.head_dim

    @property
    def is_moe_model(self) -> bool:
        return self.experts > 0

    def is_moe(self, layer: int) -> bool:
        """Whether layer (0-based) has routed experts; the first dense_layers are dense."""
        if not (type(layer) is int and 0 <= layer < self.layers):  # the lowering asks per layer
            self._check_layer(layer)
        return self.experts > 0 and layer >= self.dense_layers

    def _check_layer(self, layer: int) -> None:
        ok = isinstance(layer, int) and not isinstance(layer, bool)
        check(ok and 0 <= layer < self.layers, "layer", layer, f"in [0, {self.layers - 1}]")

    def qkv_projections(self) -> list[Projection]:
        """The weight matrices that make queries, keys and values (MLA: down and up)."""
        h, heads = self.hidden, self.heads
        if self.attention != "mla":
            kv = self.kv_heads * self.head_dim
            return [(h, heads * self.head_dim), (h, kv), (h, kv)]
        if self.q_lora_rank:
            query = [(h, self.q_lora_rank), (self.q_lora_rank, heads * self.qk_head_dim)]
        else:
            query = [(h, heads * self.qk_head_dim)]
        # The joint KV down-projection also makes the shared rotary key (DeepSeek-V2 eq. 9-10).
        kv_down = (h, self.kv_lora_rank + self.qk_rope_head_dim)
        kv_up = (self.kv_lora_rank, heads * (self.qk_nope_head_dim + self.v_head_dim))
        return [*query, kv_down, kv_up]

    def out_projection(self) -> Projection:
        return (self.heads * self.v_dim, self.hidden)

    def mlp_projections(self, width: int) -> list[Projection]:
        """One feed-forward block of the given inner width: gelu 2 matrices, swiglu 3."""
        up = [(self.hidden, width)] * (3 if self.mlp == "swiglu" else 2)
        up[-1] = (width, self.hidden)  # the last matrix projects back down
        return up

    # --- parameters ---------------------------------------------------------------------

    def _params(self, projections: list[Projection]) -> int:
        weights = sum(i * o for i, o in projections)
        return weights + (sum(o for _, o in projections) if self.bias else 0)

    def _norm_params(self) -> int:
        """One norm over hidden: LayerNorm weight and bias, or RMSNorm weight only."""
        return self.hidden * (2 if self.bias else 1)

    def attention_params(self) -> int:
        """Attention weights of one layer (and biases; MLA's two latent RMSNorms)."""
        latent_norms = self.q_lora_rank + self.kv_lora_rank if self.attention == "mla" else 0
        return self._params([*self.qkv_projections(), self.out_projection()]) + latent_norms

    def expert_params(self, layer: int) -> int:
        """The routed experts of one layer (0 for a dense layer): the part ep splits."""
        return self._per_kind(layer)[0]

    def mlp_params(self, layer: int) -> int:
        """Feed-forward of one layer: dense, or all routed + shared experts + router."""
        return self._per_kind(layer)[1]

    def layer_params(self, layer: int) -> int:
        """One transformer layer: attention + feed-forward + its two norms."""
        return self._per_kind(layer)[2]

    def _per_kind(self, layer: int) -> tuple[int, int, int]:
        """A layer's (routed expert, feed-forward, whole layer) parameters, which depend on it
        only through whether it is an MoE layer: counted once per kind and kept on the model
        (a step's lowering asks for every layer of every stage, several times)."""
        moe = self.is_moe(layer)
        cache = self.__dict__.setdefault("_params_per_kind", {})
        if moe not in cache:
            routed = shared = router = 0
            if moe:
                expert = self._params(self.mlp_projections(self.expert_ffn_hidden))
                routed, shared = self.experts * expert, self.shared_experts * expert
                router = self.hidden * self.experts
                mlp = routed + shared + router
            else:
                mlp = self._params(self.mlp_projections(self.ffn_hidden))
            layer_total = self.attention_params() + mlp + 2 * self._norm_params()
            cache[moe] = (routed, mlp, layer_total)
        return cache[moe]

    def embedding_params(self) -> int:
        """Input token embedding (vocab x hidden) plus a learned position table if any."""
        return (self.vocab + self.learned_positions) * self.hidden

    def output_params(self) -> int:
        """The output head (vocab x hidden); 0 when it is tied to the input embedding."""
        return 0 if self.tied_embeddings else self.vocab * self.hidden

    def final_norm_params(self) -> int:
        return self._norm_params()

    def params(self) -> int:
        """All parameters of the main model (MTP modules excluded, as DeepSeek counts)."""
        layers = sum(n * self.layer_params(i) for i, n in self._kind_counts().items())
        return self.embedding_params() + self.output_params() + self.final_norm_params() + layers

    def active_params(self) -> int:
        """Parameters used per token: MoE layers count only top_k routed experts (+ shared)."""
        per_expert = self._params(self.mlp_projections(self.expert_ffn_hidden))
        moe_layers = self.layers - self.dense_layers if self.experts else 0
        return self.params() - moe_layers * (self.experts - self.top_k) * per_expert

    def mtp_params(self) -> int:
        """Unique parameters of the MTP modules (DeepSeek-V3 §2.2): per depth, two RMSNorms,
        a 2h -> h projection, one transformer layer and the head's norm; embedding and output
        head are shared with the main model."""
        per_depth = 3 * self._norm_params() + 2 * self.hidden * self.hidden
        return self.mtp_depth * (per_depth + self.layer_params(self.layers - 1))

    # --- FLOPs --------------------------------------------------------------------------

    def layer_forward_flops(self, layer: int, tokens: float, seq_len: float) -> dict[str, float]:
        """Forward FLOPs of one layer for `tokens` queries attending to `seq_len` keys each,
        by kernel class: qkv, attention_core, attention_out, then mlp (dense layer) or
        moe_experts and router (MoE layer)."""
        _non_negative("tokens", tokens)
        _non_negative("seq_len", seq_len)
        flops = {
            "qkv": 2.0 * tokens * sum(i * o for i, o in self.qkv_projections()),
            # QK^T over qk_head_dim plus AV over v_dim; no causal halving (Megatron/PaLM).
            "attention_core": 2.0 * tokens * seq_len * self.heads * (self.qk_head_dim + self.v_dim),
            "attention_out": 2.0 * tokens * _matmul(self.out_projection()),
        }
        if not self.is_moe(layer):
            mlp = sum(i * o for i, o in self.mlp_projections(self.ffn_hidden))
            flops["mlp"] = 2.0 * tokens * mlp
            return flops
        expert = sum(i * o for i, o in self.mlp_projections(self.expert_ffn_hidden))
        flops["moe_experts"] = 2.0 * tokens * (self.top_k + self.shared_experts) * expert
        flops["router"] = 2.0 * tokens * self.hidden * self.experts
        return flops

    def logits_forward_flops(self, tokens: float) -> float:
        """The output head: 2 * tokens * hidden * vocab."""
        _non_negative("tokens", tokens)
        return 2.0 * tokens * self.hidden * self.vocab

    def mtp_forward_flops(self, tokens: float, seq_len: float) -> float:
        """The MTP modules: per depth the 2h -> h projection, one layer and the logits."""
        if self.mtp_depth == 0:
            return 0.0
        layer = sum(self.layer_forward_flops(self.layers - 1, tokens, seq_len).values())
        projection = 2.0 * tokens * 2 * self.hidden * self.hidden
        return self.mtp_depth * (projection + layer + self.logits_forward_flops(tokens))

    def layers_forward_flops(self, tokens: float, seq_len: float) -> dict[str, float]:
        """layer_forward_flops summed over all layers, by kernel class."""
        total: dict[str, float] = {}
        for kind, count in self._kind_counts().items():
            for key, value in self.layer_forward_flops(kind, tokens, seq_len).items():
                total[key] = total.get(key, 0.0) + count * value
        return total

    def _kind_counts(self) -> dict[int, int]:
        """A representative layer index per kind (dense, MoE) and how many layers it stands
        for: layers of a kind are identical, so FLOPs are computed once per kind."""
        if not self.experts:
            return {0: self.layers}
        counts = {self.dense_layers: self.layers - self.dense_layers}
        if self.dense_layers:
            counts[0] = self.dense_layers
        return counts

    def forward_flops(self, tokens: float, seq_len: float, mtp: bool = True) -> float:
        """One forward pass: all layers + logits (+ the MTP modules unless mtp=False)."""
        layers = sum(self.layers_forward_flops(tokens, seq_len).values())
        extra = self.mtp_forward_flops(tokens, seq_len) if mtp else 0.0
        return layers + self.logits_forward_flops(tokens) + extra

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["sources"] = dict(self.sources)
        out["params"] = self.params()
        out["active_params"] = self.active_params()
        return out


def _matmul(projection: Projection) -> int:
    return projection[0] * projection[1]


def _non_negative(name: str, value: object) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    check(ok and 0 <= value < float("inf"), name, value, "a finite number >= 0")


# --- catalog and scenario tables ------------------------------------------------------------

_FIELDS = tuple(f.name for f in fields(Model))


def model_from_dict(name: str, table: dict[str, Any]) -> Model:
    """A model from explicit fields (TOML style); unknown keys and missing ones are errors."""
    known = set(_FIELDS) - {"name"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise SpecError(f"model: unknown key(s) {unknown}; allowed: {sorted(known)}")
    missing = sorted(known - _OPTIONAL - set(table))
    if missing:
        raise SpecError(f"model: missing key(s) {missing}")
    values = MODEL_FIELDS.check(table, "model")
    values["sources"] = MappingProxyType(dict(values.get("sources", {})))
    return Model(name=name, **values)


@cache
def _raw_catalog() -> MappingProxyType:
    """The preset tables as written in data/models.toml (derived fields still unresolved)."""
    text = resources.files("podsim").joinpath("data/models.toml").read_text(encoding="utf-8")
    return MappingProxyType(tomllib.loads(text))


@cache
def catalog() -> MappingProxyType:
    """The models shipped with podsim, by id."""
    return MappingProxyType({mid: _preset(mid, t) for mid, t in _raw_catalog().items()})


def _preset(model_id: str, table: dict[str, Any]) -> Model:
    try:
        return model_from_dict(model_id, table)
    except SpecError as error:  # name the preset: the field alone does not say which entry
        raise SpecError(f"models.toml [{model_id}]: {error}") from error


def model_from_table(table: dict[str, Any]) -> Model:
    """A model from a scenario's [model] table: `preset = "id"` plus optional field
    overrides, or explicit fields (name optional)."""
    values = MODEL_FIELDS.check(table, "model")
    preset = values.pop("preset", None)
    if preset is None:
        return model_from_dict(values.pop("name", "custom"), values)
    return _overridden(_preset_id(preset), values)


def _preset_id(preset: object) -> str:
    if not isinstance(preset, str) or preset not in _raw_catalog():
        known = ", ".join(_raw_catalog())
        raise SpecError(f"model.preset = {shown(preset)} is not in the catalog; known: {known}")
    return preset


def _overridden(preset: str, overrides: dict[str, Any]) -> Model:
    # Start from the preset as written, not the resolved Model, so that derived fields
    # (head_dim, kv_heads, attention) follow overridden shapes.
    values = {**_raw_catalog()[preset], **overrides}
    name = values.pop("name", preset if not overrides else f"{preset}-custom")
    changed = set(overrides) - {"name", "sources", "notes"}
    sources = dict(_raw_catalog()[preset].get("sources", {}))
    sources.update({key: "set in the scenario's [model] table" for key in changed})
    sources.update(overrides.get("sources", {}))
    values["sources"] = sources
    return model_from_dict(name, values)


def get_model(model: "str | Model | dict[str, Any]") -> Model:
    """A model by catalog id, a Model, or a scenario-style [model] table."""
    if isinstance(model, Model):
        return model
    if isinstance(model, dict):
        return model_from_table(model)
    return catalog()[_preset_id(model)]
