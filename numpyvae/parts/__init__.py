"""Parts: what a model is composed of, each a forward/backward pair over the tape.

    networks     numpyvae.encoder (an MLP trunk and heads), numpyvae.decoders
    posteriors   q(z|x): diagonal Gaussian, planar flow           (posteriors.py)
    priors       p(z|c): N(0, I), a prior network, a Gaussian mixture  (priors.py)
    objectives   the (beta-)ELBO with a closed-form or Monte-Carlo KL, the IWAE bound,
                 VaDE's bound (the ELBO with the mixture's KL)     (objectives.py)
    tape         the chain rule over whatever the parts are       (tape.py)
"""
from . import objectives, posteriors, priors, tape
