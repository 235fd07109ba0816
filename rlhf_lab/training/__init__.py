"""One process's training flow: data, model, trainer, train, evaluate, save; and its checkpoints and callbacks."""
