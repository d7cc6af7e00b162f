"""Every stage, one role per file: what a job step reads from an item, computes, and writes.

Shared steps (`decode`, `encode`), extract's (`stored_audio`, `tokens`, `model_features`, `f0_mel`),
upsample's (`upsample_decode`, `speechsr`, `normalize`, `upsample_encode`) and synthesis'
(`synthesis_inputs`, `vc_f0`, `synthesis_model`, `synthesis_output`, configured by
`synthesis_params`). Driver-side checks of what the stages will load live in `model_checks`, the
shortest input each model takes in `min_length`.
"""
