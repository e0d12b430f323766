"""Speed, memory and error benchmarks of art_fim, each measuring both sides in one run."""
