"""Translation between the reference EPE code's files (crops, matches, weights, networks) and epeflow's."""
