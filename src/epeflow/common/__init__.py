"""What several stages share: VGG16 and LPIPS, the label taxonomy, device / runtime, resampling, statistics.

A lower layer: it imports only the base modules (`epeflow.errors`, `io`, `log`, `config`, `weights`, ...),
never a stage.
"""
