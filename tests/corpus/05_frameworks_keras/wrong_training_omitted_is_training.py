# expect: test_inference = batch statistics in inference
# @edit layer
# old: 'if training:'
# new: 'if training is None or training:'
