"""Training with chemtrain: CG priors, YAML configs, the force-matching job, the users' model slot, fine-tuning."""
