"""KineMIC fine-tuning: config, objective, data, the run, the generator, synthesis."""
