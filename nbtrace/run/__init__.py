"""What runs programs: the C build cache, capture of a producer's trace and image, the hunt and
its pixel choice, and provenance. Imports the engine; the engine never imports this."""
