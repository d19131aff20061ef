"""Layer-wise probing of trained runs: hidden-state capture (`states`); the probes live in
`taxvlm.analysis.probing`."""
