"""The text-to-motion diffusion prior: its folder, pretraining, sampling and quality."""
