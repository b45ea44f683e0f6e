"""Small models shared by tests that draw many plans: quick to lower and run."""

from podsim.specs.models import Model


def small_dense(layers: int) -> Model:
    return Model(name="small-dense", layers=layers, hidden=256, heads=8, ffn_hidden=512, vocab=500)


# Eight experts, top-2, one leading dense layer: enough to exercise ep, etp and routing.
SMALL_MOE = Model(
    name="small-moe",
    layers=6,
    hidden=256,
    heads=8,
    ffn_hidden=512,
    vocab=500,
    experts=8,
    top_k=2,
    expert_ffn_hidden=128,
    dense_layers=1,
    mlp="swiglu",
)
