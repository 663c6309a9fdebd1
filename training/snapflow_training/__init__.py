"""SnapFlow training: the self-distillation objective, toy proofs and VLA training code."""
