"""The algorithms: registry.py maps each name to its options, data format, builder and evaluation; one folder per
family holds its options (config.py), builder, trainer and math; contract.py is what every trainer provides."""
