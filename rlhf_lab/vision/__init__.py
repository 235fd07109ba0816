"""Vision-language models: recognising them and their trainable parts, image batches, and the trainers' changes
for pixel inputs. Reading images from data rows is the data layer's (data/images.py)."""
