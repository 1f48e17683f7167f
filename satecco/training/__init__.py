"""Training SATeCo (paper §3.5) without Ray: data sources, degradations, losses and the stages.

- :mod:`~satecco.training.degrade`: the BI (MATLAB bicubic x4) and BD (Gaussian blur, subsample) degradations;
- :mod:`~satecco.training.data`: REDS, Vimeo-90K and plain-video training windows, crops and flips;
- :mod:`~satecco.training.losses`: Charbonnier, the latent-diffusion noise loss, the VAE's KL term;
- :mod:`~satecco.training.stages`: what each stage trains and the loss it minimises;
- :mod:`~satecco.training.state`: optimiser state and training progress as safetensors + JSON.

The Ray Train jobs that drive them live in ``jobs/``.
"""
