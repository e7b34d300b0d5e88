"""The tape: a pass's record of which piece made which value, replayed backwards.

A model's forward pass is a chain of pieces (networks, a posterior, a prior, an
objective). Each is run through :meth:`Tape.apply`, which names its inputs and
outputs. :meth:`Tape.backward` then visits the pieces in reverse and hands each one
the gradients that reached its outputs; what its ``backward`` returns is added to the
gradients of the named inputs. That *is* the chain rule,

    dL/dv = sum over the pieces p that read v of (dL/d outputs(p)) (d outputs(p) / dv),

so a model's backward pass is one loop, whatever its parts are: a new posterior,
prior or objective is a new piece on the tape, never a new branch
(tutorials/05_backpropagation_by_hand.ipynb shows the chain written out by hand).

An output no later piece read gets no gradient: its piece receives None there, and a
piece none of whose outputs were read is skipped.
"""


class Tape:
    """Values by name, and the pieces that made them, in order."""

    def __init__(self):
        self.values = {}
        self.steps = []

    def constant(self, name, value):
        """A value no gradient flows into (data, noise, a condition)."""
        self.values[name] = value
        return value

    def apply(self, piece, inputs, outputs, grads_for=(), method="forward"):
        """Run ``piece.<method>(*inputs' values)``, name its results ``outputs`` and
        record it. ``grads_for`` names, in order, the inputs whose gradients the
        piece's ``backward`` returns (the others are constants to it).

        Returns the output (a single value when one name is given, else a tuple)."""
        result = getattr(piece, method)(*(self.values[name] for name in inputs))
        results = result if isinstance(result, tuple) else (result,)
        if len(results) != len(outputs):
            raise ValueError(f"{type(piece).__name__}.{method} returned {len(results)} "
                             f"values for {len(outputs)} names {outputs}.")
        self.values.update(zip(outputs, results))
        self.steps.append((piece, tuple(outputs), tuple(grads_for)))
        return result

    def __getitem__(self, name):
        return self.values[name]

    def __contains__(self, name):
        return name in self.values

    def backward(self, seeds):
        """Replay every recorded backward in reverse from ``seeds`` (name -> dL/dvalue).
        Returns the gradients left over (those of values no piece made)."""
        grads = dict(seeds)
        for piece, outputs, grads_for in reversed(self.steps):
            upstream = [grads.pop(name, None) for name in outputs]
            if all(grad is None for grad in upstream):
                continue
            returned = piece.backward(*upstream)
            if not grads_for:
                continue
            returned = returned if isinstance(returned, tuple) else (returned,)
            for name, grad in zip(grads_for, returned):
                if grad is None:
                    continue
                grads[name] = grad if name not in grads else grads[name] + grad
        return grads
