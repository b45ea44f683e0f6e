"""lowering: model x plan x cluster -> every rank's program (flat numpy columns), and the
choices a plan leaves open (autotuning)."""
