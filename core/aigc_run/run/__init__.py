"""One run's stages: setup (resolve, load, split, build, device), the rank-0 engine, the
follower ranks, training, sampling, evaluation, resume, re-evaluation and more samples.

Everything here may use the services below (data, plugins, registry, models, dist, ...);
only the CLI and the testing kit import it.
"""
