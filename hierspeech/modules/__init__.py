"""Building blocks shared by the HierSpeech++ models (synthesizer, TTV, SpeechSR).

Parameter names follow the official state dicts so checkpoints load unchanged.
"""
